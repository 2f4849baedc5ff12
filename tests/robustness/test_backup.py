"""``clinic backup`` while the service writes, ``clinic restore`` into a fresh data folder.

Runs on the embedded SQLite database and, with ``CLINIC_TEST_DATABASE_URL``, on
PostgreSQL (pg_dump / pg_restore).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.database import ON_POSTGRESQL, fresh_postgresql_database
from tests.support.serve import clinic_env, run_clinic, serve_process
from tests.support.services import api_token, booking, post_json, worklist_accessions

WRITE_DEADLINE_S = 60.0


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """Another empty database to restore into: a new PostgreSQL database, or '' (SQLite)."""
    if not ON_POSTGRESQL:
        yield ""
        return
    with fresh_postgresql_database() as url:
        yield url


def _env(data_dir: Path, config: Path, database_url: str) -> dict[str, str]:
    return clinic_env(data_dir, config, {"CLINIC_DATABASE_URL": database_url or None})


class Writer(threading.Thread):
    """Books one procedure after another through the REST API; remembers each 201."""

    def __init__(self, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.port, self.token = port, token
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        deadline = time.monotonic() + WRITE_DEADLINE_S
        while not self.halt.is_set() and time.monotonic() < deadline:
            n += 1
            status, body = post_json(self.port, "/api/procedures", self.token, booking(n))
            if status == 201:
                self.acknowledged.append(body["accession_number"])
            else:
                self.failures.append(f"{status}: {body}")

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WRITE_DEADLINE_S
        while len(self.acknowledged) < count:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, "the service stopped acknowledging bookings"
            time.sleep(0.05)


def test_backup_while_writing_then_restore_into_a_fresh_data_dir(
    tmp_path: Path, database_url: str, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text("", encoding="utf-8")
    live, fresh = tmp_path / "live", tmp_path / "fresh"
    live_env = _env(live, config, database_url)
    with serve_process(live, config, tmp_path) as service:
        token = api_token(database_url or f"sqlite:///{live / 'clinic.db'}")
        writer = Writer(service.ports["web"], token)
        writer.start()
        writer.wait_for(20)
        before = list(writer.acknowledged)
        result = run_clinic(
            "backup", str(tmp_path / "backups" / "clinic.bak"), env=live_env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        writer.wait_for(len(writer.acknowledged) + 10)  # still writing after the backup

        # Restoring over the running service's database is refused and changes nothing.
        refused = run_clinic(
            "restore", str(tmp_path / "backups" / "clinic.bak"), env=live_env, cwd=tmp_path
        )
        assert refused.returncode == 3, refused.stderr
        assert "running" in refused.stderr
        writer.halt.set()
        writer.join(timeout=30)
        assert not writer.failures, writer.failures
        on_worklist = worklist_accessions(service.ports["mwl"])
        assert set(writer.acknowledged) <= on_worklist
        assert service.stop() == 0, service.log()

    fresh_env = _env(fresh, config, fresh_database_url)
    result = run_clinic(
        "restore", str(tmp_path / "backups" / "clinic.bak"), env=fresh_env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    listed = run_clinic("procedures", "list", "--json", env=fresh_env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    restored = {item["accession_number"] for item in json.loads(listed.stdout)}
    # Every booking acknowledged before the backup began is in it; nothing else is made up.
    assert set(before) <= restored
    assert restored <= set(writer.acknowledged)

    # The restored copy serves: a service on it answers the worklist with those bookings.
    if fresh_database_url:
        monkeypatch.setenv("CLINIC_DATABASE_URL", fresh_database_url)
    with serve_process(fresh, config, tmp_path) as copy:
        assert set(before) <= worklist_accessions(copy.ports["mwl"])
        assert copy.stop() == 0, copy.log()


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text("", encoding="utf-8")
    junk = tmp_path / "junk.bak"
    junk.write_bytes(b"not a backup at all")
    result = run_clinic("restore", str(junk), env=_env(tmp_path / "var", config, ""), cwd=tmp_path)
    assert result.returncode == 1
    assert "not a clinic backup" in result.stderr
