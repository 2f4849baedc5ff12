"""The test database: SQLite under each test's data folder, or PostgreSQL when asked for."""

from __future__ import annotations

import os
import secrets
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

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
        drop_database(admin, name)
        admin.dispose()


def drop_database(admin: Engine, name: str) -> None:
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
