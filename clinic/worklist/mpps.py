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
from pydicom.tag import Tag
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_CREATE, N_SET
from pynetdicom.events import EventHandlerType

from clinic.dicom.decoding import first_undecodable
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

MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
VALID_STATUSES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")

# N-CREATE / N-SET statuses (PS3.4 F.7.2.1.4, F.7.2.2.4; PS3.7 C).
SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_INSTANCE = 0x0111
NO_SUCH_INSTANCE = 0x0112
INVALID_OBJECT_INSTANCE = 0x0117
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
#: Error ID with 0x0110: "Performed Procedure Step Object may no longer be updated".
ERROR_ID_NO_LONGER_UPDATABLE = 0xA710

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


class RequestRefused(Exception):
    """An MPPS request fails a check; ``status`` is what the SCU is told."""

    def __init__(
        self,
        status: int,
        comment: str,
        attributes: tuple[str, ...] = (),
        error_id: int | None = None,
    ) -> None:
        super().__init__(comment)
        self.status = status
        self.attributes = attributes
        self.error_id = error_id

    def as_status(self) -> Dataset:
        """The status dataset: Status, Error Comment, offending attributes, Error ID."""
        ds = Dataset()
        ds.Status = self.status
        ds.ErrorComment = str(self)[:64]
        if self.attributes:
            ds.AttributeIdentifierList = [Tag(k) for k in self.attributes]
        if self.error_id is not None:
            ds.ErrorID = self.error_id
        return ds


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _require_decodable(ds: Dataset) -> None:
    undecodable = first_undecodable(ds)
    if undecodable is not None:
        raise RequestRefused(INVALID_ATTRIBUTE_VALUE, f"{undecodable} cannot be decoded")


def _require_values(ds: Dataset, keywords: tuple[str, ...], where: str = "") -> None:
    missing = tuple(k for k in keywords if k not in ds)
    if missing:
        raise RequestRefused(MISSING_ATTRIBUTE, f"{where}{', '.join(missing)} missing", missing)
    empty = tuple(k for k in keywords if ds[k].is_empty)
    if empty:
        raise RequestRefused(
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
        raise RequestRefused(
            INVALID_ATTRIBUTE_VALUE,
            f"{date_kw}/{time_kw} not a valid date and time",
            (date_kw, time_kw),
        ) from None


def _status(ds: Dataset) -> str | None:
    if "PerformedProcedureStepStatus" not in ds:
        return None
    status = _text(ds, "PerformedProcedureStepStatus")
    if status not in VALID_STATUSES:
        raise RequestRefused(
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
                raise RequestRefused(
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

    def handle_n_create(self, event: evt.Event) -> tuple[Any, Dataset | None]:
        """EVT_N_CREATE: start a performed step (status IN PROGRESS)."""
        calling = event.assoc.requestor.ae_title.strip()
        try:
            return self._create(event, calling)
        except RequestRefused as exc:
            log.warning("MPPS N-CREATE from %s refused (0x%04X): %s", calling, exc.status, exc)
            return exc.as_status(), None

    def _create(self, event: evt.Event, calling: str) -> tuple[Any, Dataset | None]:
        request = cast(N_CREATE, event.request)
        if request.AffectedSOPClassUID != MPPS_SOP_CLASS:
            raise RequestRefused(0x0122, "SOP class not supported")
        requested_uid = request.AffectedSOPInstanceUID
        assigned = requested_uid is None
        uid = str(generate_uid()) if requested_uid is None else str(requested_uid)
        if vr.check_uid(uid):
            raise RequestRefused(INVALID_OBJECT_INSTANCE, "SOP Instance UID is not a valid UID")
        try:
            ds = event.attribute_list
        except Exception:
            raise RequestRefused(PROCESSING_FAILURE, "attribute list cannot be decoded") from None
        _require_decodable(ds)
        _require_values(ds, CREATE_TYPE1)
        report = report_from(ds, creating=True)
        if report.status != "IN PROGRESS":
            raise RequestRefused(
                INVALID_ATTRIBUTE_VALUE,
                "a new step must be IN PROGRESS",
                ("PerformedProcedureStepStatus",),
            )
        if report.ended_at is not None:
            raise RequestRefused(
                INVALID_ATTRIBUTE_VALUE,
                "a new step cannot have an end date and time",
                ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"),
            )
        try:
            step = self.steps.create(uid, report, calling)
        except DuplicateStep:
            raise RequestRefused(DUPLICATE_INSTANCE, "SOP Instance UID already exists") from None
        log.info(
            "MPPS %s from %s: IN PROGRESS, %d booking(s) linked", step.id, calling, len(step.links)
        )
        reply = Dataset()
        if assigned:
            reply.AffectedSOPInstanceUID = uid
        return SUCCESS, reply

    def handle_n_set(self, event: evt.Event) -> tuple[Any, Dataset | None]:
        """EVT_N_SET: update a performed step; COMPLETED or DISCONTINUED finishes it."""
        calling = event.assoc.requestor.ae_title.strip()
        try:
            return self._set(event, calling)
        except RequestRefused as exc:
            log.warning("MPPS N-SET from %s refused (0x%04X): %s", calling, exc.status, exc)
            return exc.as_status(), None

    def _set(self, event: evt.Event, calling: str) -> tuple[Any, Dataset | None]:
        request = cast(N_SET, event.request)
        if request.RequestedSOPClassUID != MPPS_SOP_CLASS:
            raise RequestRefused(0x0122, "SOP class not supported")
        uid = str(request.RequestedSOPInstanceUID or "")
        try:
            changes = event.modification_list
        except Exception:
            raise RequestRefused(
                PROCESSING_FAILURE, "modification list cannot be decoded"
            ) from None
        _require_decodable(changes)
        snapshot = self.steps.snapshot(uid)
        if snapshot is None:
            raise RequestRefused(NO_SUCH_INSTANCE, "no such performed procedure step")
        current_status, stored_json = snapshot
        if current_status in FINAL_STATUSES:
            raise RequestRefused(
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
            raise RequestRefused(NO_SUCH_INSTANCE, "no such performed procedure step") from None
        except StepIsFinal as exc:
            raise RequestRefused(
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
