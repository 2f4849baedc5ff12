"""A pano station's bookings, and its exams started as the modality starts them (MPPS)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

from clinic.server import ClinicServer

STATION = "PANO1"


def book(server: ClinicServer, n: int, start: dt.datetime, station: str = STATION) -> Any:
    assert server.scheduler is not None
    return server.scheduler.book(
        {
            "patient_id": f"P/{n} 7",  # a slash and a space: never raw in a file name
            "patient_name": f"DVOŘÁK^ANNA{n}",
            "modality": "PX",
            "station_ae_title": station,
            "scheduled_start": start.strftime("%Y-%m-%dT%H:%M"),
            "accession_number": f"LINKACC{n}",
            "requested_procedure_id": f"RP{n}",
            "step_id": f"SPS{n}",
        },
        actor="test",
    )


def start_exam(server: ClinicServer, proc: Any, station: str = STATION) -> None:
    """N-CREATE an IN PROGRESS performed step for ``proc``, as the modality does."""
    ae = AE(ae_title=station)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ref = Dataset()
    ref.StudyInstanceUID = proc.study_instance_uid
    ref.AccessionNumber = proc.accession_number
    ref.RequestedProcedureID = proc.requested_procedure_id
    ref.ScheduledProcedureStepID = proc.step_id
    ref.ReferencedStudySequence = []
    ds.ScheduledStepAttributesSequence = [ref]
    ds.PatientName = proc.patient.name
    ds.PatientID = proc.patient.patient_id
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedStationAETitle = station
    ds.PerformedProcedureStepStartDate = dt.date.today().strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = dt.datetime.now().strftime("%H%M%S")
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.PerformedProcedureStepID = "PPS1"
    ds.Modality = "PX"
    ds.PerformedSeriesSequence = []
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, None)
    assoc.release()
    assert status.Status == 0
