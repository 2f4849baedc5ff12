"""``clinic users list|set-password|deactivate|activate|unlock`` and the database log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from clinic.cli import main
from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.errors import AccountDeactivated
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from clinic.web.security import LoginThrottle


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "clinic.toml"
    config.write_text("")
    return {"CLINIC_DATA_DIR": str(tmp_path / "var"), "CLINIC_CONFIG": str(config)}


def _accounts(tmp_path: Path, database_url: str) -> Accounts:
    settings = Settings(data_dir=tmp_path / "var", database_url=database_url)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return Accounts(make_session_factory(engine))


def test_users_commands(env: dict[str, str], tmp_path: Path, database_url: str) -> None:
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(main, list(args), input=stdin, env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("users", "create", "desk1", stdin="first-password\n")
    listed = json.loads(run("users", "list", "--json"))
    assert [(u["name"], u["role"], u["active"]) for u in listed] == [("desk1", "frontdesk", True)]
    assert "desk1" in run("users", "list")

    run("users", "set-password", "desk1", stdin="second-password\n")
    accounts = _accounts(tmp_path, database_url)
    assert accounts.authenticate("desk1", "first-password") is None
    assert accounts.authenticate("desk1", "second-password") is not None

    run("users", "deactivate", "desk1")
    assert json.loads(run("users", "list", "--json"))[0]["active"] is False
    with pytest.raises(AccountDeactivated):
        accounts.authenticate("desk1", "second-password")
    run("users", "activate", "desk1")
    assert accounts.authenticate("desk1", "second-password") is not None

    throttle = LoginThrottle(max_per_name=2, max_per_address=100, window=600)
    for _ in range(2):
        throttle.failed("desk1", "10.0.0.1")
    throttle.unlocked("desk1", accounts.unlocked_at("desk1"))
    assert throttle.retry_after("desk1", "10.0.0.1") > 0
    run("users", "unlock", "desk1")
    throttle.unlocked("desk1", accounts.unlocked_at("desk1"))
    assert throttle.retry_after("desk1", "10.0.0.1") == 0
    # The same unlock does not forgive later failures.
    for _ in range(2):
        throttle.failed("desk1", "10.0.0.1")
    throttle.unlocked("desk1", accounts.unlocked_at("desk1"))
    assert throttle.retry_after("desk1", "10.0.0.1") > 0


def test_users_command_errors(env: dict[str, str]) -> None:
    runner = CliRunner()
    for args in (["users", "deactivate", "nobody"], ["users", "unlock", "nobody"]):
        result = runner.invoke(main, args, env=env)
        assert result.exit_code == 1 and "no user called nobody" in result.output
    runner.invoke(main, ["users", "create", "desk2"], input="long-enough-1\n", env=env)
    short = runner.invoke(main, ["users", "set-password", "desk2"], input="short\n", env=env)
    assert short.exit_code == 1 and "password" in short.output


def test_every_command_logs_its_database(
    env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = dict(env, CLINIC_DATABASE_URL="sqlite:///" + str(tmp_path / "x.db"))
    with caplog.at_level(logging.INFO, logger="clinic"):
        result = CliRunner().invoke(main, ["users", "list"], env=env)
    assert result.exit_code == 0, result.output
    lines = [r.getMessage() for r in caplog.records if r.name == "clinic"]
    assert any(f"database sqlite:///{tmp_path}/x.db" in line for line in lines), lines
    assert any("no database at" in line for line in lines), lines


def test_database_log_hides_the_password(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    env = dict(env, CLINIC_DATABASE_URL="postgresql+psycopg://clinic:s3cret@127.0.0.1:9/none")
    with caplog.at_level(logging.INFO, logger="clinic"):
        CliRunner().invoke(main, ["users", "list"], env=env)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "clinic:***@127.0.0.1" in text and "s3cret" not in text
