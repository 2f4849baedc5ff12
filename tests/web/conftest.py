"""Fixtures for the web door: the app on a fresh store, users, signed-in clients, a token."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.store.models import AuditEntry
from clinic.web import create_app
from clinic.web.security import LoginThrottle

PASSWORD = "correct horse battery"
_CSRF = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'type="hidden" name="csrf_token" value="([^"]+)"|'
    r'name="csrf_token" value="([^"]+)"'
)


def csrf_token(client: FlaskClient, url: str) -> str:
    """Fetch ``url`` and return the CSRF token of its first form."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {url}"
    return next(g for g in match.groups() if g)


def post_form(client: FlaskClient, page_url: str, action: str, data: dict[str, Any]) -> Any:
    """Post ``data`` to ``action`` with the CSRF token taken from ``page_url``."""
    return client.post(action, data={**data, "csrf_token": csrf_token(client, page_url)})


def login(client: FlaskClient, name: str, password: str = PASSWORD) -> Any:
    """Sign in through the login form."""
    return post_form(client, "/login", "/login", {"name": name, "password": password})


@pytest.fixture
def throttle() -> LoginThrottle:
    return LoginThrottle(max_per_name=3, max_per_address=10, window=60)


@pytest.fixture
def app(settings: Settings, scheduler: Scheduler, throttle: LoginThrottle) -> Flask:
    return create_app(
        settings, scheduler, secret_key="test-secret", login_throttle=throttle, testing=True
    )


@pytest.fixture
def accounts(scheduler: Scheduler) -> Accounts:
    return Accounts(scheduler.session_factory)


@pytest.fixture
def users(accounts: Accounts) -> None:
    accounts.create_user("alice", "frontdesk", PASSWORD, actor="test")
    accounts.create_user("root", "admin", PASSWORD, actor="test")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def desk(app: Flask, users: None) -> FlaskClient:
    """A client signed in as a front-desk user."""
    c = app.test_client()
    assert login(c, "alice").status_code == 302
    return c


@pytest.fixture
def admin(app: Flask, users: None) -> FlaskClient:
    """A client signed in as an administrator."""
    c = app.test_client()
    assert login(c, "root").status_code == 302
    return c


@pytest.fixture
def token(accounts: Accounts, users: None) -> str:
    return accounts.create_token("alice", actor="test")


@pytest.fixture
def api(app: Flask, token: str) -> FlaskClient:
    """A client whose every request carries alice's bearer token."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return c


@pytest.fixture
def audit_rows(scheduler: Scheduler) -> Callable[..., list[AuditEntry]]:
    """Return audit rows, optionally only those of one entity type or actor."""

    def rows(entity: str | None = None, actor: str | None = None) -> list[AuditEntry]:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        if entity:
            stmt = stmt.where(AuditEntry.entity == entity)
        if actor:
            stmt = stmt.where(AuditEntry.actor == actor)
        with scheduler.session_factory() as session:
            return list(session.scalars(stmt))

    return rows


BOOKING = {
    "patient_id": "P100",
    "patient_name": "MÜLLER^HANS",
    "patient_birth_date": "1970-05-01",
    "patient_sex": "M",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": "2026-11-26T09:30",
    "procedure_description": "Chest PA",
    "referring_physician": "HOUSE^GREGORY",
}
