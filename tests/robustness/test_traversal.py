"""UIDs, AE titles and identifiers made to traverse paths never leave the data folder.

A booking whose patient ID, accession number and station AE title are traversal
strings is printed to by a modality calling with that AE title, with Film Session and
Film Box UIDs of its own choosing: the job links to the booking, its PDF lands in the
printer's folder under a server-made name, and no file appears anywhere else.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

from pydicom.dataset import Dataset

from clinic.dicom import status as dimse
from clinic.printing import session as s
from clinic.server import ClinicServer
from tests.support.printing import (
    FILM_BOX,
    FILM_SESSION,
    PrintScu,
    film_box_request,
    gray_image,
    wait_for_job,
)

STATION = "../../../tmp"  # a valid AE title: PS3.5 allows "." and "/"


def files_under(root: Path) -> set[Path]:
    """Every file below ``root``."""
    return {p for p in root.rglob("*") if p.is_file()}


def test_traversal_strings_stay_data(server: ClinicServer, tmp_path: Path) -> None:
    assert server.scheduler is not None and server.session_factory is not None
    data_dir = server.settings.data_dir.resolve()
    outside_before = files_under(tmp_path) - files_under(data_dir)
    soon = dt.datetime.now() + dt.timedelta(minutes=10)
    server.scheduler.book(
        {
            "patient_id": "../../../../etc/passwd",
            "patient_name": "DOE^JANE",
            "modality": "CR",
            "station_ae_title": STATION,
            "accession_number": "../../boot",
            "scheduled_start": soon.strftime("%Y-%m-%dT%H:%M"),
        },
        actor="test",
    )
    scu = PrintScu(server.print_port, calling=STATION)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the invalid UIDs it sends
            copies = Dataset()
            copies.NumberOfCopies = "1"
            status, _, _ = scu.create(FILM_SESSION, copies, "../../../x")
            assert status == dimse.INVALID_OBJECT_INSTANCE  # 0x0117, as MPPS answers
            session_uid = scu.session()
            request = film_box_request(session_uid, "STANDARD\\1,1")
            status, _, _ = scu.create(FILM_BOX, request, "../../../y")
            assert status == dimse.INVALID_OBJECT_INSTANCE
        status, film_uid, reply = scu.create(FILM_BOX, request)
        assert status == 0 and film_uid and reply is not None
        box = str(reply.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID)
        assert scu.fill(box, 1, gray_image(8, 8, 40)) == 0
        status, _ = scu.action(s.FILM_BOX, film_uid)
        assert status == 0
    finally:
        scu.release()

    job = wait_for_job(server.session_factory)
    assert job.status == "done" and job.procedure_id is not None  # linked to the booking
    pdf = Path(job.pdf_path).resolve()
    assert pdf.is_file() and pdf.is_relative_to(data_dir)
    assert ".." not in pdf.name and "/" not in pdf.stem and "\\" not in pdf.stem
    assert files_under(tmp_path) - files_under(data_dir) == outside_before
    assert not Path("/etc/passwd.pdf").exists() and not Path("/tmp.pdf").exists()
