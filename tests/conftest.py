"""Shared fixtures: settings on temporary folders, a running server on free ports."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from clinic.config import Settings
from clinic.domain.bookings import Scheduler
from clinic.server import ClinicServer
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade

# Debian's DCMTK, poppler and CUPS binaries live here; look here first, because
# pynetdicom installs Python tools of the same name (findscu, storescu...) on PATH.
SYSTEM_BIN = "/usr/bin:/bin:/usr/sbin:/sbin"

#: A PostgreSQL URL here runs every test on its own fresh PostgreSQL database, made from
#: a template migrated once per run (``CLINIC_TEST_DATABASE_URL=postgresql+psycopg://...``).
#: The URL's own database is only used to create and drop the test databases.
TEST_DATABASE_URL = os.environ.get("CLINIC_TEST_DATABASE_URL", "")
ON_POSTGRESQL = TEST_DATABASE_URL.startswith("postgresql")

#: Tests of SQLite specifics (pragmas, query plans, the database file itself).
sqlite_only = pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite specific")
#: Tests that need PostgreSQL (several services on one database).
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="needs CLINIC_TEST_DATABASE_URL=postgresql+psycopg://..."
)


def require_tool(name: str) -> str:
    """Return the path of a system command-line tool; fail (never skip) when it is missing.

    The system's own binary (e.g. DCMTK's ``findscu``) wins over a same-named Python
    console script earlier on PATH.
    """
    path = shutil.which(name, path=SYSTEM_BIN) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it (apt-get install dcmtk)")
    return path


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
        _drop_database(admin, name)
        admin.dispose()


@contextmanager
def fresh_postgresql_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of ``template``), dropped afterwards.

    Yields its SQLAlchemy URL.
    """
    base = make_url(TEST_DATABASE_URL)
    name = f"{base.database}_{secrets.token_hex(6)}"
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin: Engine, name: str) -> None:
    """Drop a test database, ending its sessions; a leftover is reported, not a failure."""
    for attempt in range(5):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError as exc:  # e.g. a background worker of the server still in it
            if attempt == 4:
                warnings.warn(f"test database {name} left behind: {exc.orig}", stacklevel=2)
                return
            time.sleep(0.2 * (attempt + 1))


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
    return Settings(
        data_dir=tmp_path / "var",
        database_url=database_url,
        host="127.0.0.1",
        web_port=0,
        mwl_port=0,
        print_port=0,
        hl7_port=0,
    )


@pytest.fixture
def scheduler(settings: Settings) -> Scheduler:
    """A scheduler on a fresh, migrated database (no listeners)."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return Scheduler(make_session_factory(engine), settings.uid_root)


@pytest.fixture
def server(settings: Settings) -> Iterator[ClinicServer]:
    """A running clinic service on free ports."""
    srv = ClinicServer(settings)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def latin1_server(settings: Settings) -> Iterator[ClinicServer]:
    """A running service whose default answer character set is Latin-1."""
    srv = ClinicServer(dataclasses.replace(settings, mwl_character_set="ISO_IR 100"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
