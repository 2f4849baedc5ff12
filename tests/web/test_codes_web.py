"""Procedure and protocol codes through the REST API, the booking form and the catalog page."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.domain.fields import procedure_to_dict
from tests.support.frontdesk import book
from tests.support.web import BOOKING, post_form

CHEST = {"value": "36643-5", "scheme": "LN", "meaning": "XR Chest 2V"}


def test_api_takes_and_returns_codes(api: FlaskClient, audit_rows: Any) -> None:
    created = api.post("/api/procedures", json={**BOOKING, "procedure_code": CHEST})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["procedure_code"] == CHEST
    assert body["protocol_code"] is None
    got = api.get(f"/api/procedures/{body['id']}").get_json()
    assert got["procedure_code"] == CHEST
    changed = api.patch(f"/api/procedures/{body['id']}", json={"procedure_code": None})
    assert changed.status_code == 200
    assert changed.get_json()["procedure_code"] is None
    update = [r for r in audit_rows("procedure") if r.action == "update"]
    assert '"procedure_code_value"' in update[-1].detail


def test_api_names_a_bad_code_and_writes_nothing(api: FlaskClient, scheduler: Scheduler) -> None:
    bad = api.post(
        "/api/procedures", json={**BOOKING, "procedure_code": {"value": "X", "scheme": "LN"}}
    )
    assert bad.status_code == 422
    assert bad.get_json()["errors"] == {"procedure_code": "meaning is required"}
    bad = api.post("/api/procedures", json={**BOOKING, "protocol_code": ["X", "LN", "M"]})
    assert bad.status_code == 422
    assert "protocol_code" in bad.get_json()["errors"]
    assert scheduler.list_procedures() == []


def test_openapi_describes_the_code_object(client: FlaskClient) -> None:
    schema = client.get("/api/openapi.json").get_json()["components"]["schemas"]["Procedure"]
    code = schema["properties"]["procedure_code"]
    assert code["type"] == ["object", "null"]
    assert code["required"] == ["value", "scheme", "meaning"]
    assert set(code["properties"]) == {"value", "scheme", "meaning"}


def test_booking_from_the_catalog_carries_its_codes(
    desk: FlaskClient,
    scheduler: Scheduler,
    catalog: Catalog,  # noqa: F811
) -> None:
    entry = catalog.entry("CXR")
    assert entry is not None
    catalog.save_entry(
        {
            "code": "CXR",
            "description": "Chest PA",
            "modality": "CR",
            "default_station": "XRAY1",
            "duration_minutes": 10,
            "code_scheme": "99CLINIC",
            "protocol_code_value": "P-CPA",
            "protocol_code_meaning": "Chest PA protocol",
        },
        "test",
        entry.id,
    )
    response = book(desk)
    assert response.status_code == 302, response.get_data(as_text=True)
    [proc] = scheduler.list_procedures()
    out = procedure_to_dict(proc)
    assert out["procedure_code"] == {"value": "CXR", "scheme": "99CLINIC", "meaning": "Chest PA"}
    assert out["protocol_code"] == {
        "value": "P-CPA",
        "scheme": "99CLINIC",
        "meaning": "Chest PA protocol",
    }
    page = desk.get(f"/procedures/{proc.id}").get_data(as_text=True)
    assert "P-CPA" in page and "Procedure code" in page


def test_catalog_page_keeps_codes(admin: FlaskClient, scheduler: Scheduler) -> None:
    response = post_form(
        admin,
        "/admin/catalog",
        "/admin/catalog",
        {
            "code": "OPG",
            "description": "Panoramic",
            "modality": "PX",
            "default_station": "",
            "duration_minutes": "15",
            "active": "y",
            "code_scheme": "radlex",
            "code_meaning": "Panoramic X-ray",
            "protocol_code_value": "PANO-STD",
            "protocol_code_scheme": "",
            "protocol_code_meaning": "",
        },
    )
    assert response.status_code == 302
    entry = Catalog(scheduler.session_factory).entry("OPG")
    assert entry is not None
    assert (entry.code_scheme, entry.code_meaning, entry.protocol_code_value) == (
        "RADLEX",
        "Panoramic X-ray",
        "PANO-STD",
    )
    listing = admin.get("/admin/catalog").get_data(as_text=True)
    assert "RADLEX" in listing and "PANO-STD" in listing
