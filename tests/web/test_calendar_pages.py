"""Calendar pages through the test client: week, day view times, booking into free time,
overlap confirmation, check-in, the patient page and a station's opening hours in Admin."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from babel.dates import format_skeleton
from flask.testing import FlaskClient

from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.store.models import AuditEntry, Station
from tests.support import frontdesk
from tests.support.web import BOOKING, csrf_token, post_form

#: A Thursday well in the future, so "next free times" start at opening.
DAY = dt.date(2031, 11, 27)
MONDAY = DAY - dt.timedelta(days=DAY.weekday())


@pytest.fixture
def catalog(scheduler: Scheduler) -> Catalog:
    cat = Catalog(scheduler.session_factory)
    cat.save_station({"ae_title": "XRAY1", "modality": "CR", "name": "X-ray 1"}, "test")
    cat.save_entry(
        {
            "code": "CXR",
            "description": "Chest PA",
            "modality": "CR",
            "default_station": "XRAY1",
            "duration_minutes": 20,
        },
        "test",
    )
    return cat


def at(hhmm: str, day: dt.date = DAY) -> str:
    return f"{day.isoformat()}T{hhmm}"


def booking_form(**overrides: Any) -> dict[str, Any]:
    """The front desk's booking form on :data:`DAY` at 10:00, a new patient confirmed."""
    return frontdesk.booking_form(
        **{
            "date": DAY.isoformat(),
            "time": "10:00",
            "referring_physician": "",
            "notes": "",
            "confirm_new_patient": "y",
            **overrides,
        }
    )


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def test_week_view_shows_bookings_free_time_and_closed_days(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    scheduler.book({**BOOKING, "scheduled_start": at("09:30"), "duration_minutes": 30}, "t")
    scheduler.book(
        {
            **BOOKING,
            "patient_id": "P2",
            "patient_name": "ROE^RICHARD",
            "scheduled_start": at("09:45"),
        },
        "t",
    )
    page = desk.get(f"/week?station=XRAY1&date={DAY.isoformat()}")
    assert page.status_code == 200
    body = text(page)
    # The second takes the catalog's 20 minutes for its description and modality.
    assert "09:30–10:00" in body and "09:45–10:05" in body
    assert body.count("Overlaps") == 2
    assert "Free 08:00–09:30" in body and "Free 10:05–17:00" in body
    # Free time opens the booking form pre-filled.
    link = f"/book?station=XRAY1&amp;date={DAY.isoformat()}&amp;time=10:05"
    assert link in body
    form = text(desk.get(link.replace("&amp;", "&")))
    assert 'value="10:05"' in form and f'value="{DAY.isoformat()}"' in form
    assert re.search(r'<option selected value="XRAY1">|<option value="XRAY1" selected>', form)
    # Saturday and Sunday are closed; Monday to Sunday of that week are shown.
    assert body.count('class="closed"') == 2
    assert format_skeleton("MMMEd", MONDAY, locale="en") in body  # "Mon, Nov 24"
    assert format_skeleton("MMMEd", MONDAY + dt.timedelta(days=6), locale="en") in body


def test_week_view_station_choice_and_errors(
    desk: FlaskClient, client: FlaskClient, catalog: Catalog
) -> None:
    first = desk.get("/week")
    assert first.status_code == 302 and "station=XRAY1" in first.headers["Location"]
    assert desk.get("/week?station=NOSUCH").status_code == 404
    assert desk.get("/week?station=XRAY1&date=27.11.2031").status_code == 400
    assert client.get("/week?station=XRAY1").status_code == 302  # to the login page


def test_week_view_without_stations(desk: FlaskClient) -> None:
    page = desk.get("/week")
    assert page.status_code == 200
    assert "no stations yet" in text(page)


def test_day_view_shows_end_times_overlaps_free_time_and_arrived(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    first = scheduler.book({**BOOKING, "scheduled_start": at("09:30")}, "t")
    scheduler.book(
        {
            **BOOKING,
            "patient_id": "P2",
            "patient_name": "ROE^RICHARD",
            "scheduled_start": at("09:35"),
        },
        "t",
    )
    scheduler.book(
        {
            **BOOKING,
            "patient_id": "P3",
            "patient_name": "POE^EDGAR",
            "scheduled_start": at("11:00"),
        },
        "t",
    )
    url = f"/?date={DAY.isoformat()}"
    body = text(desk.get(url))
    assert "09:30–09:50" in body and "11:00–11:20" in body
    assert body.count('class="overlap-mark"') == 2
    assert "time=09:55" in body and "09:55–11:00" in body  # free time links
    assert body.count(">Arrived</button>") == 3
    answer = post_form(desk, url, f"/procedures/{first.id}/arrive", {"next": url})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(url)
    assert scheduler.get(first.id).status == "ARRIVED"
    body = text(desk.get(url))
    assert body.count(">Arrived</button>") == 2
    assert "status-ARRIVED" in body
    # Again: refused with a message, nothing changes; a foreign "next" is not followed.
    again = post_form(desk, url, f"/procedures/{first.id}/arrive", {"next": "//evil.example/"})
    assert again.status_code == 302 and "evil" not in again.headers["Location"]
    assert "cannot be checked in" in text(desk.get(again.headers["Location"]))


def test_procedure_page_arrived_button_and_end_time(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    proc = scheduler.book({**BOOKING, "scheduled_start": at("09:30"), "duration_minutes": 25}, "t")
    page = text(desk.get(f"/procedures/{proc.id}"))
    assert "09:30–09:55 (25 min)" in page
    assert f'action="/procedures/{proc.id}/arrive"' in page
    assert f'href="/patients/{BOOKING["patient_id"]}"' in page
    answer = post_form(desk, f"/procedures/{proc.id}", f"/procedures/{proc.id}/arrive", {})
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/procedures/{proc.id}")
    page = text(desk.get(f"/procedures/{proc.id}"))
    assert "/arrive" not in page
    # The booking is days ahead: it is started on its day, not now; it can still be cancelled.
    assert "Exam started" not in page and "on its day" in page and "Cancel the exam" in page


def test_booking_into_a_taken_slot_asks_for_confirmation(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    taken = scheduler.book({**BOOKING, "scheduled_start": at("10:00")}, "t")
    clash = post_form(desk, "/book", "/book", booking_form(time="10:10"))
    assert clash.status_code == 409
    body = text(clash)
    assert "already booked at that time" in body
    assert taken.accession_number in body
    assert 'name="allow_overlap"' in body
    assert len(scheduler.list_procedures(DAY)) == 1
    # Adjacent (10:00 + the catalog's 20 minutes, 10:20) is booked without a question.
    adjacent = post_form(desk, "/book", "/book", booking_form(time="10:20"))
    assert adjacent.status_code == 302
    confirmed = post_form(desk, "/book", "/book", booking_form(time="10:10", allow_overlap="y"))
    assert confirmed.status_code == 302
    durations = sorted(p.duration_minutes for p in scheduler.list_procedures(DAY))
    assert durations == [20, 20, 20]  # the catalog's 20 minutes for CXR


def test_booking_form_offers_next_free_times(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    scheduler.book({**BOOKING, "scheduled_start": at("08:00"), "duration_minutes": 30}, "t")
    page = text(desk.get(f"/book?station=XRAY1&procedure=CXR&date={DAY.isoformat()}"))
    assert "Next free slots" in page and "(20 min)" in page
    picks = re.findall(r'name="pick" value="([^"]+)"', page)
    assert picks[:3] == [at("08:30"), at("08:50"), at("09:10")]
    # Picking one keeps what was typed and fills date and time; nothing is booked.
    picked = post_form(
        desk, "/book", "/book", booking_form(family_name="Typed", time="", pick=at("08:50"))
    )
    assert picked.status_code == 200
    body = text(picked)
    assert 'value="Typed"' in body and 'value="08:50"' in body
    assert len(scheduler.list_procedures(DAY)) == 1
    # "Show free slots" for the procedure's usual station.
    shown = post_form(desk, "/book", "/book", booking_form(action="slots"))
    assert shown.status_code == 200
    assert at("08:30") in text(shown)


def test_reschedule_into_a_taken_slot_asks_for_confirmation(
    desk: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    scheduler.book({**BOOKING, "scheduled_start": at("10:00")}, "t")
    moving = scheduler.book(
        {
            **BOOKING,
            "patient_id": "P2",
            "patient_name": "ROE^RICHARD",
            "scheduled_start": at("12:00"),
        },
        "t",
    )
    page = f"/procedures/{moving.id}"
    data = {"date": DAY.isoformat(), "time": "10:05", "station": "", "duration_minutes": "15"}
    clash = post_form(desk, page, f"{page}/reschedule", data)
    assert clash.status_code == 409
    assert 'name="allow_overlap"' in text(clash)
    assert scheduler.get(moving.id).scheduled_start.strftime("%H:%M") == "12:00"
    done = post_form(desk, page, f"{page}/reschedule", {**data, "allow_overlap": "y"})
    assert done.status_code == 302
    assert scheduler.get(moving.id).scheduled_start.strftime("%H:%M") == "10:05"
    longer = post_form(desk, page, f"{page}/reschedule", {**data, "duration_minutes": "45"})
    assert longer.status_code == 409  # a longer booking would overlap more: asked again
    assert scheduler.get(moving.id).duration_minutes == 15


def test_patient_page_lists_bookings_and_edits_contact(
    desk: FlaskClient,
    scheduler: Scheduler,
    catalog: Catalog,
    audit_rows: Callable[..., list[AuditEntry]],
) -> None:
    past = scheduler.book({**BOOKING, "scheduled_start": "2020-03-04T09:00"}, "t")
    upcoming = scheduler.book({**BOOKING, "scheduled_start": at("09:00")}, "t")
    url = f"/patients/{BOOKING['patient_id']}"
    page = desk.get(url)
    assert page.status_code == 200
    body = text(page)
    assert "MÜLLER, HANS" in body
    upcoming_part, past_part = body.split('id="past-h"')
    assert f"/procedures/{upcoming.id}" in upcoming_part.split('id="upcoming-h"')[1]
    assert f"/procedures/{past.id}" in past_part
    saved = post_form(desk, url, f"{url}/contact", {"phone": "+49 30 1234567", "email": "h@x.de"})
    assert saved.status_code == 302
    body = text(desk.get(url))
    assert "+49 30 1234567" in body and "h@x.de" in body
    row = [r for r in audit_rows("patient") if r.action == "update"][-1]
    assert row.actor == "web:alice"
    assert json.loads(row.detail) == {"phone": ["", "+49 30 1234567"], "email": ["", "h@x.de"]}
    bad = post_form(desk, url, f"{url}/contact", {"phone": "call me", "email": "nope"})
    assert bad.status_code == 422
    assert "The phone number may hold only" in text(bad)
    assert "is not an e-mail address" in text(bad)
    assert desk.get("/patients/NOSUCH").status_code == 404


def test_patient_page_needs_sign_in(client: FlaskClient) -> None:
    answer = client.get("/patients/P100")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_admin_sets_a_stations_own_hours(
    admin: FlaskClient,
    desk: FlaskClient,
    scheduler: Scheduler,
    catalog: Catalog,
    audit_rows: Callable[..., list[AuditEntry]],
) -> None:
    with scheduler.session_factory() as session:
        station_id = session.query(Station).filter_by(ae_title="XRAY1").one().id
    url = f"/admin/stations/{station_id}"
    page = text(admin.get(url))
    assert 'value="08:00-17:00"' in page
    hours = {day: "08:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")}
    data = {**hours, "thu": "07:00-12:00", "sat": "09:00-11:00", "sun": "", "own_hours": "y"}
    token = csrf_token(admin, url)
    saved = admin.post(
        f"{url}/hours", data={**data, "closed_dates": "2031-11-28", "csrf_token": token}
    )
    assert saved.status_code == 302
    assert any(r.entity == "station" and "opening_hours" in r.detail for r in audit_rows("station"))
    slots = desk.get(f"/api/free-slots?station=XRAY1&date={DAY.isoformat()}")
    assert slots.get_json() == [{"start": at("07:00"), "end": at("12:00")}]
    friday = DAY + dt.timedelta(days=1)
    assert desk.get(f"/api/free-slots?station=XRAY1&date={friday.isoformat()}").get_json() == []
    bad = admin.post(
        f"{url}/hours",
        data={**data, "thu": "7 to 12", "closed_dates": "", "csrf_token": csrf_token(admin, url)},
    )
    assert bad.status_code == 422
    assert "is not written HH:MM-HH:MM" in text(bad)
    # Back to the clinic's hours.
    back = admin.post(f"{url}/hours", data={**data, "own_hours": "", "csrf_token": token})
    assert back.status_code == 302
    assert desk.get(f"/api/free-slots?station=XRAY1&date={DAY.isoformat()}").get_json() == [
        {"start": at("08:00"), "end": at("17:00")}
    ]
    assert desk.post(f"{url}/hours", data=data).status_code in (400, 403)


def test_week_view_drag_and_drop_is_an_enhancement(
    desk: FlaskClient, client: FlaskClient, scheduler: Scheduler, catalog: Catalog
) -> None:
    proc = scheduler.book({**BOOKING, "scheduled_start": at("09:30")}, "t")
    body = text(desk.get(f"/week?station=XRAY1&date={DAY.isoformat()}"))
    assert f'data-booking="{proc.id}" data-movable="1"' in body
    assert f'data-start="{at("09:50")}"' in body
    assert '<script src="/week.js" defer></script>' in body
    assert 'data-csrf="' in body
    # Every booking still links to its page, where the reschedule form works without script.
    assert f'href="/procedures/{proc.id}"' in body
    script = client.get("/week.js")
    assert script.status_code == 200
    assert script.mimetype == "text/javascript"
    assert "/api/procedures/" in script.get_data(as_text=True)
    # What the script sends: a PATCH with the session and the CSRF header.
    token = re.search(r'data-csrf="([^"]+)"', body)
    assert token
    moved = desk.patch(
        f"/api/procedures/{proc.id}",
        json={"scheduled_start": at("13:00")},
        headers={"X-CSRFToken": token.group(1)},
    )
    assert moved.status_code == 200
    assert scheduler.get(proc.id).scheduled_start.strftime("%H:%M") == "13:00"
