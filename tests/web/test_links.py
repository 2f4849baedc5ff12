"""The front desk links print jobs and unscheduled exams (MPPS) to bookings by hand."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from clinic.config import Settings
from clinic.domain.bookings import Scheduler
from clinic.domain.performed import PerformedSteps, StepReference, StepReport
from clinic.store.db import transaction
from clinic.store.models import AuditEntry, PrintJob
from clinic.web import create_app
from tests.support.web import login, post_form

TODAY = dt.date.today()


def booking(n: int, station: str = "PANO1") -> dict[str, Any]:
    return {
        "patient_id": f"LP{n}",
        "patient_name": f"KOWALSKA^EWA{n}",
        "modality": "PX",
        "station_ae_title": station,
        "scheduled_start": f"{TODAY.isoformat()}T1{n}:00",
        "accession_number": f"WEBACC{n}",
    }


@pytest.fixture
def bookings(scheduler: Scheduler) -> list[int]:
    return [scheduler.book(booking(n), actor="test").id for n in (1, 2)]


@pytest.fixture
def job_id(scheduler: Scheduler) -> int:
    with transaction(scheduler.session_factory) as session:
        job = PrintJob(
            sop_instance_uid="1.2.3.99",
            status="done",
            calling_ae_title="PANO1",
            printer_ae_title="PDFPRINT",
            films=1,
            pages=1,
            spool_dir="jobx",
            pdf_path="",
            error="",
        )
        session.add(job)
        session.flush()
        return job.id


def linked_to(scheduler: Scheduler, job: int) -> int | None:
    with scheduler.session_factory() as session:
        row = session.get(PrintJob, job)
        assert row is not None
        return row.procedure_id


def test_attach_correct_and_remove_a_print_job_link(
    desk: FlaskClient,
    api: FlaskClient,
    scheduler: Scheduler,
    bookings: list[int],
    job_id: int,
    audit_rows: Callable[..., list[AuditEntry]],
) -> None:
    page = desk.get("/print-jobs").get_data(as_text=True)
    assert "Not linked" in page and "WEBACC2" in page  # the day's bookings are offered

    action = f"/print-jobs/{job_id}/link"
    reply = post_form(desk, "/print-jobs", action, {"accession_number": "WEBACC1"})
    assert reply.status_code == 302
    assert linked_to(scheduler, job_id) == bookings[0]
    page = desk.get("/print-jobs").get_data(as_text=True)
    assert "KOWALSKA, EWA1" in page and f"/procedures/{bookings[0]}" in page

    (item,) = api.get("/api/print-jobs").get_json()
    assert item["procedure_id"] == bookings[0]
    assert item["patient_id"] == "LP1" and item["accession_number"] == "WEBACC1"

    # Corrected from the day's list.
    post_form(desk, "/print-jobs", action, {"procedure_id": str(bookings[1])})
    assert linked_to(scheduler, job_id) == bookings[1]
    # An unknown accession number changes nothing.
    reply = post_form(desk, "/print-jobs", action, {"accession_number": "NOSUCH"})
    assert reply.status_code == 302 and linked_to(scheduler, job_id) == bookings[1]
    post_form(desk, "/print-jobs", action, {"unlink": "1"})
    assert linked_to(scheduler, job_id) is None

    entries = audit_rows(entity="print_job")
    assert [e.action for e in entries] == ["link", "relink", "unlink"]
    assert {e.actor for e in entries} == {"web:alice"}
    assert json.loads(entries[1].detail)["procedure"] == [bookings[0], bookings[1]]


def test_link_form_needs_its_csrf_token(
    desk: FlaskClient, scheduler: Scheduler, bookings: list[int], job_id: int
) -> None:
    reply = desk.post(f"/print-jobs/{job_id}/link", data={"accession_number": "WEBACC1"})
    assert reply.status_code == 400
    assert linked_to(scheduler, job_id) is None


def test_unknown_job_is_404(desk: FlaskClient, bookings: list[int]) -> None:
    reply = post_form(desk, "/print-jobs", "/print-jobs/999/link", {"accession_number": "WEBACC1"})
    assert reply.status_code == 404


def test_exam_done_without_a_booking_is_attached_from_the_day_view(
    desk: FlaskClient,
    scheduler: Scheduler,
    bookings: list[int],
    audit_rows: Callable[..., list[AuditEntry]],
) -> None:
    steps = PerformedSteps(scheduler.session_factory)
    report = StepReport(
        status="IN PROGRESS",
        station_ae_title="PANO1",
        modality="PX",
        patient_id="WALKIN",
        patient_name="NOWAK^JAN",
        started_at=dt.datetime.combine(TODAY, dt.time(11, 5)),
        performed_series=[{"series_instance_uid": "1.2.3", "modality": "PX", "images": 2}],
        references=[StepReference(accession_number="NOT-BOOKED")],
    )
    step = steps.create("1.2.826.0.1.3680043.10.543.900", report, "PANO1")
    assert [s.id for s in steps.unlinked()] == [step.id]

    day = desk.get("/").get_data(as_text=True)
    assert "Exams done without a booking" in day and "NOWAK, JAN" in day

    reply = post_form(
        desk,
        "/",
        f"/performed-steps/{step.id}/attach",
        {"procedure_id": str(bookings[0]), "date": TODAY.isoformat()},
    )
    assert reply.status_code == 302 and reply.location.endswith(f"/procedures/{bookings[0]}")
    assert steps.unlinked() == []
    assert scheduler.get(bookings[0]).status == "IN_PROGRESS"
    day = desk.get("/").get_data(as_text=True)
    assert "Exams done without a booking" not in day

    proc_page = desk.get(f"/procedures/{bookings[0]}").get_data(as_text=True)
    assert "Performed (MPPS)" in proc_page and "in progress" in proc_page
    # In the page's language's date format (English here: month/day/year) and 24-hour time.
    assert f"{TODAY.month}/{TODAY.day}/{TODAY.year} 11:05" in proc_page
    assert '<tr class="performed-step"><td>in progress</td>' in proc_page

    (entry,) = [e for e in audit_rows(entity="performed_step") if e.action == "attach"]
    assert entry.actor == "web:alice"
    assert json.loads(entry.detail) == {"procedure": bookings[0]}


def test_attach_by_accession_and_refusals(
    desk: FlaskClient, scheduler: Scheduler, bookings: list[int]
) -> None:
    steps = PerformedSteps(scheduler.session_factory)
    report = StepReport(status="IN PROGRESS", station_ae_title="PANO1", references=[])
    step = steps.create("1.2.826.0.1.3680043.10.543.901", report, "PANO1")
    action = f"/performed-steps/{step.id}/attach"
    assert desk.post(action, data={"accession_number": "WEBACC2"}).status_code == 400
    post_form(desk, "/", action, {"accession_number": "NOSUCH"})
    assert len(steps.unlinked()) == 1
    post_form(desk, "/", action, {"accession_number": "WEBACC2"})
    assert steps.unlinked() == []
    assert [s.id for s in steps.for_procedure(bookings[1])] == [step.id]
    reply = post_form(desk, "/", "/performed-steps/999/attach", {"accession_number": "WEBACC2"})
    assert reply.status_code == 404


def test_a_changed_link_asks_the_print_service_to_file_the_pdf_again(
    settings: Settings, scheduler: Scheduler, users: None, bookings: list[int], job_id: int
) -> None:
    refiled: list[int] = []
    app = create_app(
        settings, scheduler, secret_key="test-secret", refile=refiled.append, testing=True
    )
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    post_form(client, "/print-jobs", f"/print-jobs/{job_id}/link", {"accession_number": "WEBACC1"})
    assert refiled == [job_id]


def test_many_exams_without_a_booking_are_counted_and_paged(
    desk: FlaskClient, scheduler: Scheduler, bookings: list[int]
) -> None:
    """Any AE title may report exams nobody booked: the day view stays small."""
    steps = PerformedSteps(scheduler.session_factory)
    for n in range(30):
        report = StepReport(
            status="IN PROGRESS",
            station_ae_title=f"ROGUE{n}",
            patient_name=f"UNBOOKED^N{n:02d}",
            started_at=dt.datetime.combine(TODAY, dt.time(9, n)),
            references=[],
        )
        steps.create(f"1.2.826.0.1.3680043.10.543.99{n:02d}", report, f"ROGUE{n}")
    assert steps.count_unlinked() == 30

    day = desk.get("/").get_data(as_text=True)
    assert 'Exams done without a booking <span class="muted">(30)</span>' in day
    assert day.count('aria-label="Attach exam') == 5
    assert "All 30 exams done without a booking" in day
    assert day.count("<option") < 100  # no select of every booking per exam

    first = desk.get("/exams-without-booking").get_data(as_text=True)
    second = desk.get("/exams-without-booking?page=2").get_data(as_text=True)
    assert first.count('aria-label="Attach exam') == 20
    assert second.count('aria-label="Attach exam') == 10
    assert "UNBOOKED, N29" in first and "UNBOOKED, N00" in second  # newest first
    assert "Page 2 of 2" in second
    assert desk.get("/exams-without-booking?page=x").status_code == 200
    assert desk.get("/exams-without-booking?page=99999").status_code == 200
