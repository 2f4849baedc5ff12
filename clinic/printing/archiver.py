"""The archive queue: printed jobs go to the printer's PACS, durably and off the print path.

A job whose printer archives is marked ``pending`` in the same transaction that spools
it. This worker, a thread of its own (a PACS that is down never delays printing or the
modality), sends a pending job once it is printed, linked to a booking and its PDF is
filed under that link; it records ``sent`` (and what it sent) or, while the PACS cannot
be reached, tries again later with a growing pause. Everything it needs is in the store
and the spool, so a restarted service, however it stopped, carries on where it was.

A job moved to another booking after it was sent is sent again under the new booking
(new UIDs): a correction. The earlier instances stay in the PACS until someone removes
them there; the audit log and ``print_archive_sends`` name them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from clinic.config import ArchiveTarget, parse_archive
from clinic.domain.audit import audit
from clinic.domain.print_links import pdf_stem
from clinic.printing.archive import ArchiveError, Filing, JobInfo, build_instances
from clinic.printing.archive import store_instances as _store_instances
from clinic.printing.outputs import pdf_target
from clinic.printing.profiles import PrinterProfile
from clinic.printing.render import FilmSpec
from clinic.printing.spool import JOB_FILE, read_films
from clinic.store.db import transaction
from clinic.store.models import (
    ArchiveStatus,
    PrintArchiveSend,
    PrintJob,
    PrintJobStatus,
    Procedure,
    utcnow,
)

log = logging.getLogger(__name__)

#: The worker looks at the store this often (links and "send again" come from other doors).
POLL_S = 1.0
#: First pause after a failed attempt; it doubles up to the profile's maximum.
FIRST_RETRY_S = 2.0
#: A job the PACS has not taken for this long is marked failed (send again to retry).
GIVE_UP = dt.timedelta(hours=24)
ACTOR = "archive"
#: A job whose PDF still names an earlier link has its refile asked for again after this.
REFILE_AGAIN_S = 30.0
#: How often the worker looks for sent jobs whose link changed (a safety net).
SWEEP_S = 60.0


def filing_of(proc: Procedure) -> Filing:
    """The patient and study a booking files instances under."""
    start = proc.scheduled_start
    return Filing(
        patient_id=proc.patient.patient_id,
        patient_name=proc.patient.name,
        birth_date=proc.patient.birth_date,
        sex=proc.patient.sex,
        accession_number=proc.accession_number,
        study_instance_uid=proc.study_instance_uid,
        study_id=proc.requested_procedure_id,
        study_date=start.date(),
        study_time=start.time(),
        referring_physician=proc.referring_physician,
        study_description=proc.procedure_description,
    )


class Archiver:
    """The archive worker thread.

    Parameters
    ----------
    factory : sessionmaker
        The store.
    spool_root : Path
        The print spool (a job's films, for Secondary Capture images).
    profiles : dict
        AE title -> printer profile (archive destination, forms, retry pause).
    uid_root : str
        The clinic's UID root.
    refile : callable, optional
        Asks the print spool to file a job's PDF again under its current link; used when
        a job waits for that (its link changed and the request was lost with a restart).
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        spool_root: Path,
        profiles: dict[str, PrinterProfile],
        uid_root: str,
        refile: Callable[[int], object] | None = None,
    ) -> None:
        self.factory = factory
        self._refile = refile
        # Job id -> when its refile was last asked for (monotonic seconds).
        self._refiles_asked: dict[int, float] = {}
        self._last_sweep: float | None = None
        self.spool_root = spool_root
        self.profiles = profiles
        self.uid_root = uid_root
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.store_instances = _store_instances

    def wake(self, *_args: object) -> bool:
        """Look at the queue now (after a link, a release or "send again")."""
        self._wake.set()
        return True

    def start(self) -> None:
        """Start the worker; jobs left pending by an earlier run are sent as they fall due."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="print-archive", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the send under way, if any."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("print archive worker error")
                busy = False
            if not busy:
                self._wake.wait(POLL_S)
                self._wake.clear()

    # -- the queue ------------------------------------------------------------------

    def mark_corrections(self) -> list[int]:
        """Queue a correction for every sent job whose booking link has changed since.

        Returns the ids of the jobs queued again.
        """
        moved = or_(
            PrintJob.procedure_id.is_(None),
            PrintJob.archive_procedure_id.is_(None),
            PrintJob.procedure_id != PrintJob.archive_procedure_id,
        )
        with transaction(self.factory) as session:
            jobs = list(
                session.scalars(
                    select(PrintJob)
                    .where(PrintJob.archive_status == ArchiveStatus.SENT.value, moved)
                    .with_for_update(skip_locked=True, of=PrintJob)
                )
            )
            now = utcnow()
            for job in jobs:
                job.archive_status = ArchiveStatus.PENDING.value
                job.archive_error = ""
                job.archive_attempts = 0
                job.archive_next_at = None
                job.archive_pending_since = now
            return [job.id for job in jobs]

    def _candidates(self) -> list[int]:
        now = utcnow()
        with self.factory() as session:
            return list(
                session.scalars(
                    select(PrintJob.id)
                    .where(
                        PrintJob.archive_status == ArchiveStatus.PENDING.value,
                        PrintJob.status == PrintJobStatus.DONE.value,
                        PrintJob.held.is_(False),
                        PrintJob.procedure_id.is_not(None),
                        or_(PrintJob.archive_next_at.is_(None), PrintJob.archive_next_at <= now),
                    )
                    .order_by(PrintJob.id)
                    .limit(50)
                )
            )

    def _filed_under_link(self, job: PrintJob) -> bool:
        """Whether the job's PDF carries its current link (a refile may still be under way)."""
        profile = self.profiles.get(job.printer_ae_title)
        if profile is None or not job.pdf_path:
            return True
        return Path(job.pdf_path) == pdf_target(profile, job.id, pdf_stem(job.id, job.procedure))

    def run_once(self) -> bool:
        """Send the next due job, if any; returns whether one was.

        Corrections are queued by the link change itself; every :data:`SWEEP_S` seconds
        (and at start) a sweep also finds any sent job whose link differs from the one it
        was sent under.
        """
        now = time.monotonic()
        if self._last_sweep is None or now - self._last_sweep >= SWEEP_S:
            self._last_sweep = now
            self.mark_corrections()
        for job_id in self._candidates():
            with self.factory() as session, session.begin():
                job = session.scalar(
                    select(PrintJob)
                    .where(
                        PrintJob.id == job_id,
                        PrintJob.archive_status == ArchiveStatus.PENDING.value,
                    )
                    .with_for_update(skip_locked=True, of=PrintJob)
                )
                if job is None or job.procedure is None:
                    continue
                if not self._filed_under_link(job):
                    self._ask_refile(job.id)
                    continue
                self._refiles_asked.pop(job.id, None)
                self._send(session, job, job.procedure)
            return True
        return False

    def _ask_refile(self, job_id: int) -> None:
        """Ask the spool to refile a job's PDF, at most every :data:`REFILE_AGAIN_S` seconds."""
        now = time.monotonic()
        last = self._refiles_asked.get(job_id)
        if self._refile is None or (last is not None and now - last < REFILE_AGAIN_S):
            return
        self._refiles_asked[job_id] = now
        self._refile(job_id)

    def _target(self, job: PrintJob) -> ArchiveTarget | None:
        profile = self.profiles.get(job.printer_ae_title)
        if profile is not None and profile.archive is not None:
            return profile.archive
        try:
            return parse_archive(job.archive_to, "archive")
        except Exception:
            return None

    def _films(self, job: PrintJob) -> list[FilmSpec]:
        folder = self.spool_root / job.spool_dir
        if not (folder / JOB_FILE).is_file():
            return []
        return read_films(folder)

    def _send(self, session: Session, job: PrintJob, proc: Procedure) -> None:
        """Send claimed ``job`` under ``proc`` and record the outcome in the claim's transaction."""
        profile = self.profiles.get(job.printer_ae_title)
        target = self._target(job)
        previous = session.scalars(
            select(PrintArchiveSend)
            .where(PrintArchiveSend.job_id == job.id)
            .order_by(PrintArchiveSend.id.desc())
        ).first()
        generation = session.scalar(
            select(func.count())
            .select_from(PrintArchiveSend)
            .where(PrintArchiveSend.job_id == job.id)
        )
        info = JobInfo(
            job_uid=job.sop_instance_uid,
            job_id=job.id,
            calling_ae_title=job.calling_ae_title,
            printer_ae_title=job.printer_ae_title,
            printer_name=profile.name if profile else job.printer_ae_title,
            printed_at=_local(job.printed_at or job.created_at),
            generation=int(generation or 0),
        )
        forms = profile.archive_as if profile else ("pdf",)
        try:
            if target is None:
                raise ArchiveError("the printer no longer names an archive", transient=False)
            films = self._films(job) if "sc" in forms else []
            datasets, series = build_instances(
                filing_of(proc),
                info,
                self.uid_root,
                forms,
                Path(job.pdf_path) if job.pdf_path else None,
                films,
                profile.max_density if profile else 300,
            )
            self.store_instances(target, datasets, job.printer_ae_title)
        except ArchiveError as exc:
            self._failed(job, str(exc), exc.transient, profile)
            return
        except Exception as exc:  # a bug or an unreadable file: recorded, never a crash
            # Only the type in the log: a message may name the PDF (patient ID in its name).
            log.error("print job %d not archived: %s", job.id, type(exc).__name__)
            self._failed(job, f"{type(exc).__name__}: {exc}"[:1000], False, profile, quiet=True)
            return
        now = utcnow()
        uids = [str(ds.SOPInstanceUID) for ds in datasets]
        series_uid = series.get("pdf") or series.get("sc", "")
        sent = PrintArchiveSend(
            job_id=job.id,
            procedure_id=proc.id,
            destination=str(target),
            study_instance_uid=proc.study_instance_uid,
            series_instance_uid=series_uid,
            sop_instance_uids=json.dumps(uids),
            corrects_id=previous.id if previous is not None else None,
            sent_at=now,
        )
        session.add(sent)
        job.archive_status = ArchiveStatus.SENT.value
        job.archive_error = ""
        job.archive_attempts += 1
        job.archive_next_at = None
        job.archive_sent_at = now
        job.archive_procedure_id = proc.id
        detail: dict[str, object] = {
            "destination": str(target),
            "procedure": proc.id,
            "series": sorted(series.values()),
            "instances": uids,
        }
        if previous is not None:
            # The PACS still holds these under the earlier booking: README, "Archive".
            detail["replaces"] = json.loads(previous.sop_instance_uids)
            detail["replaces_procedure"] = previous.procedure_id
        audit(session, ACTOR, "correct" if previous else "archive", "print_job", job.id, detail)
        session.flush()
        log.info(
            "print job %d archived to %s: %d instance(s)%s",
            job.id,
            target,
            len(uids),
            " (a correction)" if previous else "",
        )

    def _failed(
        self,
        job: PrintJob,
        reason: str,
        transient: bool,
        profile: PrinterProfile | None,
        quiet: bool = False,
    ) -> None:
        now = utcnow()
        job.archive_attempts += 1
        since = job.archive_pending_since or now
        if transient and now - since < GIVE_UP:
            limit = profile.archive_retry_max_seconds if profile else 300.0
            pause = min(FIRST_RETRY_S * 2 ** (job.archive_attempts - 1), limit)
            job.archive_next_at = now + dt.timedelta(seconds=pause)
            job.archive_error = reason[:1000]
            log.warning(
                "print job %d not archived yet (attempt %d, next in %.0f s): %s",
                job.id,
                job.archive_attempts,
                pause,
                reason,
            )
        else:
            job.archive_status = ArchiveStatus.FAILED.value
            job.archive_next_at = None
            job.archive_error = reason[:1000]
            if not quiet:
                log.error("print job %d not archived: %s", job.id, reason)


def _local(utc: dt.datetime) -> dt.datetime:
    """A stored UTC time as the clinic's local time (naive)."""
    return utc.replace(tzinfo=dt.UTC).astimezone().replace(tzinfo=None)
