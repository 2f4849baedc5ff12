"""Bring a database's schema up to date with Alembic (``clinic db upgrade``)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: PostgreSQL advisory lock key ("clinic" in ASCII) that serialises migrations.
MIGRATION_LOCK = 0x636C696E6963


def alembic_config(url: str) -> Config:
    """Return an Alembic configuration pointing at clinic's migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Apply every migration up to ``revision`` on ``engine``'s database.

    Parameters
    ----------
    engine : Engine
        The database to migrate; its own connection is used, so pragmas apply.
    revision : str
        Target revision; ``heads`` (the default) applies every branch, so
        independent features may each add a migration on top of the same parent.

    Notes
    -----
    On PostgreSQL several services may start at once on one database; a transaction
    advisory lock lets one migrate while the others wait, then find nothing to do.
    """
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        if revision == "heads" and _at_heads(connection):
            return  # nothing to do: every service start and command checks this first
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


@functools.cache
def _heads() -> frozenset[str]:
    """The head revisions of clinic's migrations (read from the scripts once)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def _at_heads(connection: Connection) -> bool:
    """Whether the database on ``connection`` is at every head already."""
    return set(MigrationContext.configure(connection).get_current_heads()) == _heads()
