"""Printed films reach the patient's record: jobs archived to a PACS (DCMTK storescp).

Real peers on free ports: a pynetdicom print SCU with the station's AE title, the
service in-process, storescp as the Storage SCP. Instances are read back from the
PACS's folder with pydicom and checked with dciodvfy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import SecondaryCaptureImageStorage  # type: ignore[attr-defined]
from sqlalchemy import select

from clinic.cli import main
from clinic.config import Settings
from clinic.domain.print_jobs import DeskRefusal, PrintDesk
from clinic.domain.print_links import PrintLinks
from clinic.server import ClinicServer
from clinic.store.db import transaction
from clinic.store.models import AuditEntry, PrintArchiveSend, PrintJob
from tests.support.archive import (
    ENCAPSULATED_PDF,
    PACS_AE,
    PRINTER,
    SECONDARY_CAPTURE,
    dciodvfy_errors,
    free_port,
    job_row,
    print_films,
    received,
    storescp,
    wait_archive,
)
from tests.support.exams import STATION, book, start_exam
from tests.support.waiting import wait_for


def archive_server(
    settings: Settings, port: int, hold: bool = False, forms: tuple[str, ...] = ("pdf", "sc")
) -> ClinicServer:
    """A running service whose printer PANOPRN archives to storescp on ``port``."""
    table: dict[str, Any] = {
        "archive": f"{PACS_AE}@127.0.0.1:{port}",
        "archive_as": list(forms),
        "archive_retry_max_seconds": 1,
        "hold": hold,
    }
    srv = ClinicServer(
        dataclasses.replace(settings, printers={PRINTER: table, "PLAINPRN": {}}, uid_root="1.2.3")
    )
    srv.start()
    return srv


@pytest.fixture
def pacs_port() -> int:
    return free_port()


@pytest.fixture
def archiving(settings: Settings, pacs_port: int) -> Iterator[ClinicServer]:
    srv = archive_server(settings, pacs_port)
    try:
        yield srv
    finally:
        srv.stop()


def assert_filed_under(ds: Dataset, proc: Any) -> None:
    assert ds.PatientID == proc.patient.patient_id
    assert str(ds.PatientName) == proc.patient.name
    assert ds.AccessionNumber == proc.accession_number
    assert ds.StudyInstanceUID == proc.study_instance_uid
    assert ds.SOPInstanceUID.startswith("1.2.3.")
    assert ds.SeriesInstanceUID.startswith("1.2.3.")


def test_job_of_a_booked_station_arrives_under_its_patient_and_study(
    archiving: ClinicServer, pacs_port: int, tmp_path: Path, settings: Settings
) -> None:
    now = dt.datetime.now()
    assert archiving.scheduler is not None
    proc = archiving.scheduler.book(
        {
            "patient_id": "P-ARCH-1",
            "patient_name": "DVOŘÁK^ANNA",
            "patient_birth_date": "1980-02-03",
            "patient_sex": "F",
            "modality": "PX",
            "station_ae_title": STATION,
            "scheduled_start": now.strftime("%Y-%m-%dT%H:%M"),
            "accession_number": "ARCHACC1",
            "referring_physician": "WHO^JOHN",
        },
        actor="test",
    )
    start_exam(archiving, proc)
    out = tmp_path / "pacs"
    with storescp(out, pacs_port):
        job_id = print_films(archiving, films=2)
        job = wait_archive(archiving, job_id, "sent")
        pdf_ds, *films = received(out, 3)

    assert str(pdf_ds.SOPClassUID) == ENCAPSULATED_PDF
    assert_filed_under(pdf_ds, proc)
    assert pdf_ds.PatientBirthDate == "19800203" and pdf_ds.PatientSex == "F"
    assert pdf_ds.Modality == "DOC" and pdf_ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    document = bytes(pdf_ds.EncapsulatedDocument)[: int(pdf_ds.EncapsulatedDocumentLength)]
    assert document == Path(job.pdf_path).read_bytes()
    assert [str(ds.SOPClassUID) for ds in films] == [SECONDARY_CAPTURE] * 2
    assert [int(ds.InstanceNumber) for ds in films] == [1, 2]
    for ds in films:
        assert_filed_under(ds, proc)
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsAllocated == 8
        assert ds.SeriesInstanceUID != pdf_ds.SeriesInstanceUID
    # The film's two images, side by side: the left one darker (value 50) than the right.
    pixels = films[0].pixel_array
    rows, columns = pixels.shape
    assert pixels[rows // 2, columns // 4] < pixels[rows // 2, 3 * columns // 4]
    for ds in (pdf_ds, *films):
        assert dciodvfy_errors(Path(ds.filename)) == []

    env = {"CLINIC_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(main, ["print-jobs", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.output)
    assert item["archive_status"] == "sent" and item["archive_error"] is None
    assert item["archive_to"] == f"{PACS_AE}@127.0.0.1:{pacs_port}"
    assert archiving.session_factory is not None
    with archiving.session_factory() as session:
        (sent,) = session.scalars(select(PrintArchiveSend))
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "archive")).one()
    assert sent.job_id == job_id and sent.procedure_id == proc.id
    assert json.loads(sent.sop_instance_uids) == [str(ds.SOPInstanceUID) for ds in (pdf_ds, *films)]
    assert audit.actor == "archive" and audit.entity_id == str(job_id)


def test_pacs_down_during_the_print_then_up_the_job_arrives(
    archiving: ClinicServer, pacs_port: int, tmp_path: Path
) -> None:
    proc = book(archiving, 1, dt.datetime.now())
    job_id = print_films(archiving)

    def retried() -> PrintJob | None:
        job = job_row(archiving, job_id)
        return job if job.archive_attempts >= 2 else None

    job = wait_for(retried, timeout=60, what="two failed attempts")
    assert job.status == "done"  # printing never waited for the PACS
    assert job.archive_status == "pending" and "cannot be reached" in job.archive_error

    out = tmp_path / "pacs"
    with storescp(out, pacs_port):
        wait_archive(archiving, job_id, "sent")
        datasets = received(out, 2)
    for ds in datasets:
        assert_filed_under(ds, proc)


def test_unlinked_job_waits_and_goes_when_linked(
    archiving: ClinicServer, pacs_port: int, tmp_path: Path, settings: Settings
) -> None:
    now = dt.datetime.now()
    first = book(archiving, 1, now - dt.timedelta(minutes=30))
    book(archiving, 2, now + dt.timedelta(minutes=30))  # two candidates: no link
    out = tmp_path / "pacs"
    with storescp(out, pacs_port):
        job_id = print_films(archiving)
        wait_for(lambda: job_row(archiving, job_id).status == "done", what="printed")
        env = {"CLINIC_DATA_DIR": str(settings.data_dir)}
        result = CliRunner().invoke(main, ["print-jobs", "list", "--json"], env=env)
        (item,) = json.loads(result.output)
        assert item["archive_status"] == "pending"
        assert item["archive_error"] == "waiting for the front desk to link the job to a booking"
        job = job_row(archiving, job_id)
        assert job.procedure_id is None and job.archive_status == "pending"
        assert job.archive_attempts == 0 and not list(out.iterdir())

        factory = archiving.session_factory
        assert factory is not None and archiving.spool is not None
        PrintLinks(factory).set_link(job_id, first.id, "web:alice")
        archiving.spool.refile(job_id)
        wait_archive(archiving, job_id, "sent")
        datasets = received(out, 2)
    for ds in datasets:
        assert_filed_under(ds, first)


def test_moving_a_sent_job_to_another_booking_sends_a_correction(
    archiving: ClinicServer, pacs_port: int, tmp_path: Path
) -> None:
    now = dt.datetime.now()
    wrong = book(archiving, 1, now)
    right = book(archiving, 2, now + dt.timedelta(hours=5))
    out = tmp_path / "pacs"
    factory = archiving.session_factory
    assert factory is not None and archiving.spool is not None
    with storescp(out, pacs_port):
        job_id = print_films(archiving)
        wait_archive(archiving, job_id, "sent")
        old = received(out, 2)
        # No refile asked for (as when a restart lost the request): the archive asks for it.
        PrintLinks(factory).set_link(job_id, right.id, "web:alice")

        def corrected() -> bool:
            with factory() as session:
                return len(list(session.scalars(select(PrintArchiveSend)))) == 2

        wait_for(corrected, timeout=60, what="the correction")
        everything = received(out, 4)
    for ds in old:
        assert_filed_under(ds, wrong)
    new = [ds for ds in everything if ds.PatientID == right.patient.patient_id]
    assert len(new) == 2
    for ds in new:
        assert_filed_under(ds, right)
    assert {str(d.SOPInstanceUID) for d in new}.isdisjoint(str(d.SOPInstanceUID) for d in old)
    with factory() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "correct")).one()
    detail = json.loads(entry.detail)
    assert sorted(detail["replaces"]) == sorted(str(d.SOPInstanceUID) for d in old)
    assert detail["replaces_procedure"] == wrong.id and detail["procedure"] == right.id

    # A link changed behind the domain's back (e.g. restored data) is found by the sweep.
    assert archiving.archiver is not None
    with transaction(factory) as session:
        row = session.get(PrintJob, job_id)
        assert row is not None
        row.procedure_id = wrong.id
    assert archiving.archiver.mark_corrections() == [job_id]
    assert job_row(archiving, job_id).archive_status == "pending"


def test_hold_queue_release_prints_and_archives_discard_does_neither(
    settings: Settings, pacs_port: int, tmp_path: Path
) -> None:
    server = archive_server(settings, pacs_port, hold=True, forms=("pdf",))
    out = tmp_path / "pacs"
    try:
        proc = book(server, 1, dt.datetime.now())
        factory = server.session_factory
        assert factory is not None
        kept = print_films(server)
        dropped = print_films(server)

        def previewed() -> bool:
            return all(job_row(server, j).pages == 1 for j in (kept, dropped))

        wait_for(previewed, timeout=60, what="the held jobs' previews")
        for job_id in (kept, dropped):
            job = job_row(server, job_id)
            assert job.held and job.status == "queued" and Path(job.pdf_path).is_file()
            assert job.archive_status == "pending"
        desk = PrintDesk(
            factory,
            {PRINTER: f"{PACS_AE}@127.0.0.1:{pacs_port}", "PLAINPRN": ""},
            server.spool.wake if server.spool else None,
        )
        with pytest.raises(DeskRefusal):
            desk.release(kept, "NOSUCHPRN", 1, "web:alice")
        with storescp(out, pacs_port):
            desk.discard(dropped, "web:alice")
            desk.release(kept, PRINTER, 3, "web:alice")
            wait_archive(server, kept, "sent")
            (ds,) = received(out, 1)
        assert_filed_under(ds, proc)
        job = job_row(server, kept)
        assert job.status == "done" and job.copies == 3 and not job.held
        gone = job_row(server, dropped)
        assert gone.status == "failed" and gone.archive_status == "failed"
        assert "discarded" in gone.archive_error
        with pytest.raises(DeskRefusal):
            desk.release(dropped, PRINTER, 1, "web:alice")
        with factory() as session:
            actions = {
                (e.action, e.entity_id, e.actor)
                for e in session.scalars(select(AuditEntry).where(AuditEntry.entity == "print_job"))
            }
        assert ("release", str(kept), "web:alice") in actions
        assert ("discard", str(dropped), "web:alice") in actions
    finally:
        server.stop()


def test_instances_go_in_the_transfer_syntax_the_pacs_accepts(
    settings: Settings, pacs_port: int, tmp_path: Path
) -> None:
    server = archive_server(settings, pacs_port)
    out = tmp_path / "pacs"
    try:
        proc = book(server, 1, dt.datetime.now())
        with storescp(out, pacs_port, transfer_syntaxes="+xi"):  # Implicit VR only
            job_id = print_films(server)
            wait_archive(server, job_id, "sent")
            datasets = received(out, 2)
    finally:
        server.stop()
    for ds in datasets:
        assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert_filed_under(ds, proc)


def test_pacs_that_refuses_the_pdf_fails_the_job_with_the_reason(
    settings: Settings, pacs_port: int
) -> None:
    # A Storage SCP for Secondary Capture only: no presentation context for the PDF.
    pacs = AE(ae_title=PACS_AE)
    pacs.add_supported_context(SecondaryCaptureImageStorage)
    scp = pacs.start_server(
        ("127.0.0.1", pacs_port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)],
    )
    server = archive_server(settings, pacs_port)
    try:
        book(server, 1, dt.datetime.now())
        job_id = print_films(server)
        job = wait_archive(server, job_id, "failed")
    finally:
        server.stop()
        scp.shutdown()
    assert "does not accept Encapsulated PDF Storage" in job.archive_error
    assert job.status == "done"  # the print itself is fine
