"""Day view, patient search, booking, rescheduling, cancelling, the slip and typed names."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from clinic.domain.attendance import Attendance
from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.domain.performed import PerformedSteps, Reason, StepReference, StepReport
from clinic.web.display import readable_name
from clinic.web.frontdesk import person_name_from_input
from tests.support.frontdesk import book, booking_form
from tests.support.web import BOOKING, post_form

TODAY = dt.date.today()


def test_day_view_lists_today_by_station(desk: FlaskClient, scheduler: Scheduler) -> None:
    scheduler.book({**BOOKING, "scheduled_start": f"{TODAY}T09:30"}, actor="t")
    scheduler.book(
        {
            **BOOKING,
            "patient_id": "P2",
            "patient_name": "ROE^RICHARD",
            "modality": "PX",
            "station_ae_title": "PANO1",
            "scheduled_start": f"{TODAY}T08:00",
        },
        actor="t",
    )
    scheduler.book(
        {
            **BOOKING,
            "patient_id": "P3",
            "patient_name": "TOMORROW^TOM",
            "scheduled_start": f"{TODAY + dt.timedelta(days=1)}T08:00",
        },
        actor="t",
    )
    html = desk.get("/").get_data(as_text=True)
    assert "MÜLLER, HANS" in html and "ROE, RICHARD" in html and "TOMORROW" not in html
    assert "Station XRAY1" in html and "Station PANO1" in html
    assert "(today)" in html
    by_modality = desk.get("/?group=modality").get_data(as_text=True)
    assert "Modality PX" in by_modality
    only = desk.get("/?station=PANO1").get_data(as_text=True)
    assert "ROE, RICHARD" in only and "MÜLLER" not in only
    tomorrow = desk.get(f"/?date={TODAY + dt.timedelta(days=1)}").get_data(as_text=True)
    assert "TOMORROW, TOM" in tomorrow
    assert desk.get("/?status=CANCELLED").get_data(as_text=True).count("<tr class=") == 0
    printable = desk.get(f"/?date={TODAY}&print=1")
    assert printable.status_code == 200
    assert "Day list" in printable.get_data(as_text=True)
    assert desk.get("/?date=2026-02-30").status_code == 400


def test_patient_search(desk: FlaskClient, scheduler: Scheduler) -> None:
    scheduler.book(BOOKING, actor="t")
    scheduler.book(
        {
            **BOOKING,
            "patient_id": "P7",
            "patient_name": "MULLER^ANNA",
            "patient_birth_date": "1990-01-01",
        },
        actor="t",
    )
    for query in ("muller", "Müller hans", "MÜL*", "hans müller", "m?ller", "P100"):
        html = desk.get(f"/patients?q={query}").get_data(as_text=True)
        assert "MÜLLER, HANS" in html, query
    by_date = desk.get("/patients?q=01.01.1990").get_data(as_text=True)
    assert "MULLER, ANNA" in by_date and "HANS" not in by_date
    both = desk.get("/patients?q=muller&birth_date=1970-05-01").get_data(as_text=True)
    assert "HANS" in both and "ANNA" not in both
    bad = desk.get("/patients?birth_date=soon").get_data(as_text=True)
    assert "Please write the date of birth" in bad
    assert "No patient found" in desk.get("/patients?q=nobody").get_data(as_text=True)
    assert 'href="/book?patient=P100"' in desk.get("/patients?q=hans").get_data(as_text=True)


def test_book_new_patient_from_catalog(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog, audit_rows: Any
) -> None:
    page = desk.get("/book").get_data(as_text=True)
    assert '<label for="family_name">Family name</label>' in page
    assert "Chest PA (CR, 10 min)" in page
    response = book(desk)
    assert response.status_code == 302, response.get_data(as_text=True)
    [proc] = scheduler.list_procedures(TODAY)
    assert response.headers["Location"] == f"/procedures/{proc.id}"
    assert proc.patient.name == "Doe^Jane"
    assert proc.patient.patient_id.startswith("P")
    assert proc.modality == "CR" and proc.station_ae_title == "XRAY1"
    assert proc.procedure_description == "Chest PA"
    assert proc.referring_physician == "House^Gregory"
    assert proc.scheduled_start == dt.datetime.combine(TODAY, dt.time(10, 30))
    assert proc.notes == "wheelchair"
    created = [r for r in audit_rows("procedure") if r.action == "create"]
    assert created[-1].actor == "web:alice"
    detail = desk.get(response.headers["Location"]).get_data(as_text=True)
    assert proc.accession_number in detail and "Booked." in detail


def test_book_existing_patient_prefilled(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    scheduler.book(BOOKING, actor="t")
    page = desk.get("/book?patient=P100").get_data(as_text=True)
    assert 'value="MÜLLER"' in page and 'value="HANS"' in page and 'value="1970-05-01"' in page
    response = book(
        desk,
        patient_id="P100",
        family_name="MÜLLER",
        given_name="HANS",
        birth_date="1970-05-01",
        sex="M",
        procedure="OPG",
    )
    assert response.status_code == 302
    procs = [p for p in scheduler.list_procedures() if p.modality == "PX"]
    assert procs[0].patient.patient_id == "P100" and procs[0].station_ae_title == "PANO1"


def test_book_other_procedure_needs_modality(
    desk: FlaskClient, catalog: Catalog, scheduler: Scheduler
) -> None:
    response = book(desk, procedure="", modality="")
    assert response.status_code == 422
    assert "type the modality" in response.get_data(as_text=True)
    response = book(desk, procedure="", modality="us", description="Abdomen", station="XRAY1")
    assert response.status_code == 302
    [proc] = scheduler.list_procedures()
    assert proc.modality == "US" and proc.procedure_description == "Abdomen"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"family_name": ""}, "Please enter the patient&#39;s family name."),
        ({"date": ""}, "Please choose the day of the exam."),
        ({"time": ""}, "Please choose the time of the exam."),
        ({"time": "25:99"}, "Not a valid time value."),
        ({"birth_date": "2999-01-01"}, "The date of birth must not be in the future."),
        ({"procedure": "NOPE"}, "Please choose a procedure from the list."),
        ({"family_name": "Doe\\Back"}, "The patient&#39;s name must not contain a backslash"),
        ({"referring_physician": "A\\B"}, "The referring physician&#39;s name must not"),
        ({"procedure": "", "modality": "CT", "station": ""}, "Please choose the station"),
    ],
)
def test_book_bad_input_saves_nothing(
    desk: FlaskClient,
    scheduler: Scheduler,
    catalog: Catalog,
    audit_rows: Any,
    overrides: dict[str, Any],
    message: str,
) -> None:
    before = len(audit_rows())
    response = book(desk, **overrides)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert 'aria-invalid="true"' in html
    assert "Nothing is booked yet" in html
    assert scheduler.list_procedures() == []
    assert len(audit_rows()) == before


def test_book_without_csrf_is_refused(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    response = desk.post("/book", data=booking_form())
    assert response.status_code == 400
    assert scheduler.list_procedures() == []
    response = desk.post("/book", data={**booking_form(), "csrf_token": "forged"})
    assert response.status_code == 400


def test_duplicate_patient_warning(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    scheduler.book(
        {**BOOKING, "patient_name": "DOE^JANE", "patient_birth_date": "1980-02-03"}, actor="t"
    )
    response = book(desk, family_name="Doé", given_name="J")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "may already be known" in html and "P100" in html
    assert len(scheduler.list_procedures()) == 1
    confirmed = book(desk, family_name="Doé", given_name="J", confirm_new_patient="y")
    assert confirmed.status_code == 302
    assert len(scheduler.list_procedures()) == 2


def test_reschedule_and_cancel(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog, audit_rows: Any
) -> None:
    proc = scheduler.book({**BOOKING, "scheduled_start": f"{TODAY}T09:30"}, actor="t")
    url = f"/procedures/{proc.id}"
    page = desk.get(url).get_data(as_text=True)
    assert "Reschedule or change" in page and "Cancel this exam" in page
    response = post_form(
        desk,
        url,
        f"{url}/reschedule",
        {
            "date": TODAY.isoformat(),
            "time": "14:45",
            "station": "",
            "referring_physician": "",
            "priority": "HIGH",
            "notes": "moved",
        },
    )
    assert response.status_code == 302
    moved = scheduler.get(proc.id)
    assert moved.scheduled_start.time() == dt.time(14, 45) and moved.priority == "HIGH"
    assert audit_rows("procedure")[-1].actor == "web:alice"

    bad = post_form(desk, url, f"{url}/reschedule", {"date": "", "time": "14:45"})
    assert bad.status_code == 422 and "Please choose the new day." in bad.get_data(as_text=True)
    assert (
        desk.post(f"{url}/reschedule", data={"date": "2026-01-01", "time": "1:00"}).status_code
        == 400
    )

    empty = post_form(desk, url, f"{url}/cancel", {"reason": ""})
    assert empty.status_code == 422
    assert "Please say why the exam is cancelled." in empty.get_data(as_text=True)
    assert scheduler.get(proc.id).status == "SCHEDULED"
    assert desk.post(f"{url}/cancel", data={"reason": "x"}).status_code == 400
    done = post_form(desk, url, f"{url}/cancel", {"reason": "Patient called in sick"})
    assert done.status_code == 302
    cancelled = scheduler.get(proc.id)
    assert cancelled.status == "CANCELLED" and cancelled.cancel_reason == "Patient called in sick"
    status_rows = [r for r in audit_rows("procedure") if r.action == "status"]
    assert status_rows[-1].actor == "web:alice"
    page = desk.get(url).get_data(as_text=True)
    assert "Cancel this exam" not in page and "Patient called in sick" in page
    again = post_form(desk, "/book", f"{url}/cancel", {"reason": "again"})
    assert again.status_code == 409


def test_unknown_booking_404(desk: FlaskClient) -> None:
    assert desk.get("/procedures/999").status_code == 404
    assert desk.get("/procedures/999/slip.pdf").status_code == 404


def test_slip_pdf_has_barcode_of_accession(desk: FlaskClient, scheduler: Scheduler) -> None:
    proc = scheduler.book(BOOKING, actor="t")
    response = desk.get(f"/procedures/{proc.id}/slip.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert proc.accession_number in response.headers["Content-Disposition"]


def test_templates_have_labels_for_every_input(desk: FlaskClient, catalog: Catalog) -> None:
    for url in ("/book", "/patients", "/"):
        html = desk.get(url).get_data(as_text=True)
        ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html)
        for ident in ids:
            if ident == "csrf_token":
                continue
            assert f'for="{ident}"' in html or re.search(
                rf'<label>\s*<input[^>]*id="{ident}"', html
            ), (url, ident)


def test_status_buttons(desk: FlaskClient, scheduler: Scheduler, audit_rows: Any) -> None:
    proc = scheduler.book(BOOKING, actor="t")
    url = f"/procedures/{proc.id}"
    assert "Exam started" in desk.get(url).get_data(as_text=True)
    assert desk.post(f"{url}/status", data={"status": "IN_PROGRESS"}).status_code == 400
    skipped = post_form(desk, url, f"{url}/status", {"status": "COMPLETED"})
    assert skipped.status_code == 409
    assert scheduler.get(proc.id).status == "SCHEDULED"
    assert post_form(desk, url, f"{url}/status", {"status": "IN_PROGRESS"}).status_code == 302
    page = desk.get(url).get_data(as_text=True)
    assert "Exam done" in page and "Exam stopped" in page and "Cancel this exam" not in page
    asked = post_form(desk, url, f"{url}/status", {"status": "COMPLETED"})
    assert asked.status_code == 200 and 'id="confirm-status"' in asked.get_data(as_text=True)
    assert scheduler.get(proc.id).status == "IN_PROGRESS"
    done = post_form(desk, url, f"{url}/status", {"status": "COMPLETED", "confirm": "1"})
    assert done.status_code == 302
    assert scheduler.get(proc.id).status == "COMPLETED"
    assert [r.actor for r in audit_rows("procedure") if r.action == "status"] == [
        "web:alice",
        "web:alice",
    ]
    assert "Exam done" not in desk.get(url).get_data(as_text=True)


def _not_done_section(page: str) -> str:
    match = re.search(r'<section aria-labelledby="not-done-h".*?</section>', page, re.S)
    return match.group(0) if match else ""


def test_not_done_exams_are_marked_not_attended(
    desk: FlaskClient, scheduler: Scheduler, audit_rows: Any
) -> None:
    def at(days: int, accession: str, patient: str) -> int:
        start = dt.datetime.combine(TODAY + dt.timedelta(days=days), dt.time(9, 0))
        raw = {
            **BOOKING,
            "patient_id": patient,
            "accession_number": accession,
            "scheduled_start": start.strftime("%Y-%m-%dT%H:%M"),
        }
        return scheduler.book(raw, actor="t").id

    stale = at(-3, "OLD3", "PN3")
    yesterday = at(-1, "YDAY1", "PN1")
    coming = at(2, "NEXT2", "PN2")

    page = desk.get("/").get_data(as_text=True)
    section = _not_done_section(page)
    assert "OLD3" in section  # three days ago: off the worklist, listed as not done
    assert "YDAY1" not in section and "NEXT2" not in section  # yesterday's is still served
    assert f"/procedures/{stale}/not-attended" in section
    assert f"/procedures/{stale}#resched-h" in section  # reschedule on its page
    booking_page = desk.get(f"/procedures/{stale}").get_data(as_text=True)
    assert "no longer on the worklist" in booking_page and "Not attended" in booking_page
    assert "no longer on the worklist" not in desk.get(f"/procedures/{yesterday}").get_data(
        as_text=True
    )

    url = f"/procedures/{stale}/not-attended"
    assert desk.post(url, data={}).status_code == 400  # no CSRF token
    assert scheduler.get(stale).status == "SCHEDULED"
    done = post_form(desk, "/", url, {"date": TODAY.isoformat()})
    assert done.status_code == 302
    assert f"date={TODAY.isoformat()}" in done.headers["Location"]
    marked = scheduler.get(stale)
    assert (marked.status, marked.cancel_reason) == ("CANCELLED", "Not attended")
    [entry] = [r for r in audit_rows("procedure") if r.entity_id == str(stale)][-1:]
    assert entry.actor == "web:alice" and entry.action == "status"
    assert json.loads(entry.detail) == {
        "status": ["SCHEDULED", "CANCELLED"],
        "reason": "Not attended",
    }
    assert "OLD3" not in _not_done_section(desk.get("/").get_data(as_text=True))

    # Yesterday's may be marked too (its time has passed); an exam still to come may not.
    assert post_form(desk, "/", f"/procedures/{yesterday}/not-attended", {}).status_code == 302
    assert scheduler.get(yesterday).cancel_reason == "Not attended"
    refused = post_form(desk, "/", f"/procedures/{coming}/not-attended", {})
    assert refused.status_code == 409
    assert "whose time has passed" in refused.get_data(as_text=True)
    assert scheduler.get(coming).status == "SCHEDULED"
    again = post_form(desk, "/", url, {})
    assert again.status_code == 409  # already cancelled


def test_booking_page_shows_each_steps_study_uid_and_a_wrong_entry(
    desk: FlaskClient, scheduler: Scheduler
) -> None:
    proc = scheduler.book({**BOOKING, "step_id": "SPS9", "requested_procedure_id": "RP9"}, "t")
    steps = PerformedSteps(scheduler.session_factory)
    own_uid = "1.2.826.0.1.3680043.10.543.4242"
    started = dt.datetime.combine(TODAY, dt.time(9, 40))
    ref = StepReference(study_instance_uid=own_uid, step_id="SPS9", requested_procedure_id="RP9")
    report = StepReport(status="IN PROGRESS", started_at=started, references=[ref])
    steps.create("1.2.3.4.5.6.1", report, "PANO1")
    page = desk.get(f"/procedures/{proc.id}").get_data(as_text=True)
    assert own_uid in page and "the modality's own" in page
    assert proc.study_instance_uid in page
    assert "wrong worklist entry" not in page

    wrong = Reason("110514", "DCM", "Incorrect worklist entry selected")
    steps.update(
        "1.2.3.4.5.6.1",
        StepReport(status="DISCONTINUED", ended_at=started, discontinuation_reasons=[wrong]),
        "PANO1",
    )
    assert scheduler.get(proc.id).status == "SCHEDULED"
    page = desk.get(f"/procedures/{proc.id}").get_data(as_text=True)
    assert "taken on the wrong worklist entry" in page
    assert "110514 (DCM) Incorrect worklist entry selected" in page
    assert "Exam started" in page  # back to booked: the usual buttons again


def test_not_done_lists_the_most_recent_and_counts_them_all(scheduler: Scheduler) -> None:
    for days in (3, 4, 5):
        start = dt.datetime.combine(TODAY - dt.timedelta(days=days), dt.time(9, 0))
        scheduler.book(
            {
                **BOOKING,
                "patient_id": f"ND{days}",
                "accession_number": f"ND{days}",
                "scheduled_start": start.strftime("%Y-%m-%dT%H:%M"),
            },
            actor="t",
        )
    attendance = Attendance(scheduler)
    shown, total = attendance.not_done(1, limit=2)
    assert [p.accession_number for p in shown] == ["ND3", "ND4"] and total == 3
    assert attendance.not_done(4)[1] == 1  # past_days 4: 3 and 4 days ago are still served


@pytest.mark.parametrize(
    ("typed", "stored", "shown"),
    [
        ("House, Gregory", "House^Gregory", "House, Gregory"),
        ("HOUSE^GREGORY", "HOUSE^GREGORY", "HOUSE, GREGORY"),
        ("House", "House", "House"),
        ("", "", ""),
    ],
)
def test_person_names(typed: str, stored: str, shown: str) -> None:
    assert person_name_from_input(typed) == stored
    assert readable_name(stored) == shown


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
