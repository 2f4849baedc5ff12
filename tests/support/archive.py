"""A PACS for the archive tests (DCMTK's storescp on a free port), and an archiving printer."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select

from clinic.server import ClinicServer
from clinic.store.models import PrintJob
from tests.support.exams import STATION
from tests.support.printing import FILM_SESSION, PrintScu, gray_image
from tests.support.tools import require_tool
from tests.support.waiting import wait_for

PACS_AE = "PACS"
PRINTER = "PANOPRN"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    """Whether something accepts connections on ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def storescp(out: Path, port: int | None = None, transfer_syntaxes: str = "+xa") -> Iterator[int]:
    """DCMTK's storescp as the PACS (AE title ``PACS``), every instance into ``out``.

    ``transfer_syntaxes`` is storescp's option: ``+xa`` all it knows, ``+xi`` Implicit VR
    Little Endian only.
    """
    port = port or free_port()
    out.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            require_tool("storescp"),
            "-aet",
            PACS_AE,
            "-od",
            str(out),
            transfer_syntaxes,
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def up() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            return listening(port)

        wait_for(up, timeout=30, what="storescp")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def received(out: Path, count: int, timeout: float = 60.0) -> list[Dataset]:
    """Wait until ``out`` holds ``count`` instances; return them read back, by SOP class."""

    def files() -> list[Path] | None:
        found = sorted(p for p in out.iterdir() if p.is_file()) if out.exists() else []
        return found if len(found) >= count else None

    paths: list[Path] = wait_for(files, timeout=timeout, what=f"{count} instance(s) in the PACS")
    datasets = [dcmread(p) for p in paths]
    for ds, path in zip(datasets, paths, strict=True):
        ds.filename = str(path)
    return sorted(datasets, key=lambda d: (str(d.SOPClassUID), int(d.get("InstanceNumber", 0))))


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy (Debian's dicom3tools) reports for one file."""
    done = subprocess.run(
        [require_tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False
    )
    return [line for line in (done.stdout + done.stderr).splitlines() if "Error" in line]


def print_films(server: ClinicServer, films: int = 1, station: str = STATION) -> int:
    """Print ``films`` films on PANOPRN from ``station``; returns the job id."""
    scu = PrintScu(server.print_port, called=PRINTER, calling=station)
    session_uid = scu.session()
    for n in range(films):
        _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\2,1", FilmSizeID="8INX10IN")
        assert scu.fill(boxes[0], 1, gray_image(40, 30, 50 + n)) == 0
        assert scu.fill(boxes[1], 2, gray_image(40, 30, 200)) == 0
    # One job: the film session printed as a whole.
    assert scu.action(FILM_SESSION, session_uid)[0] == 0
    scu.release()
    assert server.session_factory is not None
    with server.session_factory() as session:
        job = session.scalars(select(PrintJob).order_by(PrintJob.id.desc())).first()
        assert job is not None
        return job.id


def job_row(server: ClinicServer, job_id: int) -> PrintJob:
    assert server.session_factory is not None
    with server.session_factory() as session:
        job = session.get(PrintJob, job_id)
        assert job is not None
        return job


def wait_archive(server: ClinicServer, job_id: int, status: str, timeout: float = 60) -> PrintJob:
    def reached() -> PrintJob | None:
        job = job_row(server, job_id)
        return job if job.archive_status == status else None

    job: PrintJob = wait_for(reached, timeout=timeout, what=f"archive status {status}")
    return job
