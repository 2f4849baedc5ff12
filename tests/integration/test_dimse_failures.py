"""An unexpected error inside a DICOM handler: the service's processing-failure status,
a traceback in the log without the values, and the association and the service go on."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.dicom import status as dimse
from clinic.domain.performed import PerformedSteps
from clinic.printing.session import PrintSession
from clinic.server import ClinicServer
from clinic.worklist import scp as worklist_scp
from tests.support.printing import FILM_SESSION, PrintScu

# What a faulty line might put in its message; it must not reach the log.
NAME = "".join(("NOVÁK", "^", "JAN"))


def fault(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise RuntimeError(f"cannot handle {NAME}")


def worklist_association(server: ClinicServer) -> Any:
    ae = AE(ae_title="XRAY1")
    for sop_class in (
        ModalityWorklistInformationFind,
        ModalityPerformedProcedureStep,
        Verification,
    ):
        ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    return assoc


def assert_logged_without_values(caplog: pytest.LogCaptureFixture, line: str) -> None:
    assert line in caplog.text
    assert "Traceback (most recent call last)" in caplog.text and "in fault" in caplog.text
    assert "NOVÁK" not in caplog.text


def test_worklist_fault_is_unable_to_process(
    server: ClinicServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(worklist_scp, "build_select", fault)
    query = Dataset()
    query.PatientName = "*"
    assoc = worklist_association(server)
    try:
        with caplog.at_level(logging.ERROR):
            answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
        final = answers[-1][0]
        assert final.Status == dimse.UNABLE_TO_PROCESS
        assert final.ErrorComment == "cannot process request: RuntimeError"
        assert_logged_without_values(
            caplog, "worklist query from XRAY1 failed (0xC000): RuntimeError"
        )
        assert assoc.send_c_echo().Status == 0
    finally:
        assoc.release()


def test_mpps_fault_is_processing_failure(
    server: ClinicServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(PerformedSteps, "create", fault)
    ds = Dataset()
    ref = Dataset()
    ref.StudyInstanceUID = "1.2.826.0.1.3680043.10.543.1"
    ds.ScheduledStepAttributesSequence = [ref]
    ds.PatientName = NAME
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedStationAETitle = "XRAY1"
    ds.PerformedProcedureStepStartDate = "20261126"
    ds.PerformedProcedureStepStartTime = "091000"
    ds.PerformedProcedureStepID = "PPS1"
    ds.Modality = "CR"
    assoc = worklist_association(server)
    try:
        with caplog.at_level(logging.ERROR):
            status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, "1.2.3.4.5")
        assert status.Status == dimse.PROCESSING_FAILURE
        assert status.ErrorComment == "cannot process request: RuntimeError"
        assert_logged_without_values(
            caplog, "MPPS N-CREATE from XRAY1 failed (0x0110): RuntimeError"
        )
        assert assoc.send_c_echo().Status == 0
    finally:
        assoc.release()


def test_print_fault_is_processing_failure(
    server: ClinicServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(PrintSession, "create_film_session", fault)
    scu = PrintScu(server.print_port)
    try:
        ds = Dataset()
        ds.NumberOfCopies = "1"
        with caplog.at_level(logging.ERROR):
            status, _, _ = scu.create(FILM_SESSION, ds)
        assert status == dimse.PROCESSING_FAILURE
        assert_logged_without_values(
            caplog, "print N-CREATE from MODALITY failed (0x0110): RuntimeError"
        )
        monkeypatch.undo()
        assert scu.create(FILM_SESSION, ds)[0] == dimse.SUCCESS
    finally:
        scu.release()
