"""Talking to a running ``clinic serve``: an API token, REST bookings, the worklist's answers."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from clinic.domain.accounts import Accounts
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade


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
