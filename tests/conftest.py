"""Shared fixtures: settings on temporary folders, a running server on free ports."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinic.config import Settings
from clinic.db import make_engine, make_session_factory
from clinic.migrate import upgrade
from clinic.scheduling import Scheduler
from clinic.server import ClinicServer

# Debian's DCMTK, poppler and CUPS binaries live here; look here first, because
# pynetdicom installs Python tools of the same name (findscu, storescu...) on PATH.
SYSTEM_BIN = "/usr/bin:/bin:/usr/sbin:/sbin"


def require_tool(name: str) -> str:
    """Return the path of a system command-line tool; fail (never skip) when it is missing.

    The system's own binary (e.g. DCMTK's ``findscu``) wins over a same-named Python
    console script earlier on PATH.
    """
    path = shutil.which(name, path=SYSTEM_BIN) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it (apt-get install dcmtk)")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with every listener on a free loopback port and data in ``tmp_path``."""
    return Settings(
        data_dir=tmp_path / "var",
        host="127.0.0.1",
        web_port=0,
        mwl_port=0,
        print_port=0,
        hl7_port=0,
    )


@pytest.fixture
def scheduler(settings: Settings) -> Scheduler:
    """A scheduler on a fresh, migrated SQLite database (no listeners)."""
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
