"""Performed procedure steps: what modalities report they did, and the bookings it moves.

The MPPS door parses DICOM and calls :class:`PerformedSteps`; this module knows nothing
of the network. A step links to the bookings named in its Scheduled Step Attributes
(:func:`find_bookings`: Scheduled Procedure Step ID with the Requested Procedure ID when
sent, else accession number, else Study Instance UID; a modality's own Study UID never
prevents the link and is kept with the step) and moves them: IN PROGRESS starts them,
COMPLETED and DISCONTINUED finish them, so they leave the worklist. A step DISCONTINUED
because the wrong worklist entry was picked (:data:`WRONG_ENTRY_REASONS`) instead
returns its bookings to SCHEDULED (ARRIVED when checked in), back onto the worklist, and
is kept marked as taken on the wrong entry. A step that names no known booking is kept
for the front desk, who can attach it by hand.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.audit import audit
from clinic.domain.bookings import TRANSITIONS, transition
from clinic.domain.errors import NotFound
from clinic.store.db import transaction
from clinic.store.models import (
    ACTIVE_STATUSES,
    PerformedStep,
    PerformedStepLink,
    PerformedStepStatus,
    Procedure,
    ProcedureStatus,
)

FINAL_STATUSES = (PerformedStepStatus.COMPLETED.value, PerformedStepStatus.DISCONTINUED.value)

#: Performed Procedure Step Discontinuation Reasons (PS3.16 CID 9300) that say the step
#: was taken on the wrong worklist entry, so the booking it named was never performed:
#: (code value, coding scheme designator) -> code meaning. CID 9300 has one such code;
#: the other reasons (equipment failure, patient refused, incorrect procedure or side
#: ordered, duplicate order, ...) concern the exam or the order itself and finish the
#: booking as DISCONTINUED. 113038 "Incorrect Modality Worklist Entry" (CID 7011, the
#: title of a rejection note) says the same and is taken from modalities that send it.
WRONG_ENTRY_REASONS = {
    ("110514", "DCM"): "Incorrect worklist entry selected",
    ("113038", "DCM"): "Incorrect Modality Worklist Entry",
}

#: What a performed step status makes of a booking.
BOOKING_STATUS = {
    PerformedStepStatus.IN_PROGRESS.value: ProcedureStatus.IN_PROGRESS,
    PerformedStepStatus.COMPLETED.value: ProcedureStatus.COMPLETED,
    PerformedStepStatus.DISCONTINUED.value: ProcedureStatus.DISCONTINUED,
}


class DuplicateStep(Exception):
    """A performed step with this SOP Instance UID already exists."""


class UnknownStep(Exception):
    """No performed step has this SOP Instance UID."""


class StepIsFinal(Exception):
    """The performed step is COMPLETED or DISCONTINUED and may no longer change."""


@dataclass(frozen=True)
class StepReference:
    """One item of the Scheduled Step Attributes Sequence: the booking it performs."""

    study_instance_uid: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    step_id: str = ""


@dataclass(frozen=True)
class Reason:
    """A coded reason (a Code Sequence item): value, coding scheme and meaning."""

    value: str
    scheme: str = ""
    meaning: str = ""

    def __str__(self) -> str:
        text = f"{self.value} ({self.scheme})" if self.scheme else self.value
        return f"{text} {self.meaning}".strip()

    @property
    def wrong_entry(self) -> bool:
        """Whether the reason says the wrong worklist entry was picked."""
        return (self.value, self.scheme.upper()) in WRONG_ENTRY_REASONS


@dataclass
class StepReport:
    """What a modality says about a performed step (a creation, or the changes of an update).

    ``None`` in an update means "not sent"; a creation fills what it has.
    """

    status: str | None = None
    station_ae_title: str | None = None
    modality: str | None = None
    pps_id: str | None = None
    description: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    performed_series: list[dict[str, Any]] | None = None
    references: list[StepReference] = field(default_factory=list)
    #: Performed Procedure Step Discontinuation Reason Code Sequence; ``None``: not sent.
    discontinuation_reasons: list[Reason] | None = None
    dataset_json: str = "{}"


def find_bookings(session: Session, ref: StepReference) -> list[Procedure]:
    """Return the booking a Scheduled Step Attributes item names (none, or one).

    The keys are tried in the order modalities are reliable about them:

    1. the Scheduled Procedure Step ID, with the Requested Procedure ID when sent: what
       the modality took from the worklist entry it performed;
    2. the accession number;
    3. the Study Instance UID. Many intraoral sensors and panoramic units make a
       Study Instance UID of their own, so it only decides when nothing else does.

    A key that names several bookings (IDs an ordering system reused) is narrowed by
    the keys sent beside it, then to bookings still to be done; when it still names
    more than one, the next key decides, and a step no key settles stays unlinked for
    the front desk rather than being guessed.
    """
    if ref.step_id:
        stmt = select(Procedure).where(Procedure.step_id == ref.step_id)
        if ref.requested_procedure_id:
            stmt = stmt.where(Procedure.requested_procedure_id == ref.requested_procedure_id)
        found = _settle(list(session.scalars(stmt).unique()), ref)
        if found is not None:
            return [found]
    for column, value in (
        (Procedure.accession_number, ref.accession_number),
        (Procedure.study_instance_uid, ref.study_instance_uid),
    ):
        if value:
            found = session.scalars(select(Procedure).where(column == value)).first()
            if found is not None:
                return [found]
    return []


def _settle(candidates: list[Procedure], ref: StepReference) -> Procedure | None:
    """The one booking among ``candidates`` the other keys point at, if there is one."""
    for keep in (
        lambda p: p.accession_number == ref.accession_number,
        lambda p: p.study_instance_uid == ref.study_instance_uid,
        lambda p: p.status in ACTIVE_STATUSES,
    ):
        if len(candidates) <= 1:
            break
        narrowed = [p for p in candidates if keep(p)]
        if narrowed:
            candidates = narrowed
    return candidates[0] if len(candidates) == 1 else None


def _move_booking(session: Session, proc: Procedure, step_status: str, actor: str) -> None:
    """Bring a booking to the status a performed step implies, through allowed moves."""
    target = BOOKING_STATUS[step_status]
    if proc.status == target:
        return
    if (
        proc.status in (ProcedureStatus.SCHEDULED, ProcedureStatus.ARRIVED)
        and target == ProcedureStatus.COMPLETED
    ):
        transition(session, proc, ProcedureStatus.IN_PROGRESS, actor)
    if target in TRANSITIONS.get(proc.status, ()):
        transition(session, proc, target, actor)
    else:
        # e.g. a cancelled booking the modality performed anyway: keep the link, say so.
        audit(
            session,
            actor,
            "mpps-ignored",
            "procedure",
            proc.id,
            {"status": proc.status, "performed_step_status": step_status},
        )


def _return_to_worklist(
    session: Session, link: PerformedStepLink, step: PerformedStep, reason: Reason, actor: str
) -> None:
    """Undo what a step taken on the wrong worklist entry did to a booking.

    The booking goes back onto the worklist as it was before the step started it:
    SCHEDULED, or ARRIVED when its patient had been checked in; unless another step is
    still performing it. A booking that finished or was cancelled meanwhile stays as it
    is. This is the only way back from IN_PROGRESS.
    """
    proc = link.procedure
    back = (
        ProcedureStatus.ARRIVED.value
        if link.status_before == ProcedureStatus.ARRIVED
        else ProcedureStatus.SCHEDULED.value
    )
    detail: dict[str, Any] = {"performed_step": step.sop_instance_uid, "reason": str(reason)}
    running = session.scalar(
        select(PerformedStep.id)
        .join(PerformedStepLink)
        .where(
            PerformedStepLink.procedure_id == proc.id,
            PerformedStep.id != step.id,
            PerformedStep.status == PerformedStepStatus.IN_PROGRESS.value,
            PerformedStep.wrong_entry.is_(False),
        )
        .limit(1)
    )
    if proc.status == ProcedureStatus.IN_PROGRESS and running is None:
        detail["status"] = [proc.status, back]
        proc.status = back
        audit(session, actor, "status", "procedure", proc.id, detail)
        return
    detail["status"] = proc.status
    if running is not None:
        detail["still_performed_by"] = running
    audit(session, actor, "mpps-wrong-entry", "procedure", proc.id, detail)


class PerformedSteps:
    """Creates and updates performed steps and moves the bookings they perform.

    Parameters
    ----------
    session_factory : sessionmaker
        The store.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def create(
        self, sop_instance_uid: str, report: StepReport, calling_ae_title: str
    ) -> PerformedStep:
        """Store a new IN PROGRESS step and start the bookings it names.

        Raises
        ------
        DuplicateStep
            When the SOP Instance UID is already known.
        """
        actor = f"mpps:{calling_ae_title}"
        with transaction(self.session_factory) as session:
            exists = session.scalar(
                select(PerformedStep.id).where(PerformedStep.sop_instance_uid == sop_instance_uid)
            )
            if exists is not None:
                raise DuplicateStep(sop_instance_uid)
            first = report.references[0] if report.references else StepReference()
            step = PerformedStep(
                sop_instance_uid=sop_instance_uid,
                status=report.status or PerformedStepStatus.IN_PROGRESS.value,
                calling_ae_title=calling_ae_title[:16],
                station_ae_title=report.station_ae_title or "",
                modality=report.modality or "",
                pps_id=report.pps_id or "",
                description=report.description or "",
                patient_id=report.patient_id or "",
                patient_name=report.patient_name or "",
                study_instance_uid=first.study_instance_uid,
                accession_number=first.accession_number,
                started_at=report.started_at,
                ended_at=report.ended_at,
                performed_series=json.dumps(report.performed_series or []),
                dataset_json=report.dataset_json,
                links=[],
            )
            session.add(step)
            session.flush()
            linked: list[int] = []
            for ref in report.references:
                for proc in find_bookings(session, ref):
                    if proc.id in linked:
                        continue
                    linked.append(proc.id)
                    step.links.append(
                        PerformedStepLink(procedure_id=proc.id, status_before=proc.status)
                    )
                    _move_booking(session, proc, step.status, actor)
            audit(
                session,
                actor,
                "create",
                "performed_step",
                sop_instance_uid,
                {"status": step.status, "procedures": linked},
            )
            return step

    def update(
        self, sop_instance_uid: str, report: StepReport, calling_ae_title: str
    ) -> PerformedStep:
        """Apply an N-SET: new values, and on COMPLETED/DISCONTINUED finish the bookings.

        Raises
        ------
        UnknownStep
            No step has this UID.
        StepIsFinal
            The step is already COMPLETED or DISCONTINUED.
        """
        actor = f"mpps:{calling_ae_title}"
        with transaction(self.session_factory) as session:
            step = session.scalar(
                select(PerformedStep)
                .where(PerformedStep.sop_instance_uid == sop_instance_uid)
                .with_for_update()
            )
            if step is None:
                raise UnknownStep(sop_instance_uid)
            if step.status in FINAL_STATUSES:
                raise StepIsFinal(step.status)
            changes: dict[str, Any] = {}
            for name in ("status", "description", "ended_at"):
                value = getattr(report, name)
                if value is not None and value != getattr(step, name):
                    changes[name] = [getattr(step, name), value]
                    setattr(step, name, value)
            if report.performed_series is not None:
                step.performed_series = json.dumps(report.performed_series)
                changes["performed_series"] = len(report.performed_series)
            step.dataset_json = report.dataset_json
            reasons = report.discontinuation_reasons
            if reasons is not None:
                text = "; ".join(str(r) for r in reasons)[:255]
                if text != step.discontinuation_reason:
                    changes["discontinuation_reason"] = [step.discontinuation_reason, text]
                    step.discontinuation_reason = text
            wrong = next((r for r in reasons or () if r.wrong_entry), None)
            if step.status == PerformedStepStatus.DISCONTINUED and wrong is not None:
                step.wrong_entry = True
                changes["wrong_entry"] = True
                for link in step.links:
                    _return_to_worklist(session, link, step, wrong, actor)
            else:
                for link in step.links:
                    _move_booking(session, link.procedure, step.status, actor)
            audit(session, actor, "update", "performed_step", sop_instance_uid, changes)
            return step

    def snapshot(self, sop_instance_uid: str) -> tuple[str, str] | None:
        """Return ``(status, dataset_json)`` of a step, or ``None`` when it is unknown."""
        with self.session_factory() as session:
            row = session.execute(
                select(PerformedStep.status, PerformedStep.dataset_json).where(
                    PerformedStep.sop_instance_uid == sop_instance_uid
                )
            ).first()
            return (row[0], row[1]) if row else None

    def attach(self, performed_step_id: int, procedure_id: int, actor: str) -> PerformedStep:
        """Link a step to a booking by hand (an unscheduled exam the front desk recognised).

        The booking then follows the step's status.

        Raises
        ------
        NotFound
            The step or the booking does not exist.
        """
        with transaction(self.session_factory) as session:
            step = session.get(PerformedStep, performed_step_id)
            proc = session.get(Procedure, procedure_id, with_for_update={"of": Procedure})
            if step is None or proc is None:
                raise NotFound(performed_step_id if step is None else procedure_id)
            if any(link.procedure_id == procedure_id for link in step.links):
                return step
            step.links.append(
                PerformedStepLink(procedure_id=procedure_id, status_before=proc.status)
            )
            session.flush()
            if not step.wrong_entry:  # a step on the wrong entry performed nothing
                _move_booking(session, proc, step.status, actor)
            audit(
                session,
                actor,
                "attach",
                "performed_step",
                step.sop_instance_uid,
                {"procedure": procedure_id},
            )
            return step

    def unlinked(self, limit: int = 20, offset: int = 0) -> Sequence[PerformedStep]:
        """Steps that matched no booking, newest first (for the front desk to attach).

        Any modality may report exams nobody booked, so the list is read a page at a
        time (``limit``, ``offset``); :meth:`count_unlinked` says how many there are.
        """
        stmt = (
            select(PerformedStep)
            .where(~PerformedStep.links.any())
            .order_by(PerformedStep.created_at.desc(), PerformedStep.id.desc())
            .offset(offset)
            .limit(limit)
        )
        with self.session_factory() as session:
            return list(session.scalars(stmt))

    def count_unlinked(self) -> int:
        """How many steps matched no booking."""
        stmt = select(func.count()).select_from(PerformedStep).where(~PerformedStep.links.any())
        with self.session_factory() as session:
            return int(session.scalar(stmt) or 0)

    def for_procedure(self, procedure_id: int) -> Sequence[PerformedStep]:
        """The performed steps linked to one booking, oldest first."""
        stmt = (
            select(PerformedStep)
            .join(PerformedStepLink)
            .where(PerformedStepLink.procedure_id == procedure_id)
            .order_by(PerformedStep.created_at)
        )
        with self.session_factory() as session:
            return list(session.scalars(stmt))
