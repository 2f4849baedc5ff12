"""``clinic serve`` processes for the scale-out and backup tests: ports, API, worklist."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from clinic.domain.accounts import Accounts
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from tests.integration.printing_support import ServeProcess, wait_for

_PORT = {
    "web": re.compile(r"web front desk listening on http://[^:]+:(\d+)/"),
    "mwl": re.compile(r"worklist SCP \S+ listening on [^:]+:(\d+)"),
    "print": re.compile(r"print SCP \S+ listening on [^:]+:(\d+)"),
}


class Service(ServeProcess):
    """A ``clinic serve`` subprocess (environment inherited: the test's database URL)."""

    def start(self) -> Service:
        super().start()
        self.ports = {name: self._port(name) for name in _PORT}
        return self

    def _port(self, name: str) -> int:
        def found() -> int:
            match = _PORT[name].search(self.log())
            return int(match.group(1)) if match else 0

        port: int = wait_for(found, timeout=30, what=f"{name} port in the log")
        return port


def api_token(database_url: str) -> str:
    """Create a front-desk user and return an API token of theirs."""
    engine = make_engine(database_url)
    upgrade(engine)
    accounts = Accounts(make_session_factory(engine))
    accounts.create_user("desk", "frontdesk", "correct horse battery", actor="test")
    token = accounts.create_token("desk", actor="test")
    engine.dispose()
    return token


def post_json(port: int, path: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST ``body`` to the service's REST API; returns status and decoded JSON."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def booking(n: int, station: str = "XRAY1") -> dict[str, Any]:
    """A valid booking for the REST API, numbered ``n``, all at one time (overlaps confirmed)."""
    return {
        "allow_overlap": True,
        "patient_id": f"SC{n:05d}",
        "patient_name": f"SCALE^PATIENT{n}",
        "patient_birth_date": "1970-01-01",
        "patient_sex": "O",
        "modality": "CR",
        "station_ae_title": station,
        # Today: a booking still scheduled days after its day is off the worklist.
        "scheduled_start": f"{dt.date.today().isoformat()}T09:30",
        "accession_number": f"ACC{n:08d}",
    }


def worklist_accessions(port: int, station: str = "XRAY1") -> set[str]:
    """Accession numbers the worklist SCP on ``port`` answers for ``station``."""
    ae = AE(ae_title=station)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="CLINIC")
    assert assoc.is_established
    query = Dataset()
    query.AccessionNumber = ""
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = ""
    query.ScheduledProcedureStepSequence = [step]
    found = set()
    try:
        for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
            if status and status.Status in (0xFF00, 0xFF01) and identifier is not None:
                found.add(str(identifier.AccessionNumber))
    finally:
        assoc.release()
    return found


def clinic_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``clinic ARGS`` as its own process."""
    return subprocess.run(
        [sys.executable, "-c", "from clinic.cli import main; main()", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
