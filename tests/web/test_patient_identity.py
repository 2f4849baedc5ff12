"""Patient identity at the web doors: REST 409 with the conflicts, the form's confirm step."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask.testing import FlaskClient

from clinic.domain.bookings import Scheduler
from tests.support.web import BOOKING, post_form


def _post(api: FlaskClient, body: dict[str, Any]) -> Any:
    return api.post("/api/procedures", json=body)


def test_rest_conflict_is_409_naming_each_field_then_update_on_purpose(
    api: FlaskClient, scheduler: Scheduler, audit_rows: Any
) -> None:
    assert _post(api, BOOKING).status_code == 201
    other = {
        **BOOKING,
        "patient_birth_date": "1970-01-05",
        "patient_sex": "F",
        "scheduled_start": "2026-11-27T10:00",
    }
    answer = _post(api, other)
    assert answer.status_code == 409
    assert answer.get_json()["conflicts"] == {
        "patient_birth_date": {"stored": "1970-05-01", "sent": "1970-01-05"},
        "patient_sex": {"stored": "M", "sent": "F"},
    }
    assert len(scheduler.list_procedures()) == 1

    assert _post(api, {**other, "update_patient": "yes"}).status_code == 422
    created = _post(api, {**other, "update_patient": True})
    assert created.status_code == 201, created.get_json()
    first = api.get("/api/procedures?date=2026-11-26").get_json()[0]
    assert (first["patient_birth_date"], first["patient_sex"]) == ("1970-01-05", "F")
    change = [a for a in audit_rows("patient") if a.action == "update"][-1]
    assert change.actor == "api:alice"


def test_rest_patch_conflict(api: FlaskClient) -> None:
    proc = _post(api, BOOKING).get_json()
    url = f"/api/procedures/{proc['id']}"
    answer = api.patch(url, json={"patient_name": "SMITH^JOHN", "notes": "late"})
    assert answer.status_code == 409
    assert answer.get_json()["conflicts"]["patient_name"] == {
        "stored": "MÜLLER^HANS",
        "sent": "SMITH^JOHN",
    }
    assert api.get(url).get_json()["notes"] == ""
    answer = api.patch(url, json={"patient_name": "SMITH^JOHN", "update_patient": True})
    assert answer.status_code == 200
    assert answer.get_json()["patient_name"] == "SMITH^JOHN"


def _form(**overrides: Any) -> dict[str, Any]:
    data = {
        "patient_id": "P100",
        "family_name": "MÜLLER",
        "given_name": "HANS",
        "birth_date": "1970-05-02",
        "sex": "M",
        "procedure": "",
        "modality": "CR",
        "station": "",
        "date": dt.date.today().isoformat(),
        "time": "10:30",
        "referring_physician": "",
        "priority": "",
        "notes": "",
    }
    data.update(overrides)
    return data


def test_form_shows_stored_and_typed_then_updates_when_confirmed(
    desk: FlaskClient, scheduler: Scheduler
) -> None:
    scheduler.book(BOOKING, actor="t")
    answer = post_form(desk, "/book", "/book", _form())
    assert answer.status_code == 409
    page = answer.get_data(as_text=True)
    assert "is stored with other details" in page
    assert "<td>1970-05-01</td>" in page and "<td>1970-05-02</td>" in page
    assert 'name="update_patient"' in page
    assert len(scheduler.list_procedures()) == 1

    answer = post_form(desk, "/book", "/book", _form(update_patient="y"))
    assert answer.status_code == 302
    assert {p.patient.birth_date for p in scheduler.list_procedures()} == {dt.date(1970, 5, 2)}


def test_form_same_details_books_without_a_question(
    desk: FlaskClient, scheduler: Scheduler
) -> None:
    scheduler.book(BOOKING, actor="t")
    answer = post_form(desk, "/book", "/book", _form(birth_date="1970-05-01"))
    assert answer.status_code == 302
    assert len(scheduler.list_procedures()) == 2


def test_similar_patients_api(api: FlaskClient, scheduler: Scheduler) -> None:
    scheduler.book(BOOKING, actor="t")  # MÜLLER^HANS, 1970-05-01
    answer = api.get(
        "/api/patients/similar?patient_name=Mueller^Hans&patient_birth_date=1970-01-05"
    )
    assert answer.status_code == 200
    assert answer.get_json() == [
        {
            "patient_id": "P100",
            "patient_name": "MÜLLER^HANS",
            "patient_birth_date": "1970-05-01",
            "patient_sex": "M",
            "reasons": ["same name, birth date with day and month swapped"],
        }
    ]
    assert api.get("/api/patients/similar?patient_name=Other^Person").get_json() == []
    bad = api.get("/api/patients/similar?patient_birth_date=1970-13-01")
    assert bad.status_code == 400
    assert set(bad.get_json()["errors"]) == {"patient_name", "patient_birth_date"}


def test_merge_moves_bookings_keeps_details_in_the_audit_log(
    admin: FlaskClient, scheduler: Scheduler, audit_rows: Any
) -> None:
    scheduler.book(BOOKING, actor="t")
    twin = scheduler.book(
        {
            **BOOKING,
            "patient_id": "P200",
            "patient_name": "MUELLER^HANS",
            "scheduled_start": "2026-11-27T09:30",
        },
        actor="t",
    )
    page = admin.get("/admin/patients/merge?keep=P100&merge=P200")
    assert page.status_code == 200
    shown = post_form(
        admin,
        "/admin/patients/merge",
        "/admin/patients/merge",
        {"keep_patient_id": "P100", "merge_patient_id": "P200"},
    )
    text = shown.get_data(as_text=True)
    assert "MUELLER, HANS" in text and "MÜLLER, HANS" in text
    assert scheduler.get(twin.id).patient.patient_id == "P200"  # not merged without confirming
    done = post_form(
        admin,
        "/admin/patients/merge",
        "/admin/patients/merge",
        {"keep_patient_id": "P100", "merge_patient_id": "P200", "confirm": "y"},
    )
    assert done.status_code == 302
    assert scheduler.get(twin.id).patient.patient_id == "P100"
    gone = [a for a in audit_rows("patient") if a.entity_id == "P200" and a.action == "delete"]
    assert gone and "MUELLER^HANS" in gone[0].detail and gone[0].actor == "web:root"


def test_merge_api_is_for_administrators(
    api: FlaskClient, app: Any, accounts: Any, scheduler: Scheduler
) -> None:
    scheduler.book(BOOKING, actor="t")
    twin = scheduler.book(
        {**BOOKING, "patient_id": "P200", "scheduled_start": "2026-11-27T09:30"}, actor="t"
    )
    assert api.post("/api/patients/P100/merge", json={"patient_id": "P200"}).status_code == 403
    admin_api = app.test_client()
    admin_api.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + accounts.create_token(
        "root", actor="test"
    )
    answer = admin_api.post("/api/patients/P100/merge", json={"patient_id": "P200"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {
        "patient_id": "P100",
        "merged_patient_id": "P200",
        "procedures": [twin.id],
    }
    assert scheduler.get(twin.id).patient.patient_id == "P100"
    missing = admin_api.post("/api/patients/P100/merge", json={"patient_id": "NOPE"})
    assert missing.status_code == 404
    assert admin_api.post("/api/patients/P100/merge", json={}).status_code == 422


def test_patient_page_says_who_changed_what_and_when(
    api: FlaskClient, desk: FlaskClient, scheduler: Scheduler
) -> None:
    assert _post(api, BOOKING).status_code == 201
    changed = {
        **BOOKING,
        "patient_birth_date": "1970-01-05",
        "scheduled_start": "2026-11-27T10:00",
        "update_patient": True,
    }
    assert _post(api, changed).status_code == 201
    page = desk.get("/patients/P100").get_data(as_text=True)
    assert (
        "Changes to the patient&#39;s details" in page or "Changes to the patient's details" in page
    )
    assert "api:alice" in page
    assert "birth date: 1970-05-01 → 1970-01-05" in page
    assert "registered" in page
