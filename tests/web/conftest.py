"""Fixtures for the web door: the app on a fresh store, users, signed-in clients, a token."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from clinic.config import Settings
from clinic.domain import accounts as accounts_module
from clinic.domain.accounts import Accounts, hash_password
from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.store.models import AuditEntry
from clinic.web import create_app
from clinic.web.security import LoginThrottle
from tests.support.web import PASSWORD, login


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


@pytest.fixture(scope="session")
def password_hash() -> str:
    """The hash of :data:`PASSWORD`, made once per run."""
    return hash_password(PASSWORD)


@pytest.fixture
def users(accounts: Accounts, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A front-desk user ``alice`` and an administrator ``root``, both with :data:`PASSWORD`.

    Both are stored with the run's one hash of it instead of hashing it anew.
    """

    def known_hash(password: str) -> str:
        return password_hash if password == PASSWORD else hash_password(password)

    with monkeypatch.context() as patch:
        patch.setattr(accounts_module, "hash_password", known_hash)
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


@pytest.fixture
def catalog(scheduler: Scheduler) -> Catalog:
    cat = Catalog(scheduler.session_factory)
    cat.save_station({"ae_title": "XRAY1", "modality": "CR", "name": "X-ray 1"}, "test")
    cat.save_station({"ae_title": "PANO1", "modality": "PX", "name": "Pano"}, "test")
    cat.save_entry(
        {
            "code": "CXR",
            "description": "Chest PA",
            "modality": "CR",
            "default_station": "XRAY1",
            "duration_minutes": 10,
        },
        "test",
    )
    cat.save_entry(
        {"code": "OPG", "description": "Panoramic", "modality": "PX", "default_station": "PANO1"},
        "test",
    )
    return cat
