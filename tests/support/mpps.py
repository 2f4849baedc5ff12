"""An MPPS step as a modality reports it, for a booking made to match, and its outcome."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.association import Association
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]
from sqlalchemy import select

from clinic.server import ClinicServer
from clinic.store.models import Procedure

#: The booking the performed steps below refer to.
BOOKING = {
    "patient_id": "MP1",
    "patient_name": "NOVÁK^JAN",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    # Today: a booking still scheduled from days ago is no longer on the worklist.
    "scheduled_start": f"{dt.date.today().isoformat()}T09:00",
    "accession_number": "MPPSACC1",
    "requested_procedure_id": "RP1",
    "step_id": "SPS1",
    "study_instance_uid": "1.2.826.0.1.3680043.10.543.77",
}


def create_dataset(**overrides: Any) -> Dataset:
    ds = Dataset()
    ref = Dataset()
    ref.StudyInstanceUID = BOOKING["study_instance_uid"]
    ref.AccessionNumber = BOOKING["accession_number"]
    ref.RequestedProcedureID = BOOKING["requested_procedure_id"]
    ref.ScheduledProcedureStepID = BOOKING["step_id"]
    ref.ReferencedStudySequence = []
    ds.ScheduledStepAttributesSequence = [ref]
    ds.PatientName = BOOKING["patient_name"]
    ds.PatientID = BOOKING["patient_id"]
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedStationAETitle = "XRAY1"
    ds.PerformedProcedureStepStartDate = "20261126"
    ds.PerformedProcedureStepStartTime = "091000"
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.PerformedProcedureStepID = "PPS1"
    ds.Modality = "CR"
    ds.PerformedSeriesSequence = []
    for keyword, value in overrides.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def final_dataset(status: str = "COMPLETED", **overrides: Any) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261126"
    ds.PerformedProcedureStepEndTime = "093000"
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.SeriesDescription = "PA"
    image = Dataset()
    image.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    image.ReferencedSOPInstanceUID = generate_uid()
    series.ReferencedImageSequence = [image]
    ds.PerformedSeriesSequence = [series]
    for keyword, value in overrides.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def booking_status(server: ClinicServer, accession: str = "MPPSACC1") -> str:
    assert server.session_factory is not None
    with server.session_factory() as session:
        status = session.scalar(
            select(Procedure.status).where(Procedure.accession_number == accession)
        )
    assert status is not None
    return status


def n_create(assoc: Association, ds: Dataset, uid: str | None) -> int:
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
    return int(status.Status)
