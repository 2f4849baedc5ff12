"""Shared test helpers."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, Association
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.domain.bookings import Scheduler
from clinic.server import ClinicServer
from clinic.store.models import WorklistQueryLog
from clinic.worklist import scp as worklist_scp

TODAY = dt.date.today()
PENDING = (0xFF00, 0xFF01)


def at(day: dt.date, hhmm: str) -> str:
    return f"{day.isoformat()}T{hhmm}"


def book(server: ClinicServer, accession: str, **fields: Any) -> None:
    scheduler = server.scheduler
    assert scheduler is not None
    raw = {
        "accession_number": accession,
        "patient_id": f"PID{accession}",
        "patient_name": f"PATIENT^{accession}",
        "modality": "CR",
        "station_ae_title": "XRAY1",
        "scheduled_start": at(TODAY, "09:00"),
        **fields,
    }
    scheduler.book(raw, actor="test")


def associate(
    server: ClinicServer,
    calling: str = "XRAY1",
    called: str = "CLINIC",
    transfer_syntax: str = ImplicitVRLittleEndian,
) -> Association:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind, [transfer_syntax])
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title=called)
    assert assoc.is_established
    return assoc


def mwl_query(
    top: Mapping[str, Any] | None = None, sps: Mapping[str, Any] | None = None
) -> Dataset:
    ds = Dataset()
    for keyword in ("PatientName", "PatientID", "AccessionNumber"):
        setattr(ds, keyword, "")
    for keyword, value in (top or {}).items():
        setattr(ds, keyword, value)
    item = Dataset()
    for keyword in ("ScheduledStationAETitle", "ScheduledProcedureStepStartDate", "Modality"):
        setattr(item, keyword, "")
    for keyword, value in (sps or {}).items():
        setattr(item, keyword, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def find(assoc: Association, ds: Dataset) -> tuple[list[Dataset], Dataset]:
    """Send one C-FIND; return the pending identifiers and the final status."""
    answers = list(assoc.send_c_find(ds, ModalityWorklistInformationFind))
    assert answers, "no response"
    *pending, (final, final_identifier) = answers
    assert final_identifier is None
    for status, identifier in pending:
        assert status.Status in PENDING, hex(status.Status)
        assert identifier is not None
    return [identifier for _, identifier in pending], final


def query(
    server: ClinicServer, ds: Dataset, calling: str = "XRAY1"
) -> tuple[list[Dataset], Dataset]:
    assoc = associate(server, calling)
    try:
        return find(assoc, ds)
    finally:
        assoc.release()


def accessions(answers: list[Dataset]) -> list[str]:
    return [str(a.AccessionNumber) for a in answers]


def _send_raw_find(assoc: Association, sop_class: str, ds: Dataset | bytes) -> None:
    """Send a C-FIND on the MWL context whose Affected SOP Class UID is ``sop_class``."""
    context = next(
        cx
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == ModalityWorklistInformationFind
    )
    req = C_FIND()
    req.MessageID = 3
    req.AffectedSOPClassUID = sop_class
    req.Priority = 2
    raw = ds if isinstance(ds, bytes) else encode(ds, True, True)
    assert raw is not None
    req.Identifier = BytesIO(raw)
    assoc.dimse.send_msg(req, context.context_id)


def check_c_cancel_stops_the_answers(server: ClinicServer, monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler: Scheduler | None = server.scheduler
    assert scheduler is not None
    scheduler.import_procedures(
        [
            {
                "patient_id": f"C{n}",
                "patient_name": f"CANCEL^{n}",
                "modality": "CR",
                "station_ae_title": "XRAY1",
                "scheduled_start": at(TODAY, f"{7 + n // 60:02d}:{n % 60:02d}"),
            }
            for n in range(200)
        ],
        actor="test",
    )
    # Loopback is fast enough for the SCP to send all 200 answers before the C-CANCEL
    # arrives; the tenth matched row waits until the SCP has received it, so the test
    # always sees the cancel honoured.
    received = threading.Event()
    built = 0
    original = worklist_scp.Row

    def gated(*args: Any, **kwargs: Any) -> Any:
        nonlocal built
        built += 1
        if built == 10:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                assoc.dimse.cancel_req
                for listener in server._servers
                for assoc in listener.ae.active_associations
            ):
                time.sleep(0.005)
            received.set()
        return original(*args, **kwargs)

    monkeypatch.setattr(worklist_scp, "Row", gated)
    assoc = associate(server, calling="CANCELLER")
    statuses: list[int] = []
    try:
        for status, _ in assoc.send_c_find(mwl_query(), ModalityWorklistInformationFind, msg_id=7):
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(7, query_model=ModalityWorklistInformationFind)
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000  # the association goes on
    finally:
        assoc.release()
    assert received.is_set()
    assert statuses[-1] == 0xFE00
    assert all(s == 0xFF00 for s in statuses[:-1])
    assert 1 <= len(statuses) - 1 <= 10
    row = wait_for_log_row(server, "CANCELLER", lambda r: r.status == 0xFE00)
    assert row.matches == len(statuses) - 1


def wait_for_log_row(
    server: ClinicServer, calling: str, ready: Callable[[WorklistQueryLog], bool]
) -> WorklistQueryLog:
    """The diagnostics row of ``calling`` once ``ready`` holds (it is written off-thread)."""
    assert server._query_log is not None and server.session_factory is not None
    deadline = time.monotonic() + 10
    while True:
        server._query_log.flush()
        with server.session_factory() as session:
            row = session.get(WorklistQueryLog, calling)
        if row is not None and ready(row):
            return row
        assert time.monotonic() < deadline, f"diagnostics row of {calling}: {row and row.status}"
        time.sleep(0.01)
