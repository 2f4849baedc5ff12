"""Retention: old print jobs, their PDFs and spooled pixels are removed after N days.

A print job is old when it was created more than ``days`` days ago, is no longer queued,
and its booking (if it has one) is finished: completed, discontinued or cancelled. Its
row goes, then its PDF and its spool folder. The audit log is kept whole; each run that
removed something adds one entry naming the job numbers (never patient data).

``clinic serve`` runs this every :data:`INTERVAL_S` seconds when ``[retention]
print_job_days`` is above zero; ``clinic retention run`` runs it once.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.audit import audit
from clinic.store.db import transaction
from clinic.store.models import (
    ACTIVE_STATUSES,
    ArchiveStatus,
    PrintJob,
    PrintJobStatus,
    Procedure,
    utcnow,
)

log = logging.getLogger(__name__)

#: How often the service applies retention.
INTERVAL_S = 6 * 3600.0


@dataclass
class RetentionResult:
    """What one run removed."""

    jobs: list[int] = field(default_factory=list)
    pdfs: int = 0
    spool_folders: int = 0


def apply_retention(
    factory: sessionmaker[Session],
    data_dir: Path,
    days: int,
    *,
    now: dt.datetime | None = None,
    actor: str = "retention",
) -> RetentionResult:
    """Remove the print jobs older than ``days`` days whose booking is finished.

    Parameters
    ----------
    factory : sessionmaker
        The store.
    data_dir : Path
        The service's data folder (``spool/`` under it holds the jobs' pixels).
    days : int
        Age limit in days; zero or less removes nothing.
    now : datetime, optional
        The current UTC time (naive), for tests.
    actor : str
        Name in the audit entry.

    Returns
    -------
    RetentionResult
        The removed jobs' numbers and how many files and folders went with them.
    """
    result = RetentionResult()
    if days <= 0:
        return result
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    finished = select(Procedure.id).where(Procedure.status.not_in(ACTIVE_STATUSES))
    old = (
        PrintJob.created_at < cutoff,
        PrintJob.status != PrintJobStatus.QUEUED.value,
        # A job still on its way to the PACS stays until it got there (or failed).
        PrintJob.archive_status != ArchiveStatus.PENDING.value,
        or_(PrintJob.procedure_id.is_(None), PrintJob.procedure_id.in_(finished)),
    )
    files: list[tuple[str, str]] = []
    with transaction(factory) as session:
        # Rows first, files after the commit: a crash in between leaves files that no
        # job names (harmless), never a job whose PDF is gone. The status check in the
        # DELETE itself keeps a job that was queued again meanwhile.
        rows = session.execute(
            delete(PrintJob)
            .where(*old)
            .returning(PrintJob.id, PrintJob.pdf_path, PrintJob.spool_dir)
        ).all()
        for job_id, pdf_path, spool_dir in rows:
            result.jobs.append(int(job_id))
            files.append((pdf_path, spool_dir))
        if rows:
            result.jobs.sort()
            audit(
                session,
                actor,
                "purge",
                "print_job",
                f"{result.jobs[0]}..{result.jobs[-1]}",
                {"jobs": result.jobs, "older_than_days": days},
            )
    spool = (data_dir / "spool").resolve()
    for pdf_path, spool_dir in files:
        if pdf_path:
            pdf = Path(pdf_path)
            if pdf.suffix.lower() == ".pdf" and pdf.is_file():
                pdf.unlink(missing_ok=True)
                result.pdfs += 1
        folder = spool / spool_dir
        if spool_dir and folder.parent == spool and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            result.spool_folders += 1
    if result.jobs:
        log.info(
            "retention removed %d print job(s) older than %d days (%d PDF(s), %d spool folder(s))",
            len(result.jobs),
            days,
            result.pdfs,
            result.spool_folders,
        )
    return result


class RetentionWorker:
    """Applies retention now and then every ``interval`` seconds, in a thread.

    Parameters
    ----------
    factory : sessionmaker
        The store.
    data_dir : Path
        The service's data folder.
    days : int
        Age limit in days; zero disables the worker.
    interval : float
        Seconds between runs.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        data_dir: Path,
        days: int,
        interval: float = INTERVAL_S,
    ) -> None:
        self.factory = factory
        self.data_dir = data_dir
        self.days = days
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (nothing happens when retention is off)."""
        if self.days <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                apply_retention(self.factory, self.data_dir, self.days)
            except Exception:
                log.exception("retention run failed")
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after the run in progress, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
