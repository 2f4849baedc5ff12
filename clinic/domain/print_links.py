"""Print job <-> booking: which patient a film printed by a station belongs to.

A modality's print request carries no patient identity the service can trust (Basic
Print has no patient attributes), so the link is made from the station that prints:

1. the calling AE title has a booking IN_PROGRESS at that station (set by MPPS or by
   hand): the job belongs to it; with several, the one most recently set in progress;
2. else, the station has exactly one booking whose scheduled start lies within
   :data:`LINK_WINDOW` of the time the job arrives, in status SCHEDULED, ARRIVED,
   IN_PROGRESS or COMPLETED: the job belongs to it;
3. else the job stays unlinked, and the front desk can attach it by hand.

Every link change is audited. This module knows nothing of DICOM or the web.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.audit import audit
from clinic.domain.errors import NotFound
from clinic.store.db import transaction
from clinic.store.models import ArchiveStatus, PrintJob, Procedure, ProcedureStatus, utcnow

#: How far a booking's scheduled start may lie from the print time (either side).
LINK_WINDOW = dt.timedelta(hours=2)
#: Bookings of the station that a print within the window may belong to.
WINDOW_STATUSES = (
    ProcedureStatus.SCHEDULED.value,
    ProcedureStatus.ARRIVED.value,
    ProcedureStatus.IN_PROGRESS.value,
    ProcedureStatus.COMPLETED.value,
)
#: Rule names, as written in the audit log.
RULE_IN_PROGRESS = "in-progress"
RULE_ONLY_BOOKING = "only-booking"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def booking_for_station(
    session: Session, station_ae_title: str, now: dt.datetime
) -> tuple[Procedure, str] | None:
    """Return the booking a print from ``station_ae_title`` at ``now`` belongs to.

    Parameters
    ----------
    session : Session
        The store.
    station_ae_title : str
        The calling AE title of the print association.
    now : datetime
        Local time of the print (naive, as scheduled starts are stored).

    Returns
    -------
    tuple of (Procedure, str) or None
        The booking and the rule that chose it (:data:`RULE_IN_PROGRESS` or
        :data:`RULE_ONLY_BOOKING`); ``None`` when no rule names exactly one booking.
    """
    station = station_ae_title.strip()
    if not station:
        return None
    running = session.scalars(
        select(Procedure)
        .where(
            Procedure.station_ae_title == station,
            Procedure.status == ProcedureStatus.IN_PROGRESS.value,
        )
        .order_by(Procedure.updated_at.desc(), Procedure.id.desc())
        .limit(1)
    ).first()
    if running is not None:
        return running, RULE_IN_PROGRESS
    around = list(
        session.scalars(
            select(Procedure)
            .where(
                Procedure.station_ae_title == station,
                Procedure.status.in_(WINDOW_STATUSES),
                Procedure.scheduled_start >= now - LINK_WINDOW,
                Procedure.scheduled_start <= now + LINK_WINDOW,
            )
            .limit(2)
        ).unique()
    )
    if len(around) == 1:
        return around[0], RULE_ONLY_BOOKING
    return None


def link_new_job(session: Session, job: PrintJob, now: dt.datetime) -> Procedure | None:
    """Link a job being spooled to its station's booking, in the caller's transaction.

    Parameters
    ----------
    session : Session
        The transaction that creates the job (the job must be flushed: it has an id).
    job : PrintJob
        The new job; its ``calling_ae_title`` names the station.
    now : datetime
        Local time of the print.

    Returns
    -------
    Procedure or None
        The booking the job was linked to, if any.
    """
    found = booking_for_station(session, job.calling_ae_title, now)
    if found is None:
        return None
    proc, rule = found
    job.procedure_id = proc.id
    job.procedure = proc
    audit(
        session,
        f"print:{job.calling_ae_title}",
        "link",
        "print_job",
        job.id,
        {"procedure": proc.id, "rule": rule},
    )
    return proc


def safe_part(text: str, limit: int = 32) -> str:
    """Return ``text`` reduced to ``[A-Za-z0-9_-]`` (other runs become ``_``), at most ``limit``."""
    return _UNSAFE.sub("_", text).strip("_")[:limit]


def pdf_stem(job_id: int, proc: Procedure | None) -> str:
    """The file name (without ``.pdf``) of a job's PDF: job id, then patient ID and accession.

    Only the job id is used for an unlinked job; never a name or a UID, and only
    characters that are safe in any file system and URL.
    """
    stem = f"job-{job_id:06d}"
    if proc is None:
        return stem
    parts = [safe_part(proc.patient.patient_id), safe_part(proc.accession_number)]
    return "-".join([stem, *(p for p in parts if p)])


def readable_name(value: str) -> str:
    """A DICOM person name as people write it: ``DOE^JANE`` -> ``DOE, JANE``."""
    parts = [p for p in value.split("=", 1)[0].split("^") if p]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return parts[0] if parts else ""


class PrintLinks:
    """Front-desk view of print job links: look up bookings, attach, correct, remove.

    Parameters
    ----------
    session_factory : sessionmaker
        The store.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def set_link(self, job_id: int, procedure_id: int | None, actor: str) -> PrintJob:
        """Attach job ``job_id`` to a booking, move it to another, or (``None``) unlink it.

        Raises
        ------
        NotFound
            The job or the booking does not exist.
        """
        with transaction(self.session_factory) as session:
            job = session.get(PrintJob, job_id, with_for_update={"of": PrintJob})
            if job is None:
                raise NotFound(job_id)
            if procedure_id is not None and session.get(Procedure, procedure_id) is None:
                raise NotFound(procedure_id)
            old = job.procedure_id
            if old == procedure_id:
                return job
            job.procedure_id = procedure_id
            if job.archive_status == ArchiveStatus.SENT.value:
                # Already in the PACS under the old booking: a correction goes under the new.
                job.archive_status = ArchiveStatus.PENDING.value
                job.archive_error = ""
                job.archive_attempts = 0
                job.archive_next_at = None
                job.archive_pending_since = utcnow()
            session.flush()
            session.refresh(job)
            action = "unlink" if procedure_id is None else ("relink" if old else "link")
            audit(
                session,
                actor,
                action,
                "print_job",
                job_id,
                {"procedure": [old, procedure_id], "rule": "by-hand"},
            )
            return job

    def booking_by_accession(self, accession_number: str) -> Procedure | None:
        """The booking with this accession number, if any."""
        with self.session_factory() as session:
            return session.scalars(
                select(Procedure).where(Procedure.accession_number == accession_number.strip())
            ).first()

    def candidates(self, day: dt.date) -> Sequence[Procedure]:
        """The bookings of ``day`` a print may belong to (all but cancelled), by start time."""
        start = dt.datetime.combine(day, dt.time())
        stmt = (
            select(Procedure)
            .where(
                Procedure.scheduled_start >= start,
                Procedure.scheduled_start < start + dt.timedelta(days=1),
                Procedure.status != ProcedureStatus.CANCELLED.value,
            )
            .order_by(Procedure.scheduled_start, Procedure.id)
        )
        with self.session_factory() as session:
            return list(session.scalars(stmt).unique())
