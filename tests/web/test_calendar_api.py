"""REST API of the calendar: durations, overlaps (409), check-in, free slots, patients."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from clinic.domain.bookings import Scheduler
from clinic.domain.calendar import Calendar
from clinic.domain.print_links import PrintLinks
from clinic.store.models import AuditEntry, PrintJob
from tests.support.web import BOOKING


def book(api: FlaskClient, **fields: Any) -> Any:
    return api.post("/api/procedures", json={**BOOKING, **fields})


def test_duration_defaults_to_fifteen_and_may_be_sent(api: FlaskClient) -> None:
    first = book(api)
    assert first.status_code == 201
    assert first.get_json()["duration_minutes"] == 15
    second = book(api, scheduled_start="2026-11-26T11:00", duration_minutes=40)
    assert second.get_json()["duration_minutes"] == 40
    bad = book(api, scheduled_start="2026-11-26T12:00", duration_minutes=0)
    assert bad.status_code == 422
    assert "duration_minutes" in bad.get_json()["errors"]


def test_overlap_is_409_with_ids_and_nothing_is_written(
    api: FlaskClient, scheduler: Scheduler
) -> None:
    first = book(api, duration_minutes=30).get_json()  # 09:30-10:00
    clash = book(
        api, patient_id="P2", patient_name="ROE^RICHARD", scheduled_start="2026-11-26T09:45"
    )
    assert clash.status_code == 409
    assert clash.get_json()["overlaps"] == [first["id"]]
    with scheduler.session_factory() as session:
        assert session.query(AuditEntry).filter_by(entity="patient", entity_id="P2").count() == 0
    assert len(api.get("/api/procedures?date=2026-11-26").get_json()) == 1
    # Adjacent is fine; confirmed is fine.
    adjacent = book(
        api, patient_id="P2", patient_name="ROE^RICHARD", scheduled_start="2026-11-26T10:00"
    )
    assert adjacent.status_code == 201
    confirmed = book(
        api,
        patient_id="P2",
        patient_name="ROE^RICHARD",
        scheduled_start="2026-11-26T09:45",
        allow_overlap=True,
    )
    assert confirmed.status_code == 201
    bad = book(api, scheduled_start="2026-11-26T15:00", allow_overlap="yes")
    assert bad.status_code == 422
    assert "allow_overlap" in bad.get_json()["errors"]


def test_patch_into_a_taken_slot_is_409_unless_allowed(api: FlaskClient) -> None:
    first = book(api, duration_minutes=30).get_json()
    second = book(api, scheduled_start="2026-11-26T11:00").get_json()
    moved = api.patch(
        f"/api/procedures/{second['id']}", json={"scheduled_start": "2026-11-26T09:40"}
    )
    assert moved.status_code == 409
    assert moved.get_json() == {"error": moved.get_json()["error"], "overlaps": [first["id"]]}
    assert api.get(f"/api/procedures/{second['id']}").get_json()["scheduled_start"] == (
        "2026-11-26T11:00"
    )
    longer = api.patch(f"/api/procedures/{first['id']}", json={"duration_minutes": 120})
    assert longer.status_code == 409
    allowed = api.patch(
        f"/api/procedures/{second['id']}",
        json={"scheduled_start": "2026-11-26T09:40", "allow_overlap": True},
    )
    assert allowed.status_code == 200
    assert allowed.get_json()["scheduled_start"] == "2026-11-26T09:40"


def test_arrive_sets_arrived_audited_and_only_once(
    api: FlaskClient, audit_rows: Callable[..., list[AuditEntry]]
) -> None:
    proc = book(api).get_json()
    answer = api.post(f"/api/procedures/{proc['id']}/arrive")
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "ARRIVED"
    row = [r for r in audit_rows("procedure") if r.action == "status"][-1]
    assert row.actor == "api:alice"
    assert "ARRIVED" in row.detail and "SCHEDULED" in row.detail
    again = api.post(f"/api/procedures/{proc['id']}/arrive")
    assert again.status_code == 409
    assert api.post("/api/procedures/999999/arrive").status_code == 404
    cancelled = api.post(f"/api/procedures/{proc['id']}/cancel", json={"reason": "left"})
    assert cancelled.get_json()["status"] == "CANCELLED"


def test_arrive_needs_authentication(client: FlaskClient) -> None:
    assert client.post("/api/procedures/1/arrive").status_code == 401
    assert client.get("/api/free-slots?station=XRAY1&date=2026-11-26").status_code == 401
    assert client.get("/api/patients/P100").status_code == 401


def test_free_slots(api: FlaskClient, scheduler: Scheduler) -> None:
    book(api, scheduled_start="2026-11-26T10:00", duration_minutes=30)
    book(api, scheduled_start="2026-11-26T10:30", duration_minutes=30)
    answer = api.get("/api/free-slots?station=XRAY1&date=2026-11-26&duration=30")
    assert answer.status_code == 200
    assert answer.get_json() == [
        {"start": "2026-11-26T08:00", "end": "2026-11-26T10:00"},
        {"start": "2026-11-26T11:00", "end": "2026-11-26T17:00"},
    ]
    assert api.get("/api/free-slots?station=XRAY1&date=2026-11-26&duration=121").get_json() == [
        {"start": "2026-11-26T11:00", "end": "2026-11-26T17:00"}
    ]
    # A closed day (Saturday) and a closed date.
    assert api.get("/api/free-slots?station=XRAY1&date=2026-11-28&duration=15").get_json() == []
    Calendar(scheduler.session_factory).save_station_hours("XRAY1", None, ["2026-11-27"], "t")
    assert api.get("/api/free-slots?station=XRAY1&date=2026-11-27").get_json() == []
    # Without duration: the default duration.
    assert len(api.get("/api/free-slots?station=XRAY1&date=2026-11-26").get_json()) == 2


def test_free_slots_bad_parameters(api: FlaskClient) -> None:
    book(api)
    for query, field in (
        ("date=2026-11-26", "station"),
        ("station=XRAY1", "date"),
        ("station=XRAY1&date=26.11.2026", "date"),
        ("station=XRAY1&date=2026-11-26&duration=0", "duration"),
        ("station=XRAY1&date=2026-11-26&duration=abc", "duration"),
        ("station=XRAY1&date=2026-11-26&duration=100000", "duration"),
    ):
        answer = api.get(f"/api/free-slots?{query}")
        assert answer.status_code == 400, query
        assert field in answer.get_json()["errors"], query
    unknown = api.get("/api/free-slots?station=NOSUCH&date=2026-11-26&duration=15")
    assert unknown.status_code == 404


def test_patient_record(api: FlaskClient, scheduler: Scheduler) -> None:
    past = book(api, scheduled_start="2020-01-10T09:00").get_json()
    upcoming = book(api, scheduled_start="2030-01-10T09:00").get_json()
    book(api, patient_id="OTHER", patient_name="ROE^RICHARD", scheduled_start="2030-02-10T09:00")
    with scheduler.session_factory.begin() as session:
        session.add(
            PrintJob(
                sop_instance_uid="1.2.3.4",
                calling_ae_title="XRAY1",
                printer_ae_title="PDFPRINT",
                spool_dir="job-1",
            )
        )
    with scheduler.session_factory() as session:
        job_id = session.query(PrintJob).one().id
    PrintLinks(scheduler.session_factory).set_link(job_id, past["id"], "t")
    answer = api.get("/api/patients/P100")
    assert answer.status_code == 200
    body = answer.get_json()
    assert {k: body[k] for k in ("patient_id", "patient_name", "patient_birth_date")} == {
        "patient_id": "P100",
        "patient_name": "MÜLLER^HANS",
        "patient_birth_date": "1970-05-01",
    }
    assert body["patient_sex"] == "M"
    assert body["phone"] == "" and body["email"] == ""
    assert [b["id"] for b in body["bookings"]] == [past["id"], upcoming["id"]]
    assert body["bookings"][0] == api.get(f"/api/procedures/{past['id']}").get_json()
    assert [j["id"] for j in body["print_jobs"]] == [job_id]
    assert api.get("/api/patients/NOSUCH").status_code == 404


def test_openapi_describes_the_calendar(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    paths = doc["paths"]
    for path in (
        "/api/procedures/{id}/arrive",
        "/api/free-slots",
        "/api/patients/{patient_id}",
    ):
        assert path in paths, path
    assert "409" in paths["/api/procedures"]["post"]["responses"]
    schema = doc["components"]["schemas"]["Procedure"]["properties"]
    assert "ARRIVED" in schema["status"]["enum"]
    assert schema["duration_minutes"]["type"] == "integer"
    request = doc["components"]["schemas"]["BookingWrite"]["allOf"][1]["properties"]
    assert request["allow_overlap"]["type"] == "boolean"
    body = paths["/api/procedures"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/BookingWrite"}
    conflict = doc["components"]["schemas"]["Conflict"]["properties"]
    assert conflict["overlaps"]["items"] == {"type": "integer"}


def test_one_slot_booked_at_once_by_many_goes_to_one(
    app: Flask, token: str, scheduler: Scheduler
) -> None:
    statuses: list[int] = []
    start = threading.Barrier(6)

    def attempt(number: int) -> None:
        caller = app.test_client()
        caller.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        start.wait(timeout=30)
        answer = caller.post(
            "/api/procedures",
            json={**BOOKING, "patient_id": f"C{number}", "patient_name": f"CALLER^{number}"},
        )
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [201] + [409] * 5
    assert len(scheduler.list_procedures(dt.date(2026, 11, 26))) == 1
