"""Administration pages: stations, catalog, users and tokens, printers, audit log, diagnostics."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.store.db import transaction
from clinic.store.models import WorklistQueryLog
from clinic.web import create_app
from tests.support.web import BOOKING, PASSWORD, csrf_token, login, post_form


def test_admin_index_links(admin: FlaskClient) -> None:
    html = admin.get("/admin/").get_data(as_text=True)
    for url in (
        "/admin/stations",
        "/admin/catalog",
        "/admin/users",
        "/admin/printers",
        "/admin/audit",
        "/admin/worklist",
    ):
        assert f'href="{url}"' in html


def test_stations_create_edit_and_errors(
    admin: FlaskClient, scheduler: Scheduler, audit_rows: Any
) -> None:
    response = post_form(
        admin,
        "/admin/stations",
        "/admin/stations",
        {
            "ae_title": "US1",
            "modality": "us",
            "name": "Echo",
            "location": "Room 2",
            "character_set": "ISO_IR 100",
        },
    )
    assert response.status_code == 302
    [station] = Catalog(scheduler.session_factory).stations()
    assert (station.ae_title, station.modality, station.character_set) == (
        "US1",
        "US",
        "ISO_IR 100",
    )
    assert audit_rows("station")[-1].actor == "web:root"
    html = admin.get("/admin/stations").get_data(as_text=True)
    assert "Room 2" in html
    dup = post_form(admin, "/admin/stations", "/admin/stations", {"ae_title": "US1"})
    assert dup.status_code == 422 and "already a station" in dup.get_data(as_text=True)
    bad = post_form(
        admin,
        "/admin/stations",
        "/admin/stations",
        {"ae_title": "X" * 17, "modality": "c-r", "name": "n" * 17},
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Ae title must be at most 16 characters" in text
    assert "Modality may only contain" in text and "Name must be at most 16" in text
    assert len(Catalog(scheduler.session_factory).stations()) == 1
    url = f"/admin/stations/{station.id}"
    assert admin.get(url).status_code == 200
    edited = post_form(
        admin,
        url,
        url,
        {
            "ae_title": "US1",
            "modality": "US",
            "name": "Echo 2",
            "location": "",
            "character_set": "",
        },
    )
    assert edited.status_code == 302
    assert Catalog(scheduler.session_factory).stations()[0].name == "Echo 2"
    assert admin.get("/admin/stations/999").status_code == 404
    assert admin.post("/admin/stations", data={"ae_title": "NOCSRF"}).status_code == 400


def test_catalog_create_edit_and_errors(
    admin: FlaskClient, scheduler: Scheduler, audit_rows: Any
) -> None:
    response = post_form(
        admin,
        "/admin/catalog",
        "/admin/catalog",
        {
            "code": "cxr",
            "description": "Chest PA",
            "modality": "CR",
            "default_station": "",
            "duration_minutes": "10",
            "active": "y",
        },
    )
    assert response.status_code == 302
    entry = Catalog(scheduler.session_factory).entry("CXR")
    assert entry is not None and entry.duration_minutes == 10 and entry.active
    assert audit_rows("catalog")[-1].actor == "web:root"
    bad = post_form(
        admin,
        "/admin/catalog",
        "/admin/catalog",
        {"code": "", "description": "", "modality": "", "duration_minutes": "0"},
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Please enter a short code." in text and "Between 1 and 1440 minutes." in text
    dup = post_form(
        admin,
        "/admin/catalog",
        "/admin/catalog",
        {"code": "CXR", "description": "x", "modality": "CR", "duration_minutes": "5"},
    )
    assert dup.status_code == 422 and "already in the catalog" in dup.get_data(as_text=True)
    url = f"/admin/catalog/{entry.id}"
    assert admin.get(url).status_code == 200
    edited = post_form(
        admin,
        url,
        url,
        {
            "code": "CXR",
            "description": "Chest two views",
            "modality": "CR",
            "duration_minutes": "15",
        },
    )
    assert edited.status_code == 302
    changed = Catalog(scheduler.session_factory).entry("CXR")
    assert changed is not None and changed.description == "Chest two views"
    assert not changed.active  # unticked checkbox
    assert admin.get("/admin/catalog/999").status_code == 404


def test_users_create_edit_tokens(admin: FlaskClient, accounts: Accounts, audit_rows: Any) -> None:
    response = post_form(
        admin,
        "/admin/users",
        "/admin/users",
        {"name": "bob", "role": "frontdesk", "password": "bob-password"},
    )
    assert response.status_code == 302
    bob = accounts.find_user("bob")
    assert bob is not None and bob.role == "frontdesk"
    bad = post_form(
        admin,
        "/admin/users",
        "/admin/users",
        {"name": "bob", "role": "frontdesk", "password": "short"},
    )
    assert bad.status_code == 422 and "Password must be at least 8" in bad.get_data(as_text=True)
    url = f"/admin/users/{bob.id}"
    edited = post_form(admin, url, url, {"role": "admin", "active": "y", "password": ""})
    assert edited.status_code == 302
    bob = accounts.find_user("bob")
    assert bob is not None and bob.role == "admin"
    made = post_form(admin, url, f"{url}/tokens", {})
    assert made.status_code == 302 and made.headers["Location"].endswith(url)
    html = admin.get(url).get_data(as_text=True)
    token = html.split('id="new-token">')[1].split("<")[0]
    assert accounts.user_for_token(token) is not None
    [row] = accounts.list_tokens(bob.id)
    revoked = post_form(admin, url, f"/admin/tokens/{row.id}/revoke", {})
    assert revoked.status_code == 302
    assert accounts.user_for_token(token) is None
    actions = [(r.entity, r.action) for r in audit_rows(actor="web:root")]
    assert ("user", "create") in actions and ("user", "update") in actions
    assert ("api_token", "create") in actions and ("api_token", "revoke") in actions
    assert admin.get("/admin/users/999").status_code == 404
    assert post_form(admin, url, "/admin/tokens/999/revoke", {}).status_code == 404


def test_promoted_user_gets_admin_pages(
    app: Any, admin: FlaskClient, accounts: Accounts, desk: FlaskClient
) -> None:
    assert desk.get("/admin/").status_code == 403
    alice = accounts.find_user("alice")
    assert alice is not None
    accounts.update_user(alice.id, "test", role="admin")
    assert desk.get("/admin/").status_code == 200


def test_printers_page(settings: Settings, scheduler: Scheduler, users: None) -> None:
    configured = dataclasses.replace(
        settings, printers={"DENTAL": {"output": "pdf", "film_size_map": "8INX10IN=A4"}}
    )
    app = create_app(configured, scheduler, secret_key="k", testing=True)
    c = app.test_client()
    login(c, "root")
    html = c.get("/admin/printers").get_data(as_text=True)
    assert "DENTAL" in html and "8INX10IN=A4" in html and "PDFPRINT" in html


def test_audit_log_filters(admin: FlaskClient, scheduler: Scheduler) -> None:
    proc = scheduler.book(BOOKING, actor="web:alice")
    scheduler.cancel(proc.id, "ill", actor="api:bob")
    all_rows = admin.get("/admin/audit").get_data(as_text=True)
    assert "web:alice" in all_rows and "api:bob" in all_rows
    only_bob = admin.get("/admin/audit?actor=bob").get_data(as_text=True)
    assert "api:bob" in only_bob and "web:alice" not in only_bob
    by_entity = admin.get(f"/admin/audit?entity=procedure&entity_id={proc.id}&action=status")
    assert "SCHEDULED" in by_entity.get_data(as_text=True)
    today = dt.date.today().isoformat()
    assert "api:bob" in admin.get(f"/admin/audit?since={today}&until={today}").get_data(
        as_text=True
    )
    assert "1 entr" not in admin.get("/admin/audit?until=2000-01-01").get_data(as_text=True)
    bad = admin.get("/admin/audit?since=yesterday").get_data(as_text=True)
    assert "Please write the date as YYYY-MM-DD." in bad


def test_worklist_diagnostics(admin: FlaskClient, scheduler: Scheduler) -> None:
    factory: sessionmaker[Session] = scheduler.session_factory
    Catalog(factory).save_station({"ae_title": "QUIET1", "modality": "CR"}, "t")
    with transaction(factory) as session:
        session.add(
            WorklistQueryLog(
                calling_ae_title="XRAY1",
                peer="127.0.0.1",
                matching_keys="ScheduledStationAETitle,ScheduledProcedureStepStartDate",
                return_keys="PatientName",
                matches=3,
                status=0,
                character_set="ISO_IR 192",
            )
        )
    html = admin.get("/admin/worklist").get_data(as_text=True)
    assert "XRAY1" in html and "ScheduledStationAETitle" in html and "0x0000" in html
    assert "QUIET1" in html


@pytest.mark.parametrize("name", ["alice", "root"])
def test_everyone_signs_in(app: Any, users: None, name: str) -> None:
    c = app.test_client()
    token = csrf_token(c, "/login")
    r = c.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302


def test_admin_cannot_lock_themselves_out(admin: FlaskClient, accounts: Accounts) -> None:
    root = accounts.find_user("root")
    assert root is not None
    url = f"/admin/users/{root.id}"
    response = post_form(admin, url, url, {"role": "frontdesk", "active": "y", "password": ""})
    assert response.status_code == 422
    assert "your own administrator rights" in response.get_data(as_text=True)
    again = accounts.find_user("root")
    assert again is not None and again.role == "admin" and again.active
