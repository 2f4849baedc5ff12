"""The REST API of INTERFACE.md: auth, JSON shapes, per-field errors, audit, pagination."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient

from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.domain.print_jobs import job_to_dict
from clinic.store.models import PrintJob
from tests.support.web import BOOKING, csrf_token


def create(api: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = api.post("/api/procedures", json={**BOOKING, **overrides})
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/procedures"),
        ("post", "/api/procedures"),
        ("get", "/api/procedures/1"),
        ("patch", "/api/procedures/1"),
        ("post", "/api/procedures/1/cancel"),
    ],
)
def test_401_without_token(client: FlaskClient, method: str, url: str) -> None:
    response = getattr(client, method)(url, json={})
    assert response.status_code == 401
    assert response.is_json
    assert "Bearer" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic abc", "Bearer", "token"])
def test_401_with_bad_token(client: FlaskClient, users: None, header: str) -> None:
    response = client.get("/api/procedures", headers={"Authorization": header})
    assert response.status_code == 401


def test_revoked_token_and_inactive_user(
    client: FlaskClient, accounts: Accounts, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/procedures", headers=headers).status_code == 200
    [row] = accounts.list_tokens()
    accounts.revoke_token(row.id, actor="test")
    assert client.get("/api/procedures", headers=headers).status_code == 401
    other = accounts.create_token("alice", actor="test")
    user = accounts.find_user("alice")
    assert user is not None
    accounts.update_user(user.id, "test", active=False)
    assert (
        client.get("/api/procedures", headers={"Authorization": f"Bearer {other}"}).status_code
        == 401
    )


def test_token_is_stored_hashed(accounts: Accounts, token: str) -> None:
    [row] = accounts.list_tokens()
    assert token not in (row.token_hash, row.prefix)
    assert len(row.token_hash) == 64


def test_create_returns_201_with_generated_identifiers(api: FlaskClient, audit_rows: Any) -> None:
    response = api.post("/api/procedures", json=BOOKING)
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/procedures/{body['id']}")
    assert body["status"] == "SCHEDULED"
    assert body["patient_name"] == "MÜLLER^HANS"
    assert body["scheduled_start"] == "2026-11-26T09:30"
    assert len(body["accession_number"]) <= 16 and body["accession_number"]
    assert body["study_instance_uid"] and body["requested_procedure_id"] and body["step_id"]
    created = [r for r in audit_rows("procedure") if r.action == "create"]
    assert [r.actor for r in created] == ["api:alice"]


def test_get_list_by_date_and_one(api: FlaskClient) -> None:
    a = create(api)
    create(api, patient_id="P2", scheduled_start="2026-11-27T10:00")
    listed = api.get("/api/procedures?date=2026-11-26")
    assert listed.status_code == 200
    assert [p["id"] for p in listed.get_json()] == [a["id"]]
    assert len(api.get("/api/procedures").get_json()) == 2
    one = api.get(f"/api/procedures/{a['id']}")
    assert one.status_code == 200 and one.get_json() == a
    assert api.get("/api/procedures/9999").status_code == 404


def test_pagination(api: FlaskClient) -> None:
    for hour in range(8, 13):
        create(api, patient_id=f"P{hour}", scheduled_start=f"2026-11-26T{hour:02d}:00")
    first = api.get("/api/procedures?date=2026-11-26&limit=2")
    assert len(first.get_json()) == 2
    assert 'rel="next"' in first.headers["Link"]
    last = api.get("/api/procedures?date=2026-11-26&limit=2&offset=4")
    assert len(last.get_json()) == 1
    assert 'rel="next"' not in last.headers.get("Link", "")
    assert 'rel="prev"' in last.headers["Link"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("date=2026-13-01", "date"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
    ],
)
def test_list_bad_query(api: FlaskClient, query: str, field: str) -> None:
    response = api.get(f"/api/procedures?{query}")
    assert response.status_code == 400
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"patient_name": ""}, {"patient_name"}),
        ({"modality": "c r!"}, {"modality"}),
        ({"scheduled_start": "tomorrow"}, {"scheduled_start"}),
        ({"patient_birth_date": "1970-02-30"}, {"patient_birth_date"}),
        ({"patient_sex": "X"}, {"patient_sex"}),
        ({"accession_number": "X" * 17}, {"accession_number"}),
        ({"station_ae_title": "A" * 17}, {"station_ae_title"}),
        ({"colour": "red"}, {"colour"}),
        (
            {"patient_sex": "Q", "scheduled_start": "", "priority": "SOON"},
            {"patient_sex", "scheduled_start", "priority"},
        ),
    ],
)
def test_create_bad_fields_are_named_and_nothing_written(
    api: FlaskClient,
    scheduler: Scheduler,
    audit_rows: Any,
    changes: dict[str, Any],
    fields: set[str],
) -> None:
    before = len(audit_rows())
    response = api.post("/api/procedures", json={**BOOKING, **changes})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == fields
    assert scheduler.list_procedures() == []
    assert len(audit_rows()) == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("not json", "application/json"),
        ('["a list"]', "application/json"),
        ('{"patient_id": "P1"}', "text/plain"),
    ],
)
def test_create_not_a_json_object(api: FlaskClient, body: str, content_type: str) -> None:
    response = api.post("/api/procedures", data=body, content_type=content_type)
    assert response.status_code == 400
    assert "body" in response.get_json()["errors"]


def test_patch_changes_fields_and_audits(api: FlaskClient, audit_rows: Any) -> None:
    a = create(api)
    response = api.patch(
        f"/api/procedures/{a['id']}",
        json={"scheduled_start": "2026-11-26T11:15", "notes": "fasting", "status": "COMPLETED"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["scheduled_start"] == "2026-11-26T11:15"
    assert body["notes"] == "fasting"
    assert body["status"] == "SCHEDULED"  # read-only, ignored
    updates = [r for r in audit_rows("procedure") if r.action == "update"]
    assert updates and updates[-1].actor == "api:alice"
    assert "scheduled_start" in updates[-1].detail


def test_patch_bad_fields_write_nothing(api: FlaskClient, audit_rows: Any) -> None:
    a = create(api)
    before = len(audit_rows())
    response = api.patch(
        f"/api/procedures/{a['id']}",
        json={"scheduled_start": "2026-11-26T25:00", "patient_sex": "Z", "notes": "ok"},
    )
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"scheduled_start", "patient_sex"}
    assert api.get(f"/api/procedures/{a['id']}").get_json() == a
    assert len(audit_rows()) == before
    assert api.patch("/api/procedures/9999", json={"notes": "x"}).status_code == 404
    assert api.patch(f"/api/procedures/{a['id']}", data="x").status_code == 400


def test_cancel_with_reason_then_conflict(api: FlaskClient, audit_rows: Any) -> None:
    a = create(api)
    response = api.post(f"/api/procedures/{a['id']}/cancel", json={"reason": "patient ill"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "CANCELLED" and body["cancel_reason"] == "patient ill"
    statuses = [r for r in audit_rows("procedure") if r.action == "status"]
    assert statuses[-1].actor == "api:alice"
    again = api.post(f"/api/procedures/{a['id']}/cancel")
    assert again.status_code == 409
    assert api.patch(f"/api/procedures/{a['id']}", json={"notes": "x"}).status_code == 409


def test_cancel_without_body_and_bad_body(api: FlaskClient) -> None:
    a = create(api)
    assert api.post(f"/api/procedures/{a['id']}/cancel", json={"reason": 5}).status_code == 422
    assert api.post(f"/api/procedures/{a['id']}/cancel", json={"why": "x"}).status_code == 422
    assert api.post(f"/api/procedures/{a['id']}/cancel").status_code == 200
    assert api.post("/api/procedures/9999/cancel").status_code == 404


def test_session_auth_works_and_audits_as_web(desk: FlaskClient, audit_rows: Any) -> None:
    # With the session cookie, a write needs the pages' CSRF token in X-CSRFToken.
    assert desk.post("/api/procedures", json=BOOKING).status_code == 403
    token = csrf_token(desk, "/")
    response = desk.post("/api/procedures", json=BOOKING, headers={"X-CSRFToken": token})
    assert response.status_code == 201
    assert desk.get("/api/procedures").status_code == 200
    created = [r for r in audit_rows("procedure") if r.action == "create"]
    assert created[-1].actor == "web:alice"


def test_openapi_is_served(client: FlaskClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.")
    assert {"/api/procedures", "/api/procedures/{id}", "/api/procedures/{id}/cancel"} <= set(
        doc["paths"]
    )


def test_unknown_api_route_is_json_404(api: FlaskClient) -> None:
    response = api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.is_json


def test_openapi_print_job_schema_names_every_field(client: FlaskClient) -> None:
    """The documented print job is what the API returns: same fields, no more, no fewer."""
    doc = client.get("/api/openapi.json").get_json()
    schema = doc["components"]["schemas"]["PrintJob"]
    job = PrintJob(
        id=1,
        status="queued",
        calling_ae_title="DENT1",
        printer_ae_title="CLINICPRINT",
        films=1,
        pages=1,
        copies=1,
        created_at=dt.datetime(2026, 11, 26, 9, 0),
    )
    assert set(schema["properties"]) == set(job_to_dict(job))
    listed = doc["paths"]["/api/print-jobs"]["get"]["responses"]["200"]
    items = listed["content"]["application/json"]["schema"]["items"]
    assert items == {"$ref": "#/components/schemas/PrintJob"}
