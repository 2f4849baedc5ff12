"""Shared pieces of the benchmarks: realistic bookings, free ports, peer processes."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FAMILY = [
    "MÜLLER",
    "SCHMIDT",
    "SCHNEIDER",
    "FISCHER",
    "WEBER",
    "MEYER",
    "WAGNER",
    "BECKER",
    "SCHULZ",
    "HOFFMANN",
    "KOCH",
    "RICHTER",
    "KLEIN",
    "WOLF",
    "SCHRÖDER",
    "NEUMANN",
    "SCHWARZ",
    "ZIMMERMANN",
    "BRAUN",
    "KRÜGER",
    "HOFMANN",
    "HARTMANN",
    "LANGE",
    "SCHMITT",
    "DVOŘÁK",
    "NOVÁK",
    "GARCÍA",
    "MARTÍNEZ",
    "LÓPEZ",
    "GONZÁLEZ",
    "ROSSI",
    "RUSSO",
    "DUPONT",
    "LEFÈVRE",
    "MOREAU",
    "GIRARD",
    "SMITH",
    "JONES",
    "BROWN",
    "O'NEILL",
    "ÅSTRÖM",
    "LINDQVIST",
    "NIELSEN",
    "JØRGENSEN",
    "KOWALSKI",
    "WIŚNIEWSKI",
    "YILMAZ",
    "ÖZTÜRK",
    "PAPADOPOULOS",
    "NGUYEN",
]
GIVEN = [
    "ANNA",
    "HANS",
    "JÜRGEN",
    "MARIA",
    "PETER",
    "SOPHIE",
    "LUKAS",
    "LÉA",
    "JOSÉ",
    "ZOË",
    "ANTONÍN",
    "BJÖRN",
    "CHLOÉ",
    "EMMA",
    "NOAH",
    "MIA",
    "BEN",
    "LINA",
    "ELIAS",
    "ÉMILE",
]
STATIONS = [
    ("XRAY1", "CR"),
    ("XRAY2", "DX"),
    ("PANO1", "PX"),
    ("DENT1", "IO"),
    ("DENT2", "IO"),
    ("US1", "US"),
    ("US2", "US"),
]


def make_bookings(count: int, seed: int = 7, today: dt.date | None = None) -> list[dict[str, str]]:
    """Return ``count`` bookings over a month around ``today``, 7 stations, mixed names."""
    rng = random.Random(seed)
    today = today or dt.date.today()
    patients = max(count // 3, 1)
    rows = []
    for index in range(count):
        pnum = rng.randrange(patients)
        prng = random.Random(pnum)
        station, modality = STATIONS[index % len(STATIONS)]
        day = today + dt.timedelta(days=rng.randint(-15, 15))
        start = dt.datetime.combine(day, dt.time(8)) + dt.timedelta(minutes=5 * rng.randrange(120))
        rows.append(
            {
                "patient_id": f"PID{pnum:07d}",
                "patient_name": f"{prng.choice(FAMILY)}^{prng.choice(GIVEN)}",
                "patient_birth_date": f"{1940 + prng.randrange(80)}-{1 + prng.randrange(12):02d}-"
                f"{1 + prng.randrange(28):02d}",
                "patient_sex": prng.choice("MF"),
                "accession_number": f"ACC{index:09d}",
                "modality": modality,
                "station_ae_title": station,
                "scheduled_start": start.strftime("%Y-%m-%dT%H:%M"),
                "procedure_description": f"{modality} examination",
                "referring_physician": "HOUSE^GREGORY",
                "requested_procedure_id": f"RP{index:09d}",
                "step_id": f"SPS{index:09d}",
                "study_instance_uid": f"1.2.826.0.1.3680043.10.543.{index + 1}",
            }
        )
    return rows


def free_port() -> int:
    """A free loopback TCP port (for peers that cannot be told to use port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_echo(port: int, called: str, deadline_s: float = 60.0) -> None:
    """Poll C-ECHO until the SCP on ``port`` answers (or fail after ``deadline_s``)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title="BENCH")
    ae.add_requested_context(Verification)
    ae.acse_timeout = 2
    ae.network_timeout = 2
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        if assoc.is_established:
            assoc.send_c_echo()
            assoc.release()
            return
        time.sleep(0.1)
    raise RuntimeError(f"no C-ECHO answer on port {port} within {deadline_s} s")


def start_clinic(
    data_dir: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """Start ``clinic serve`` on free ports; return the process and its ports."""
    env = dict(os.environ)
    env.update(
        {
            "CLINIC_DATA_DIR": str(data_dir),
            "CLINIC_HOST": "127.0.0.1",
            "CLINIC_WEB_PORT": "0",
            "CLINIC_MWL_PORT": "0",
            "CLINIC_PRINT_PORT": "0",
            "CLINIC_HL7_PORT": "0",
            "CLINIC_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra_env or {})
    env["CLINIC_LOG_LEVEL"] = "INFO"
    proc = subprocess.Popen(
        [shutil.which("clinic") or "clinic", "serve"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    ports: dict[str, int] = {}
    assert proc.stderr is not None
    for raw in iter(proc.stderr.readline, b""):
        line = raw.decode("utf-8", "replace")
        found = re.search(r"(web front desk|worklist SCP|print SCP).* listening on \S*:(\d+)", line)
        if found:
            ports[found[1].split()[0]] = int(found[2])
        if len(ports) == 3:
            break
    if len(ports) != 3:
        raise RuntimeError("clinic serve did not start")
    # keep draining stderr so the pipe never fills
    import threading

    threading.Thread(
        target=lambda: [None for _ in iter(proc.stderr.readline, b"")],  # type: ignore[union-attr]
        daemon=True,
    ).start()
    return proc, ports


def stop(proc: subprocess.Popen[Any]) -> None:
    """Terminate a peer process and wait for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Split ``items`` into lists of ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
