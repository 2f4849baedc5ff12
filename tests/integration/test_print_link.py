"""A film printed by a station is filed with the patient of its exam (clinic.domain.print_links).

Real listeners on port 0: MPPS from a pynetdicom SCU to the worklist port, then a
pynetdicom print SCU with the station's AE title as calling AE title.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from clinic.cli import main
from clinic.config import Settings
from clinic.domain.print_links import PrintLinks
from clinic.server import ClinicServer
from clinic.store.models import AuditEntry, PrintJob
from tests.support.exams import STATION, book, start_exam
from tests.support.printing import FILM_BOX, PrintScu, gray_image, wait_for_job
from tests.support.tools import require_tool
from tests.support.waiting import wait_for


def print_film(server: ClinicServer, station: str = STATION) -> PrintJob:
    scu = PrintScu(server.print_port, calling=station)
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1", FilmSizeID="8INX10IN")
    assert scu.fill(boxes[0], 1, gray_image(32, 32, 120)) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()
    assert server.session_factory is not None
    return wait_for_job(server.session_factory)


def pdf_info(pdf: Path) -> dict[str, str]:
    done = subprocess.run(
        [require_tool("pdfinfo"), str(pdf)], check=True, capture_output=True, text=True
    )
    info = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def test_print_during_an_exam_in_progress_is_filed_with_its_patient(
    server: ClinicServer, settings: Settings
) -> None:
    now = dt.datetime.now()
    # Two bookings of the station around now: only the exam in progress decides.
    book(server, 1, now)
    second = book(server, 2, now + dt.timedelta(minutes=30))
    start_exam(server, second)

    job = print_film(server)
    assert job.procedure_id == second.id

    pdf = Path(job.pdf_path)
    assert pdf.is_file()
    assert pdf.name == f"job-{job.id:06d}-P_2_7-LINKACC2.pdf"
    info = pdf_info(pdf)
    assert info["Title"] == "DVOŘÁK, ANNA2"
    assert info["Subject"] == "Patient ID P/2 7, accession number LINKACC2"
    assert "LINKACC2" in info["Keywords"] and "P/2 7" in info["Keywords"]
    assert info["Author"] == STATION

    env = {"CLINIC_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(main, ["print-jobs", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.output)
    assert item["procedure_id"] == second.id
    assert item["patient_id"] == "P/2 7" and item["accession_number"] == "LINKACC2"
    assert item["pdf_path"] == str(pdf) and item["status"] == "done"

    assert server.session_factory is not None
    with server.session_factory() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "print_job", AuditEntry.action == "link")
        ).one()
    assert entry.actor == f"print:{STATION}" and entry.entity_id == str(job.id)
    assert json.loads(entry.detail) == {"procedure": second.id, "rule": "in-progress"}


def test_station_with_one_booking_around_now_links(server: ClinicServer) -> None:
    now = dt.datetime.now()
    only = book(server, 1, now - dt.timedelta(minutes=45))
    book(server, 2, now + dt.timedelta(hours=3))  # outside the two-hour window
    book(server, 3, now, station="OTHER1")  # another station's

    job = print_film(server)
    assert job.procedure_id == only.id
    assert Path(job.pdf_path).name == f"job-{job.id:06d}-P_1_7-LINKACC1.pdf"


def test_two_candidates_and_nothing_in_progress_stay_unlinked(server: ClinicServer) -> None:
    now = dt.datetime.now()
    book(server, 1, now - dt.timedelta(minutes=30))
    book(server, 2, now + dt.timedelta(minutes=30))

    job = print_film(server)
    assert job.procedure_id is None
    pdf = Path(job.pdf_path)
    assert pdf.name == f"job-{job.id:06d}.pdf"
    info = pdf_info(pdf)
    assert "Patient" not in info.get("Subject", "") and "LINKACC" not in info.get("Keywords", "")


def test_corrected_link_files_the_pdf_again(server: ClinicServer) -> None:
    now = dt.datetime.now()
    first = book(server, 1, now - dt.timedelta(minutes=20))
    second = book(server, 2, now + dt.timedelta(minutes=20))
    start_exam(server, second)
    job = print_film(server)
    old = Path(job.pdf_path)
    assert job.procedure_id == second.id and old.is_file()

    factory = server.session_factory
    assert factory is not None and server.spool is not None
    PrintLinks(factory).set_link(job.id, first.id, "web:alice")
    server.spool.refile(job.id)
    new = old.with_name(f"job-{job.id:06d}-P_1_7-LINKACC1.pdf")

    def refiled() -> bool:
        with factory() as session:
            row = session.get(PrintJob, job.id)
            return row is not None and row.pdf_path == str(new)

    wait_for(refiled, timeout=20, what="the PDF filed again")
    assert new.is_file() and not old.exists()
    info = pdf_info(new)
    assert info["Title"] == "DVOŘÁK, ANNA1" and "LINKACC1" in info["Subject"]
    with factory() as session:
        row = session.get(PrintJob, job.id)
        assert row is not None and row.status == "done" and row.attempts == 1
