"""Shared fixtures: settings on temporary folders, a running server on free ports."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from clinic.config import Settings
from clinic.domain import accounts as accounts_module
from clinic.domain.bookings import Scheduler
from clinic.server import ClinicServer
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from tests.support.database import (
    ON_POSTGRESQL,
    TEST_DATABASE_URL,
    drop_database,
    fresh_postgresql_database,
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for ``--numprocesses=auto``: twice the processors, at most 8.

    Many tests wait (on sockets, subprocesses, a browser) more than they compute, so a
    second worker per processor keeps the processors busy; ``-n 0`` runs in this process.
    """
    return min(2 * (os.cpu_count() or 1), 8)


#: The scrypt cost passwords get in this test process: the real one (Werkzeug's default)
#: costs ~0.1 s of CPU per hash and per sign-in, on purpose; hundreds of sign-ins in the
#: suite need no such cost. Hashes name their cost, so checking them works alike.
#: ``clinic`` commands and services started as processes keep the real cost.
TEST_PASSWORD_HASH_METHOD = "scrypt:1024:8:1"


#: The service's own method, as read before the suite changed it.
PRODUCTION_PASSWORD_HASH_METHOD = accounts_module.PASSWORD_HASH_METHOD


@pytest.fixture(scope="session")
def production_password_hash_method() -> str:
    """The password hash method the service uses (before the suite made it cheaper)."""
    return PRODUCTION_PASSWORD_HASH_METHOD


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    """Hash passwords at :data:`TEST_PASSWORD_HASH_METHOD` in this process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts_module, "PASSWORD_HASH_METHOD", TEST_PASSWORD_HASH_METHOD)
        yield


@pytest.fixture(scope="session")
def _postgresql_template() -> Iterator[str]:
    """Name of a PostgreSQL database migrated once, the template of every test's database."""
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    # Its own name: test runs on one server at the same time keep out of each other's way.
    name = f"{make_url(TEST_DATABASE_URL).database}_template_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(
        make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    )
    upgrade(engine)
    engine.dispose()
    try:
        yield name
    finally:
        drop_database(admin, name)
        admin.dispose()


@pytest.fixture(autouse=True)
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test's database URL: empty (SQLite under the data folder) unless on PostgreSQL.

    On PostgreSQL each test gets a fresh database, also exported as
    ``CLINIC_DATABASE_URL`` so that ``clinic`` commands and services started by the
    test use it.
    """
    if not ON_POSTGRESQL:
        yield ""
        return
    with fresh_postgresql_database(request.getfixturevalue("_postgresql_template")) as url:
        monkeypatch.setenv("CLINIC_DATABASE_URL", url)
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings with every listener on a free loopback port and data in ``tmp_path``.

    The database is SQLite under the data folder, or the test's PostgreSQL database.
    """
    return on_free_ports(tmp_path / "var", database_url)


def on_free_ports(data_dir: Path, database_url: str) -> Settings:
    """Settings with every listener on a free loopback port."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        host="127.0.0.1",
        web_port=0,
        mwl_port=0,
        print_port=0,
        hl7_port=0,
    )


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated once per run; each test's store starts as a copy of it.

    As on PostgreSQL (a template database): the migrations themselves are tested where
    a test starts from an empty data folder (``clinic serve``, ``clinic db upgrade``).
    """
    path = tmp_path_factory.mktemp("template") / "clinic.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def fresh_store(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """``settings`` whose store is already migrated (a copy of the run's template).

    On PostgreSQL the test's database is such a copy already.
    """
    if not ON_POSTGRESQL:
        target = Path(make_url(settings.resolved_database_url).database or "")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(request.getfixturevalue("_sqlite_template"), target)
    return settings


@pytest.fixture(scope="module")
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClinicServer]:
    """A running service shared by the tests of one module, on a store of its own.

    For tests that only read what the module's own fixture put there (queries): one
    start and one set of bookings instead of one per test. SQLite or PostgreSQL as the
    run says, like ``server``.
    """
    data_dir = tmp_path_factory.mktemp("module") / "var"
    with contextlib.ExitStack() as stack:
        url = ""
        if ON_POSTGRESQL:
            template = request.getfixturevalue("_postgresql_template")
            url = stack.enter_context(fresh_postgresql_database(template))
        settings = on_free_ports(data_dir, url)
        if not ON_POSTGRESQL:
            target = Path(make_url(settings.resolved_database_url).database or "")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(request.getfixturevalue("_sqlite_template"), target)
        srv = ClinicServer(settings)
        srv.start()
        stack.callback(srv.stop)
        yield srv


@pytest.fixture
def scheduler(fresh_store: Settings) -> Scheduler:
    """A scheduler on a fresh, migrated database (no listeners)."""
    engine = make_engine(fresh_store.resolved_database_url)
    upgrade(engine)  # at the head already: a check, not a migration
    return Scheduler(make_session_factory(engine), fresh_store.uid_root)


@pytest.fixture
def server(fresh_store: Settings) -> Iterator[ClinicServer]:
    """A running clinic service on free ports."""
    srv = ClinicServer(fresh_store)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def latin1_server(fresh_store: Settings) -> Iterator[ClinicServer]:
    """A running service whose default answer character set is Latin-1."""
    srv = ClinicServer(dataclasses.replace(fresh_store, mwl_character_set="ISO_IR 100"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
