"""Modality Performed Procedure Step SCP (PS3.4 Annex F): N-CREATE and N-SET.

The handlers check what the standard requires of each request and answer its
failure status (changing nothing) when a check fails; the accepted report goes to
:class:`clinic.domain.performed.PerformedSteps`, which links and moves the bookings.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_CREATE, N_SET
from pynetdicom.events import EventHandlerType
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

from clinic.dicom.decoding import first_undecodable, received
from clinic.dicom.status import (
    DUPLICATE_INSTANCE,
    ERROR_ID_NO_LONGER_UPDATABLE,
    INVALID_ATTRIBUTE_VALUE,
    INVALID_OBJECT_INSTANCE,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTE_VALUE,
    NO_SUCH_INSTANCE,
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    DimseFailure,
    dimse_handler,
)
from clinic.domain import vr
from clinic.domain.performed import (
    FINAL_STATUSES,
    DuplicateStep,
    PerformedSteps,
    StepIsFinal,
    StepReference,
    StepReport,
    UnknownStep,
)

log = logging.getLogger(__name__)

VALID_STATUSES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")

#: Type 1 attributes of an N-CREATE (top level), PS3.4 Table F.7.2-1.
CREATE_TYPE1 = (
    "PerformedProcedureStepStatus",
    "ScheduledStepAttributesSequence",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID",
    "Modality",
)
#: Attributes the SCU may no longer change with N-SET (set at creation only).
CREATE_ONLY = (
    "ScheduledStepAttributesSequence",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID",
    "Modality",
    "StudyID",
)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _require_decodable(ds: Dataset) -> None:
    undecodable = first_undecodable(ds)
    if undecodable is not None:
        raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"{undecodable} cannot be decoded")


def _require_values(ds: Dataset, keywords: tuple[str, ...], where: str = "") -> None:
    missing = tuple(k for k in keywords if k not in ds)
    if missing:
        raise DimseFailure(MISSING_ATTRIBUTE, f"{where}{', '.join(missing)} missing", missing)
    empty = tuple(k for k in keywords if ds[k].is_empty)
    if empty:
        raise DimseFailure(
            MISSING_ATTRIBUTE_VALUE, f"{where}{', '.join(empty)} has no value", empty
        )


def _datetime(ds: Dataset, date_kw: str, time_kw: str) -> dt.datetime | None:
    """Combine a DA and a TM attribute; ``None`` when both are empty."""
    date_text, time_text = _text(ds, date_kw), _text(ds, time_kw)
    if not date_text and not time_text:
        return None
    try:
        day = dt.datetime.strptime(date_text, "%Y%m%d").date()
        digits = time_text.split(".")[0].replace(":", "")
        if not digits.isdigit() or len(digits) not in (2, 4, 6):
            raise ValueError(time_text)
        hour, minute, second = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
        return dt.datetime.combine(day, dt.time(hour, minute, min(second, 59)))
    except ValueError:
        raise DimseFailure(
            INVALID_ATTRIBUTE_VALUE,
            f"{date_kw}/{time_kw} not a valid date and time",
            (date_kw, time_kw),
        ) from None


def _status(ds: Dataset) -> str | None:
    if "PerformedProcedureStepStatus" not in ds:
        return None
    status = _text(ds, "PerformedProcedureStepStatus")
    if status not in VALID_STATUSES:
        raise DimseFailure(
            INVALID_ATTRIBUTE_VALUE,
            "PerformedProcedureStepStatus must be IN PROGRESS, COMPLETED or DISCONTINUED",
            ("PerformedProcedureStepStatus",),
        )
    return status


def _performed_series(ds: Dataset) -> list[dict[str, Any]] | None:
    if "PerformedSeriesSequence" not in ds:
        return None
    series = []
    for item in ds.PerformedSeriesSequence or []:
        series.append(
            {
                "series_instance_uid": _text(item, "SeriesInstanceUID"),
                "description": _text(item, "SeriesDescription"),
                "images": len(item.get("ReferencedImageSequence") or []),
            }
        )
    return series


def _to_json(ds: Dataset) -> str:
    try:
        return str(ds.to_json(bulk_data_threshold=65536))
    except Exception:  # odd values from a peer must not lose the report itself
        return "{}"


def report_from(ds: Dataset, *, creating: bool) -> StepReport:
    """Read a performed step report out of an N-CREATE or (merged) N-SET dataset."""
    references = []
    for item in ds.get("ScheduledStepAttributesSequence") or []:
        if creating:
            _require_values(item, ("StudyInstanceUID",), "ScheduledStepAttributesSequence: ")
            problem = vr.check_uid(_text(item, "StudyInstanceUID"))
            if problem:
                raise DimseFailure(
                    INVALID_ATTRIBUTE_VALUE, f"StudyInstanceUID {problem}", ("StudyInstanceUID",)
                )
        references.append(
            StepReference(
                study_instance_uid=_text(item, "StudyInstanceUID"),
                accession_number=_text(item, "AccessionNumber"),
                requested_procedure_id=_text(item, "RequestedProcedureID"),
                step_id=_text(item, "ScheduledProcedureStepID"),
            )
        )
    return StepReport(
        status=_status(ds),
        station_ae_title=_text(ds, "PerformedStationAETitle")[:16],
        modality=_text(ds, "Modality")[:16],
        pps_id=_text(ds, "PerformedProcedureStepID")[:16],
        description=_text(ds, "PerformedProcedureStepDescription")[:64]
        if "PerformedProcedureStepDescription" in ds
        else None,
        patient_id=_text(ds, "PatientID")[:64],
        patient_name=_text(ds, "PatientName")[:200],
        started_at=_datetime(
            ds, "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"
        ),
        ended_at=_datetime(ds, "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"),
        performed_series=_performed_series(ds),
        references=references,
        dataset_json=_to_json(ds),
    )


class MppsService:
    """N-CREATE / N-SET handlers of the Modality Performed Procedure Step SOP Class.

    Parameters
    ----------
    steps : PerformedSteps
        The domain service that stores steps and moves bookings.
    """

    def __init__(self, steps: PerformedSteps) -> None:
        self.steps = steps

    @dimse_handler("MPPS N-CREATE", PROCESSING_FAILURE)
    def handle_n_create(self, event: evt.Event) -> tuple[Any, Dataset | None]:
        """EVT_N_CREATE: start a performed step (status IN PROGRESS)."""
        calling = event.assoc.requestor.ae_title.strip()
        request = cast(N_CREATE, event.request)
        if request.AffectedSOPClassUID != ModalityPerformedProcedureStep:
            raise DimseFailure(SOP_CLASS_NOT_SUPPORTED, "SOP class not supported")
        requested_uid = request.AffectedSOPInstanceUID
        assigned = requested_uid is None
        uid = str(generate_uid()) if requested_uid is None else str(requested_uid)
        if vr.check_uid(uid):
            raise DimseFailure(INVALID_OBJECT_INSTANCE, "SOP Instance UID is not a valid UID")
        ds = received(lambda: event.attribute_list, "attribute list", PROCESSING_FAILURE)
        _require_decodable(ds)
        _require_values(ds, CREATE_TYPE1)
        report = report_from(ds, creating=True)
        if report.status != "IN PROGRESS":
            raise DimseFailure(
                INVALID_ATTRIBUTE_VALUE,
                "a new step must be IN PROGRESS",
                ("PerformedProcedureStepStatus",),
            )
        if report.ended_at is not None:
            raise DimseFailure(
                INVALID_ATTRIBUTE_VALUE,
                "a new step cannot have an end date and time",
                ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"),
            )
        try:
            step = self.steps.create(uid, report, calling)
        except DuplicateStep:
            raise DimseFailure(DUPLICATE_INSTANCE, "SOP Instance UID already exists") from None
        log.info(
            "MPPS %s from %s: IN PROGRESS, %d booking(s) linked", step.id, calling, len(step.links)
        )
        reply = Dataset()
        if assigned:
            reply.AffectedSOPInstanceUID = uid
        return SUCCESS, reply

    @dimse_handler("MPPS N-SET", PROCESSING_FAILURE)
    def handle_n_set(self, event: evt.Event) -> tuple[Any, Dataset | None]:
        """EVT_N_SET: update a performed step; COMPLETED or DISCONTINUED finishes it."""
        calling = event.assoc.requestor.ae_title.strip()
        request = cast(N_SET, event.request)
        if request.RequestedSOPClassUID != ModalityPerformedProcedureStep:
            raise DimseFailure(SOP_CLASS_NOT_SUPPORTED, "SOP class not supported")
        uid = str(request.RequestedSOPInstanceUID or "")
        changes = received(lambda: event.modification_list, "modification list", PROCESSING_FAILURE)
        _require_decodable(changes)
        snapshot = self.steps.snapshot(uid)
        if snapshot is None:
            raise DimseFailure(NO_SUCH_INSTANCE, "no such performed procedure step")
        current_status, stored_json = snapshot
        if current_status in FINAL_STATUSES:
            raise DimseFailure(
                PROCESSING_FAILURE,
                f"step is {current_status} and may no longer be updated",
                error_id=ERROR_ID_NO_LONGER_UPDATABLE,
            )
        merged = Dataset.from_json(stored_json) if stored_json != "{}" else Dataset()
        for elem in changes:
            if elem.keyword in CREATE_ONLY:
                continue  # fixed at creation (PS3.4 Table F.7.2-1: N-SET not allowed)
            merged[elem.tag] = elem
        new_status = _status(merged)
        if new_status in FINAL_STATUSES:
            # PS3.4 F.7.2.2.2: a final state needs its end, and COMPLETED its series.
            _require_values(
                merged,
                ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"),
                f"{new_status}: ",
            )
            if new_status == "COMPLETED":
                _require_values(merged, ("PerformedSeriesSequence",), "COMPLETED: ")
        report = report_from(merged, creating=False)
        report.references = []
        for name in ("station_ae_title", "modality", "pps_id", "patient_id", "patient_name"):
            setattr(report, name, None)
        try:
            self.steps.update(uid, report, calling)
        except UnknownStep:
            raise DimseFailure(NO_SUCH_INSTANCE, "no such performed procedure step") from None
        except StepIsFinal as exc:
            raise DimseFailure(
                PROCESSING_FAILURE,
                f"step is {exc} and may no longer be updated",
                error_id=ERROR_ID_NO_LONGER_UPDATABLE,
            ) from None
        log.info("MPPS N-SET from %s: %s", calling, report.status or "values updated")
        return SUCCESS, Dataset()


def mpps_handlers(service: MppsService) -> list[EventHandlerType]:
    """The event handlers to add to the worklist listener for MPPS."""
    return [
        (evt.EVT_N_CREATE, service.handle_n_create),
        (evt.EVT_N_SET, service.handle_n_set),
    ]
