"""The browser tests' service: ``clinic serve`` with an administrator made beforehand."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, PASSWORD
from tests.support.serve import ServeProcess, clinic_env, run_clinic, serve_process


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServeProcess]:
    """``clinic serve`` in a subprocess, with an administrator ``admin`` already made."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
    env = clinic_env(tmp_path / "var", env={"CLINIC_LOG_LEVEL": "INFO"})
    made = run_clinic(
        "users", "create", "admin", "--role", "admin", stdin=PASSWORD + "\n", env=env, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    with serve_process(tmp_path / "var", cwd=tmp_path, env={"CLINIC_LOG_LEVEL": "INFO"}) as svc:
        yield svc
