"""The migration graph has one head, and stores at the seven 0007 heads reach it."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from clinic.store.db import make_engine
from clinic.store.migrate import alembic_config, upgrade

SCRIPTS = ScriptDirectory.from_config(alembic_config("sqlite://"))
#: The revisions the merge joins: what a store of the previous release was at.
SEVEN = tuple(SCRIPTS.get_revision("0008_one_head").down_revision)


def test_one_head() -> None:
    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads() == ["0008_one_head"]


def test_a_store_at_the_seven_heads_upgrades_to_one(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    for revision in SEVEN:  # as a service of the previous release left its store
        upgrade(engine, revision)
    with engine.begin() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
        assert sorted(versions) == sorted(SEVEN)
        # A station, every required column filled (0 or empty), to see it kept.
        columns = [c for c in inspect(conn).get_columns("stations") if c["name"] != "id"]
        values = {c["name"]: 0 if "INT" in str(c["type"]) else "" for c in columns}
        values["ae_title"] = "XRAY1"
        names = ", ".join(values)
        conn.execute(text(f"INSERT INTO stations ({names}) VALUES (:{', :'.join(values)})"), values)
    upgrade(engine)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
        assert list(versions) == ["0008_one_head"]
        assert conn.execute(text("SELECT ae_title FROM stations")).scalar_one() == "XRAY1"
    engine.dispose()
