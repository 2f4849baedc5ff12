"""Print jobs as the outside world reads them (CLI, REST API, web pages)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.audit import audit
from clinic.domain.errors import NotFound
from clinic.store.db import transaction
from clinic.store.models import ArchiveStatus, PrintJob, PrintJobStatus, utcnow

#: Why a pending archive send has not gone, when it is not the PACS's doing.
WAIT_LINK = "waiting for the front desk to link the job to a booking"
WAIT_PRINT = "waiting for the job to be printed"
WAIT_HOLD = "held at the front desk"


def archive_reason(job: PrintJob) -> str:
    """Why the job's archive send failed or waits, in words (empty when there is nothing)."""
    if job.archive_status == ArchiveStatus.PENDING.value:
        if job.held:
            return WAIT_HOLD
        if job.status != "done":
            return job.archive_error or WAIT_PRINT
        if job.procedure_id is None:
            return WAIT_LINK
    return job.archive_error if job.archive_status else ""


def job_to_dict(job: PrintJob) -> dict[str, Any]:
    """A print job as the outside contract's JSON fields (``pdf_path`` absolute)."""
    return {
        "id": job.id,
        "status": job.status,
        "calling_ae_title": job.calling_ae_title,
        "printer_ae_title": job.printer_ae_title,
        "films": job.films,
        "pages": job.pages,
        "pdf_path": job.pdf_path,
        "created_at": job.created_at.isoformat(timespec="seconds"),
        "copies": job.copies,
        "error": job.error,
        "printed_at": job.printed_at.isoformat(timespec="seconds") if job.printed_at else None,
        "procedure_id": job.procedure_id,
        "patient_id": job.procedure.patient.patient_id if job.procedure else None,
        "accession_number": job.procedure.accession_number if job.procedure else None,
        "held": job.held,
        # null when the printer does not archive; else pending, sent or failed.
        "archive_status": job.archive_status or None,
        "archive_error": archive_reason(job) or None,
        "archive_to": job.archive_to or None,
        "archive_sent_at": (
            job.archive_sent_at.isoformat(timespec="seconds") if job.archive_sent_at else None
        ),
    }


def list_jobs(
    factory: sessionmaker[Session], offset: int = 0, limit: int | None = None
) -> list[PrintJob]:
    """Print jobs, newest first; ``offset``/``limit`` page through them."""
    stmt = select(PrintJob).order_by(PrintJob.id.desc()).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    with factory() as session:
        return list(session.scalars(stmt))


class DeskRefusal(Exception):
    """The front desk asked for something the job's state does not allow (message says why)."""


class PrintDesk:
    """What the front desk does with print jobs beyond linking: the hold queue and the archive.

    Parameters
    ----------
    factory : sessionmaker
        The store.
    printers : dict
        Printer AE title -> its archive (``AE@host:port``, empty when it does not archive).
    wake : callable, optional
        Tells the print service to look at its queues now.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        printers: dict[str, str],
        wake: Callable[[], object] | None = None,
    ) -> None:
        self.factory = factory
        self.printers = dict(printers)
        self._wake = wake

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake()

    def _held(self, session: Session, job_id: int) -> PrintJob:
        job = session.get(PrintJob, job_id, with_for_update={"of": PrintJob})
        if job is None:
            raise NotFound(job_id)
        if not job.held or job.status != PrintJobStatus.QUEUED.value:
            raise DeskRefusal(f"print job {job_id} is not held at the front desk")
        return job

    def release(self, job_id: int, printer: str, copies: int, actor: str) -> PrintJob:
        """Print a held job on ``printer`` with ``copies`` copies (audited).

        Raises
        ------
        NotFound
            No such job.
        DeskRefusal
            The job is not held, the printer is unknown or the copies out of 1-99.
        """
        printer = printer.strip()
        if printer not in self.printers:
            raise DeskRefusal(f"there is no printer {printer}")
        if not 1 <= copies <= 99:
            raise DeskRefusal("copies must be from 1 to 99")
        with transaction(self.factory) as session:
            job = self._held(session, job_id)
            detail = {
                "printer": [job.printer_ae_title, printer],
                "copies": [job.copies, copies],
            }
            if printer != job.printer_ae_title:
                job.printer_ae_title = printer
                destination = self.printers[printer]
                job.archive_to = destination
                job.archive_status = ArchiveStatus.PENDING.value if destination else ""
                job.archive_pending_since = utcnow() if destination else None
            job.copies = copies
            job.held = False
            audit(session, actor, "release", "print_job", job_id, detail)
        self._wake_up()
        return job

    def discard(self, job_id: int, actor: str) -> PrintJob:
        """Drop a held job: it is never printed nor archived (audited).

        Raises
        ------
        NotFound
            No such job.
        DeskRefusal
            The job is not held.
        """
        with transaction(self.factory) as session:
            job = self._held(session, job_id)
            job.held = False
            job.status = PrintJobStatus.FAILED.value
            job.error = "discarded at the front desk"
            if job.archive_status == ArchiveStatus.PENDING.value:
                job.archive_status = ArchiveStatus.FAILED.value
                job.archive_error = "discarded at the front desk"
            audit(session, actor, "discard", "print_job", job_id, {"printer": job.printer_ae_title})
        return job

    def send_again(self, job_id: int, actor: str) -> PrintJob:
        """Queue a printed job for its archive once more (audited).

        Raises
        ------
        NotFound
            No such job.
        DeskRefusal
            The job is not printed, or its printer has no archive.
        """
        with transaction(self.factory) as session:
            job = session.get(PrintJob, job_id, with_for_update={"of": PrintJob})
            if job is None:
                raise NotFound(job_id)
            destination = self.printers.get(job.printer_ae_title) or job.archive_to
            if not destination:
                raise DeskRefusal(f"the printer of job {job_id} does not archive")
            if job.status != PrintJobStatus.DONE.value:
                raise DeskRefusal(f"print job {job_id} is not printed ({job.status})")
            before = job.archive_status
            job.archive_to = destination
            job.archive_status = ArchiveStatus.PENDING.value
            job.archive_error = ""
            job.archive_attempts = 0
            job.archive_next_at = None
            job.archive_pending_since = utcnow()
            audit(
                session,
                actor,
                "archive-again",
                "print_job",
                job_id,
                {"archive_status": [before, job.archive_status]},
            )
        self._wake_up()
        return job


def get_job(factory: sessionmaker[Session], job_id: int) -> PrintJob | None:
    """The print job with ``job_id``, or ``None``."""
    with factory() as session:
        return session.get(PrintJob, job_id)


def pdf_of(job: PrintJob | None) -> Path | None:
    """The PDF a print job produced, when it has one on disk."""
    if job is None or not job.pdf_path:
        return None
    path = Path(job.pdf_path)
    return path if path.is_file() else None
