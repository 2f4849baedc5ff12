"""``clinic users create`` and ``clinic tokens create``, then the token works on the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clinic.cli import main
from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from clinic.web import create_app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CLINIC_DATA_DIR": str(tmp_path / "var"), "CLINIC_CONFIG": str(_empty(tmp_path))}


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "clinic.toml"
    path.write_text("")
    return path


def test_users_and_tokens_create(env: dict[str, str], tmp_path: Path, database_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["users", "create", "desk1", "--role", "admin"], input="s3cret-password\n", env=env
    )
    assert result.exit_code == 0, result.output
    assert "desk1" in result.output
    result = runner.invoke(main, ["tokens", "create", "desk1"], env=env)
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert len(token) >= 32 and " " not in token

    settings = Settings(data_dir=tmp_path / "var", database_url=database_url)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    accounts = Accounts(factory)
    user = accounts.authenticate("desk1", "s3cret-password")
    assert user is not None and user.role == "admin"
    app = create_app(settings, Scheduler(factory), secret_key="x", testing=True)
    client = app.test_client()
    response = client.get("/api/procedures", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_users_create_errors(env: dict[str, str]) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["users", "create", "x1", "--role", "frontdesk"], input="short\n", env=env
    )
    assert result.exit_code == 1
    assert "password" in result.output
    result = runner.invoke(
        main, ["users", "create", "x1", "--role", "boss"], input="p" * 9, env=env
    )
    assert result.exit_code == 2
    ok = runner.invoke(main, ["users", "create", "x1"], input="long enough pw", env=env)
    assert ok.exit_code == 0
    again = runner.invoke(main, ["users", "create", "x1"], input="long enough pw", env=env)
    assert again.exit_code == 1 and "taken" in again.output


def test_tokens_create_unknown_user(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["tokens", "create", "ghost"], env=env)
    assert result.exit_code == 1
    assert "no user called ghost" in result.output
