"""Check-in over real HTTP, seen by a modality: SPS Status ARRIVED, then MPPS moves it on."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
)

from clinic.domain.accounts import Accounts
from clinic.server import ClinicServer
from tests.support.mpps import create_dataset, final_dataset

#: Bookings are for today: the worklist leaves out what is still scheduled days ago.
TODAY = dt.date.today().isoformat()

BOOKING = {
    "patient_id": "MP1",
    "patient_name": "NOVÁK^JAN",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": f"{TODAY}T09:00",
    "accession_number": "MPPSACC1",
    "requested_procedure_id": "RP1",
    "step_id": "SPS1",
    "study_instance_uid": "1.2.826.0.1.3680043.10.543.77",
}


def call(server: ClinicServer, token: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.web_port}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def token(server: ClinicServer) -> str:
    assert server.session_factory is not None
    accounts = Accounts(server.session_factory)
    accounts.create_user("desk", "frontdesk", "a long enough password", actor="test")
    return accounts.create_token("desk", actor="test")


@pytest.fixture
def assoc(server: ClinicServer) -> Iterator[Association]:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    association = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert association.is_established
    yield association
    if association.is_established:
        association.release()


def worklist(assoc: Association, status: str = "") -> list[str]:
    query = Dataset()
    query.AccessionNumber = ""
    item = Dataset()
    item.ScheduledStationAETitle = "XRAY1"
    item.ScheduledProcedureStepStatus = status
    query.ScheduledProcedureStepSequence = [item]
    return [
        f"{ds.AccessionNumber}:{ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus}"
        for answer, ds in assoc.send_c_find(query, ModalityWorklistInformationFind)
        if answer.Status in (0xFF00, 0xFF01)
    ]


def test_arrived_is_served_as_sps_status_arrived_then_mpps_moves_it_on(
    server: ClinicServer, token: str, assoc: Association
) -> None:
    booked = call(server, token, "POST", "/api/procedures", BOOKING)
    other = call(
        server,
        token,
        "POST",
        "/api/procedures",
        {
            **BOOKING,
            "accession_number": "WAITING2",
            "requested_procedure_id": "RP2",
            "step_id": "SPS2",
            "study_instance_uid": "1.2.826.0.1.3680043.10.543.78",
            "scheduled_start": f"{TODAY}T10:00",
        },
    )
    assert worklist(assoc) == ["MPPSACC1:SCHEDULED", "WAITING2:SCHEDULED"]

    arrived = call(server, token, "POST", f"/api/procedures/{booked['id']}/arrive")
    assert arrived["status"] == "ARRIVED"
    assert worklist(assoc) == ["MPPSACC1:ARRIVED", "WAITING2:SCHEDULED"]
    assert worklist(assoc, "ARRIVED") == ["MPPSACC1:ARRIVED"]
    assert worklist(assoc, "SCHEDULED") == ["WAITING2:SCHEDULED"]

    uid = str(generate_uid())
    status, _ = assoc.send_n_create(create_dataset(), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0000
    assert call(server, token, "GET", f"/api/procedures/{booked['id']}")["status"] == (
        "IN_PROGRESS"
    )
    assert worklist(assoc) == ["MPPSACC1:STARTED", "WAITING2:SCHEDULED"]
    status, _ = assoc.send_n_set(final_dataset("COMPLETED"), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0000
    assert call(server, token, "GET", f"/api/procedures/{booked['id']}")["status"] == "COMPLETED"
    assert worklist(assoc) == ["WAITING2:SCHEDULED"]
    assert other["status"] == "SCHEDULED"
