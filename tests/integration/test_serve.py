"""``clinic serve`` as its own process: start on free ports, answer, stop on a signal."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from alembic.script import ScriptDirectory
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.store.migrate import alembic_config
from tests.conftest import require_tool

LISTENING = re.compile(
    r"(web front desk|worklist SCP|print SCP).* listening on (?:http://)?[\d.]+:(\d+)"
)
STARTUP_DEADLINE = 30.0
EXIT_DEADLINE = 20.0


def clinic_command() -> list[str]:
    """The installed ``clinic`` console script (the one next to this interpreter)."""
    script = Path(sys.executable).parent / "clinic"
    assert script.is_file(), f"{script} missing: pip install -e . installs it"
    return [str(script)]


class Service:
    """A ``clinic serve`` process whose stderr is read line by line off-thread."""

    def __init__(self, data_dir: Path, cwd: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
            "CLINIC_DATA_DIR": str(data_dir),
            "CLINIC_HOST": "127.0.0.1",
            "CLINIC_WEB_PORT": "0",
            "CLINIC_MWL_PORT": "0",
            "CLINIC_PRINT_PORT": "0",
            "CLINIC_HL7_PORT": "0",
        }
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [*clinic_command(), "serve"],
            cwd=cwd,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ports = self._wait_for_ports()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, pattern: str, deadline: float) -> str:
        """Return the first log line matching ``pattern``; fail at ``deadline``."""
        regex = re.compile(pattern)
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no log line matching {pattern!r}:\n" + "\n".join(self.log)
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, "clinic serve ended early:\n" + "\n".join(self.log)
            self.log.append(line)
            if regex.search(line):
                return line

    def _wait_for_ports(self) -> dict[str, int]:
        deadline = time.monotonic() + STARTUP_DEADLINE
        ports: dict[str, int] = {}
        while len(ports) < 3:
            match = LISTENING.search(self.wait_for_line("listening on", deadline))
            assert match is not None
            ports[match[1]] = int(match[2])
        return ports

    @property
    def mwl_port(self) -> int:
        return self.ports["worklist SCP"]

    def stop(self, signum: int) -> int:
        """Send ``signum`` and return the exit status (drains the log meanwhile)."""
        self.proc.send_signal(signum)
        returncode = self.proc.wait(timeout=EXIT_DEADLINE)
        self._reader.join(timeout=EXIT_DEADLINE)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.log.append(line)
        return returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_DEADLINE)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path / "fresh" / "data", tmp_path)
    try:
        yield svc
    finally:
        svc.kill()


def import_bookings(service: Service, tmp_path: Path) -> None:
    today = dt.date.today().isoformat()
    path = tmp_path / "bookings.json"
    path.write_text(
        json.dumps(
            [
                {
                    "patient_id": "S1",
                    "patient_name": "Dvořák^Antonín",
                    "accession_number": "SERVE1",
                    "modality": "CR",
                    "station_ae_title": "XRAY1",
                    "scheduled_start": f"{today}T09:00",
                }
            ]
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [*clinic_command(), "procedures", "import", str(path)],
        cwd=service.cwd,
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def run_findscu(port: int, out: Path, *keys: str) -> list[pydicom.Dataset]:
    out.mkdir()
    args = [require_tool("findscu"), "-W", "-aet", "XRAY1", "-aec", "CLINIC", "-to", "20"]
    args += ["-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(port)]
    result = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return [pydicom.dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]


def test_serve_answers_and_stops_on_sigterm(service: Service, tmp_path: Path) -> None:
    assert set(service.ports) == {"web front desk", "worklist SCP", "print SCP"}
    assert all(port > 0 for port in service.ports.values())
    assert len(set(service.ports.values())) == 3
    import_bookings(service, tmp_path)

    answers = run_findscu(
        service.mwl_port,
        tmp_path / "utf8",
        "PatientName",
        "AccessionNumber",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=XRAY1",
    )
    assert [(a.AccessionNumber, str(a.PatientName)) for a in answers] == [
        ("SERVE1", "Dvořák^Antonín")
    ]
    answers = run_findscu(
        service.mwl_port, tmp_path / "latin1", "SpecificCharacterSet=ISO_IR 100", "PatientName"
    )
    assert [str(a.PatientName) for a in answers] == ["Dvorák^Antonín"]

    assert service.stop(signal.SIGTERM) == 0
    text = "\n".join(service.log)
    assert "received SIGTERM, stopping" in text
    assert "clinic stopped" in text
    assert "Traceback" not in text


def test_serve_stops_on_sigint(service: Service) -> None:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", service.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert service.stop(signal.SIGINT) == 0
    text = "\n".join(service.log)
    assert "received SIGINT, stopping" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text


def test_open_association_finishes_before_exit(service: Service) -> None:
    """On SIGTERM the listener closes but an open association may finish its work."""
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", service.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    service.proc.send_signal(signal.SIGTERM)
    service.wait_for_line("received SIGTERM", time.monotonic() + EXIT_DEADLINE)
    assert service.proc.poll() is None
    assert assoc.send_c_echo().Status == 0x0000
    query = pydicom.Dataset()
    query.PatientName = ""
    answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    assert [status.Status for status, _ in answers] == [0x0000]
    assoc.release()
    assert service.proc.wait(timeout=EXIT_DEADLINE) == 0


def test_fresh_data_dir_gets_a_migrated_database(service: Service, tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "data" / "clinic.db"
    assert database.is_file()
    with sqlite3.connect(database) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    assert {"patients", "procedures", "stations", "audit_log", "worklist_query_log"} <= tables
    assert versions
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert sorted(versions) == sorted(heads)
    assert service.stop(signal.SIGTERM) == 0


def test_port_in_use_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
            "CLINIC_DATA_DIR": str(tmp_path / "data"),
            "CLINIC_HOST": "127.0.0.1",
            "CLINIC_WEB_PORT": "0",
            "CLINIC_MWL_PORT": str(taken.getsockname()[1]),
            "CLINIC_PRINT_PORT": "0",
            "CLINIC_HL7_PORT": "0",
        }
        result = subprocess.run(
            [*clinic_command(), "serve"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_idle_association_aborted_after_grace(service: Service) -> None:
    """An association left open does not keep the service from stopping."""
    ae = AE(ae_title="IDLE")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", service.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    started = time.monotonic()
    assert service.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < EXIT_DEADLINE
    deadline = time.monotonic() + 10
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.01)
    assert assoc.is_aborted
