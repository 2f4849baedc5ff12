"""Print speed, side by side: the same film session to clinic and to DCMTK dcmprscp.

A modality-like pynetdicom SCU sends one film session (14INX17IN, ``STANDARD\\4,5``,
20 images of 1024x1024 at 12 bits) to ``clinic serve`` and to DCMTK's ``dcmprscp``
(which stores the session, rendering nothing), alternating, several runs. Prints the
association time for each (associate through release), the time from clinic's
N-ACTION success until its PDF is ready, and the clinic process's peak memory.

Usage::

    python benchmarks/print.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, start_clinic, stop, wait_for_echo  # noqa: E402

GRAYSCALE_META = "1.2.840.10008.5.1.1.9"
FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
GRAY_BOX = "1.2.840.10008.5.1.1.4"


def images(count: int = 20, size: int = 1024) -> list[bytes]:
    """``count`` distinct 12-bit images: smooth gradients with noise, like radiographs."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = []
    for index in range(count):
        base = 2048 + 1500 * np.sin(6 * x + index) * np.cos(4 * y - index)
        noisy = base + rng.normal(0, 60, (size, size))
        out.append(np.clip(noisy, 0, 4095).astype("<u2").tobytes())
    return out


def _nodelay(event: evt.Event) -> None:
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def send_session(port: int, called: str, pixels: list[bytes]) -> tuple[float, float]:
    """One whole print association; returns (seconds in all, monotonic time of N-ACTION reply)."""
    ae = AE(ae_title="PANO1")
    ae.add_requested_context(GRAYSCALE_META)
    ae.maximum_pdu_size = 0
    start = time.perf_counter()
    assoc = ae.associate(
        "127.0.0.1", port, ae_title=called, evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)]
    )
    if not assoc.is_established:
        raise RuntimeError(f"{called} refused the association")
    session_uid = generate_uid()
    session = Dataset()
    session.NumberOfCopies = "1"
    session.MediumType = "PAPER"
    status, _ = assoc.send_n_create(session, FILM_SESSION, session_uid, meta_uid=GRAYSCALE_META)
    _check(status, "film session N-CREATE")
    box = Dataset()
    box.ImageDisplayFormat = "STANDARD\\4,5"
    box.FilmOrientation = "PORTRAIT"
    box.FilmSizeID = "14INX17IN"
    ref = Dataset()
    ref.ReferencedSOPClassUID = FILM_SESSION
    ref.ReferencedSOPInstanceUID = session_uid
    box.ReferencedFilmSessionSequence = [ref]
    box_uid = generate_uid()
    status, reply = assoc.send_n_create(box, FILM_BOX, box_uid, meta_uid=GRAYSCALE_META)
    _check(status, "film box N-CREATE")
    assert reply is not None
    for position, item in enumerate(reply.ReferencedImageBoxSequence, start=1):
        image = Dataset()
        image.SamplesPerPixel = 1
        image.PhotometricInterpretation = "MONOCHROME2"
        image.Rows = image.Columns = 1024
        image.PixelAspectRatio = [1, 1]
        image.BitsAllocated, image.BitsStored, image.HighBit = 16, 12, 11
        image.PixelRepresentation = 0
        image.PixelData = pixels[position - 1]
        ds = Dataset()
        ds.ImageBoxPosition = position
        ds.BasicGrayscaleImageSequence = [image]
        status, _ = assoc.send_n_set(
            ds, GRAY_BOX, item.ReferencedSOPInstanceUID, meta_uid=GRAYSCALE_META
        )
        _check(status, f"image box {position} N-SET")
    status, _ = assoc.send_n_action(None, 1, FILM_BOX, box_uid, meta_uid=GRAYSCALE_META)
    _check(status, "film box N-ACTION")
    acted = time.monotonic()
    assoc.send_n_delete(FILM_SESSION, session_uid, meta_uid=GRAYSCALE_META)
    assoc.release()
    return time.perf_counter() - start, acted


def _check(status: Any, what: str) -> None:
    if status is None or status.Status not in (0x0000, 0xB600, 0xB605):
        raise RuntimeError(f"{what}: status {getattr(status, 'Status', None)}")


def pdf_ready_after(db: Path, jobs_before: int, acted: float, timeout: float = 60) -> float:
    """Seconds from the N-ACTION reply until clinic records the new job as printed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT status, pdf_path FROM print_jobs ORDER BY id DESC LIMIT 1"
            ).fetchone()
            count = conn.execute("SELECT COUNT(*) FROM print_jobs").fetchone()[0]
        if count > jobs_before and row and row[0] == "done" and Path(row[1]).is_file():
            return time.monotonic() - acted
        if count > jobs_before and row and row[0] == "failed":
            raise RuntimeError("clinic's print job failed")
        time.sleep(0.01)
    raise RuntimeError("clinic's PDF was not ready in time")


def job_count(db: Path) -> int:
    """How many print jobs clinic holds."""
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM print_jobs").fetchone()[0])


def peak_memory_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dcmprscp_config(work: Path, port: int) -> Path:
    """A copy of DCMTK's sample configuration with its IHEFULL printer on ``port``."""
    text = Path("/etc/dcmtk/dcmpstat.cfg").read_text()
    text = text.replace("Directory = database", f"Directory = {work / 'database'}")
    text = text.replace("Directory = spool", f"Directory = {work / 'spool'}")
    head, sep, rest = text.partition("[IHEFULL]")
    rest = rest.replace("Port = 10005", f"Port = {port}", 1)
    (work / "database").mkdir()
    (work / "spool").mkdir()
    path = work / "dcmpstat.cfg"
    path.write_text(head + sep + rest)
    return path


def main() -> None:
    """Start both servers, send the session alternately, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pixels = images()
    with tempfile.TemporaryDirectory(prefix="print-bench-") as tmp:
        work = Path(tmp)
        data = work / "clinic"
        clinic, ports = start_clinic(data)
        dport = free_port()
        dcm = subprocess.Popen(
            [
                shutil.which("dcmprscp", path="/usr/bin:/bin") or "dcmprscp",
                "-c",
                str(dcmprscp_config(work, dport)),
                "-p",
                "IHEFULL",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=work,
        )
        try:
            wait_for_echo(dport, "IHEFULL")
            times: dict[str, list[float]] = {"clinic": [], "dcmprscp": []}
            ready: list[float] = []
            for _ in range(args.runs):
                before = job_count(data / "clinic.db")
                seconds, acted = send_session(ports["print"], "PDFPRINT", pixels)
                times["clinic"].append(seconds)
                ready.append(pdf_ready_after(data / "clinic.db", before, acted))
                seconds, _ = send_session(dport, "IHEFULL", pixels)
                times["dcmprscp"].append(seconds)
            peak = peak_memory_mib(clinic.pid)
        finally:
            stop(clinic)
            stop(dcm)
    clinic_s = statistics.median(times["clinic"])
    dcm_s = statistics.median(times["dcmprscp"])
    print(
        "| film | runs | clinic association s | dcmprscp association s | x dcmprscp | "
        "clinic PDF ready after N-ACTION s | clinic peak MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| 14INX17IN STANDARD\\4,5, 20 x 1024x1024 12-bit | {args.runs} | {clinic_s:.2f} | "
        f"{dcm_s:.2f} | {clinic_s / dcm_s:.2f} | {statistics.median(ready):.2f} | {peak:.0f} |"
    )


if __name__ == "__main__":
    main()
