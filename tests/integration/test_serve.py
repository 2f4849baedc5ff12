"""``clinic serve`` as its own process: start on free ports, answer, stop on a signal."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from alembic.script import ScriptDirectory
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.store.migrate import alembic_config
from tests.support.serve import ServeProcess, clinic_env, run_clinic, serve_process
from tests.support.tools import require_tool

EXIT_DEADLINE = 20.0
#: ``clinic serve`` on SQLite in its fresh data folder, whatever database the run uses.
OWN_SQLITE = {"CLINIC_DATABASE_URL": None}


def clinic_command() -> list[str]:
    """The installed ``clinic`` console script (the one next to this interpreter)."""
    script = Path(sys.executable).parent / "clinic"
    assert script.is_file(), f"{script} missing: pip install -e . installs it"
    return [str(script)]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServeProcess]:
    with serve_process(
        tmp_path / "fresh" / "data", cwd=tmp_path, env=OWN_SQLITE, command=clinic_command()
    ) as svc:
        yield svc


def import_bookings(service: ServeProcess, tmp_path: Path) -> None:
    today = dt.date.today().isoformat()
    path = tmp_path / "bookings.json"
    path.write_text(
        json.dumps(
            [
                {
                    "patient_id": "S1",
                    "patient_name": "Dvořák^Antonín",
                    "accession_number": "SERVE1",
                    "modality": "CR",
                    "station_ae_title": "XRAY1",
                    "scheduled_start": f"{today}T09:00",
                }
            ]
        ),
        encoding="utf-8",
    )
    result = run_clinic(
        "procedures",
        "import",
        str(path),
        env=service.env,
        cwd=service.cwd,
        command=clinic_command(),
    )
    assert result.returncode == 0, result.stderr


def run_findscu(port: int, out: Path, *keys: str) -> list[pydicom.Dataset]:
    out.mkdir()
    args = [require_tool("findscu"), "-W", "-aet", "XRAY1", "-aec", "CLINIC", "-to", "20"]
    args += ["-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(port)]
    result = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return [pydicom.dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]


def test_serve_answers_and_stops_on_sigterm(service: ServeProcess, tmp_path: Path) -> None:
    assert set(service.ports) == {"web", "mwl", "print", "hl7"}
    assert all(port > 0 for port in service.ports.values())
    assert len(set(service.ports.values())) == 4
    import_bookings(service, tmp_path)

    answers = run_findscu(
        service.mwl_port,
        tmp_path / "utf8",
        "PatientName",
        "AccessionNumber",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=XRAY1",
    )
    assert [(a.AccessionNumber, str(a.PatientName)) for a in answers] == [
        ("SERVE1", "Dvořák^Antonín")
    ]
    answers = run_findscu(
        service.mwl_port, tmp_path / "latin1", "SpecificCharacterSet=ISO_IR 100", "PatientName"
    )
    assert [str(a.PatientName) for a in answers] == ["Dvorák^Antonín"]

    assert service.stop(signal.SIGTERM, timeout=EXIT_DEADLINE) == 0
    text = service.log()
    assert "received SIGTERM, stopping" in text
    assert "clinic stopped" in text
    assert "Traceback" not in text


def test_serve_stops_on_sigint(service: ServeProcess) -> None:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", service.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert service.stop(signal.SIGINT, timeout=EXIT_DEADLINE) == 0
    text = service.log()
    assert "received SIGINT, stopping" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text


def test_open_association_finishes_before_exit(service: ServeProcess) -> None:
    """On SIGTERM the listener closes but an open association may finish its work."""
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", service.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    service.wait_for_line("received SIGTERM", time.monotonic() + EXIT_DEADLINE)
    assert service.process.poll() is None
    assert assoc.send_c_echo().Status == 0x0000
    query = pydicom.Dataset()
    query.PatientName = ""
    answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    assert [status.Status for status, _ in answers] == [0x0000]
    assoc.release()
    assert service.process.wait(timeout=EXIT_DEADLINE) == 0


def test_fresh_data_dir_gets_a_migrated_database(service: ServeProcess, tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "data" / "clinic.db"
    assert database.is_file()
    with sqlite3.connect(database) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    assert {"patients", "procedures", "stations", "audit_log", "worklist_query_log"} <= tables
    assert versions
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert sorted(versions) == sorted(heads)
    assert service.stop(signal.SIGTERM) == 0


def test_port_in_use_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = clinic_env(
            tmp_path / "data", env={**OWN_SQLITE, "CLINIC_MWL_PORT": str(taken.getsockname()[1])}
        )
        result = run_clinic("serve", env=env, cwd=tmp_path, timeout=60, command=clinic_command())
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_idle_association_aborted_after_grace(service: ServeProcess) -> None:
    """An association left open does not keep the service from stopping."""
    ae = AE(ae_title="IDLE")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", service.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    started = time.monotonic()
    assert service.stop(signal.SIGTERM, timeout=EXIT_DEADLINE) == 0
    assert time.monotonic() - started < EXIT_DEADLINE
    deadline = time.monotonic() + 10
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.01)
    assert assoc.is_aborted
