"""A real CUPS daemon receives the job through ``lp``; the printer's state reaches N-GET Printer.

The test runs its own ``cupsd`` on a private socket and configuration folder (no init
system, no root-wide /etc/cups changes), with a raw queue whose backend writes each job
to a file.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from clinic.config import Settings
from clinic.printing import session as s
from clinic.server import ClinicServer
from tests.support.printing import (
    FILM_BOX,
    FILM_SESSION,
    Cups,
    PrintScu,
    gray_image,
    running_cups,
    wait_for_job,
)
from tests.support.tools import require_tool
from tests.support.waiting import wait_for


@pytest.fixture
def cups(tmp_path: Path) -> Iterator[Cups]:
    with running_cups(tmp_path) as daemon:
        yield daemon


def test_job_reaches_the_cups_queue_with_its_copies(cups: Cups, settings: Settings) -> None:
    configured = dataclasses.replace(
        settings,
        printers={"OFFICE": {"cups_queue": cups.queue, "cups_server": cups.socket}},
    )
    srv = ClinicServer(configured)
    srv.start()
    try:
        scu = PrintScu(srv.print_port, called="OFFICE")
        status, printer = scu.get(s.PRINTER, s.PRINTER_INSTANCE, [0x21100010])
        assert status == 0 and printer is not None and printer.PrinterStatus == "NORMAL"
        ds = Dataset()
        ds.NumberOfCopies = "2"
        _, session_uid, _ = scu.create(FILM_SESSION, ds)
        assert session_uid
        _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1", FilmSizeID="A4")
        assert scu.fill(boxes[0], 1, gray_image(16, 16, 90)) == 0
        assert scu.action(FILM_BOX, film_uid)[0] == 0

        assert srv.session_factory is not None
        job = wait_for_job(srv.session_factory)
        received = wait_for(lambda: sorted(cups.out.glob("*.prn")), what="the CUPS job file")
        assert [p.name.split("-copies-")[1] for p in received] == ["2.prn"]
        assert received[0].read_bytes() == Path(job.pdf_path).read_bytes()

        # A disabled queue shows in the Printer's status.
        subprocess.run(
            [require_tool("cupsdisable"), "-h", cups.socket, cups.queue],
            check=True,
            capture_output=True,
        )
        status, printer = scu.get(s.PRINTER, s.PRINTER_INSTANCE, [0x21100010])
        assert status == 0 and printer is not None and printer.PrinterStatus == "WARNING"
        scu.release()
    finally:
        srv.stop()
