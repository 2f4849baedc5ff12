"""The durable print spool: jobs in the store, pixels on disk, one worker that prints.

:meth:`Spool.submit` writes every film's pixels and description under a server-made
folder name, syncs them, and commits the job row before it returns; only then does
the N-ACTION answer success. The worker renders queued jobs to PDF and dispatches
them; a job left queued by a crash or restart is simply picked up again.

Several services may share one PostgreSQL database and data folder (scale-out): each
worker claims a job with ``SELECT ... FOR UPDATE SKIP LOCKED`` and keeps that row lock
until the same transaction records the outcome, so every job is rendered once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.audit import audit
from clinic.domain.identifiers import new_study_instance_uid
from clinic.domain.print_links import link_new_job, pdf_stem, readable_name
from clinic.printing.outputs import pdf_target, send_to_cups
from clinic.printing.profiles import PrinterProfile
from clinic.printing.render import FilmSpec, ImageSpec, PageOptions, render_pdf
from clinic.printing.session import PrintRequest
from clinic.store.db import transaction
from clinic.store.models import ArchiveStatus, PrintJob, PrintJobStatus, utcnow

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
#: The worker also looks at the store this often, to see reprints queued by the CLI.
POLL_S = 1.0
#: With a shared data folder (PostgreSQL), a spool folder younger than this may belong to
#: a job another service is committing right now, so it is not taken for an orphan yet.
SHARED_ORPHAN_AGE_S = 600.0


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_films(folder: Path, films: list[FilmSpec], meta: dict[str, Any]) -> None:
    """Write ``films`` into ``folder``: one ``.npy`` per image and ``job.json``, all synced."""
    folder.mkdir(parents=True)
    described = []
    for f, film in enumerate(films, start=1):
        images = []
        for i, image in enumerate(film.images, start=1):
            name = f"film{f:03d}-image{i:03d}.npy"
            with open(folder / name, "wb") as handle:
                np.save(handle, image.pixels, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            images.append({**image.to_json(), "file": name})
        described.append({**film.to_json(), "images": images})
    _fsync_write(folder / JOB_FILE, json.dumps({**meta, "films": described}).encode())
    _fsync_dir(folder)
    _fsync_dir(folder.parent)


def read_films(folder: Path) -> list[FilmSpec]:
    """Read the films written by :func:`write_films`."""
    data = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    films = []
    for film in data["films"]:
        images = []
        for image in film.pop("images"):
            pixels = np.load(folder / image.pop("file"), allow_pickle=False)
            images.append(ImageSpec.from_json(image, pixels))
        films.append(FilmSpec.from_json(film, images))
    return films


def requeue(factory: sessionmaker[Session], job_id: int, actor: str) -> PrintJob | None:
    """Queue job ``job_id`` again (reprint or retry); None when there is no such job.

    The reprint is audited with ``actor`` in the same transaction that queues it.
    """
    with transaction(factory) as session:
        job = session.get(PrintJob, job_id)
        if job is None:
            return None
        job.status = PrintJobStatus.QUEUED.value
        job.error = ""
        audit(session, actor, "reprint", "print_job", job_id, {})
        return job


class Spool:
    """The queue and its worker thread.

    Parameters
    ----------
    factory : sessionmaker
        The store.
    data_dir : Path
        ``spool/`` under it holds the jobs' pixels.
    profiles : dict
        AE title -> printer profile.
    uid_root : str
        Root of Print Job SOP Instance UIDs.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        data_dir: Path,
        profiles: dict[str, PrinterProfile],
        uid_root: str = "",
    ) -> None:
        self.factory = factory
        self.root = (data_dir / "spool").resolve()
        self.profiles = profiles
        self.uid_root = uid_root
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Jobs whose patient link the front desk changed: their PDFs are filed again.
        self._refiles: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Seconds until the soonest held job falls due (None: no held job), from the last look.
        self._next_due: float | None = None

    def submit(
        self, request: PrintRequest, profile: PrinterProfile, calling_ae_title: str
    ) -> PrintJob:
        """Make ``request`` durable and queue it; returns the committed job.

        Raises
        ------
        OSError
            When the pixels cannot be written (the caller answers C601/C602).
        """
        folder = self.root / secrets.token_hex(12)
        uid = new_study_instance_uid(self.uid_root)
        try:
            write_films(folder, request.films, {"printer": profile.ae_title})
            with transaction(self.factory) as session:
                job = PrintJob(
                    sop_instance_uid=uid,
                    status=PrintJobStatus.QUEUED.value,
                    calling_ae_title=calling_ae_title[:16],
                    printer_ae_title=profile.ae_title,
                    films=len(request.films),
                    copies=request.copies,
                    priority=request.priority,
                    spool_dir=folder.name,
                    pdf_path="",
                    error="",
                    held=profile.hold,
                )
                if profile.archive is not None:
                    # Committed with the job: a crash from here on cannot lose the send.
                    job.archive_status = ArchiveStatus.PENDING.value
                    job.archive_to = str(profile.archive)
                    job.archive_pending_since = utcnow()
                session.add(job)
                session.flush()
                # Linked now, while the station's exam is the one in progress.
                proc = link_new_job(session, job, dt.datetime.now())
                job.pdf_path = str(pdf_target(profile, job.id, pdf_stem(job.id, proc)))
        except Exception:
            _remove_tree(folder)
            raise
        log.info(
            "print job %d queued: %d film(s) from %s on %s",
            job.id,
            job.films,
            job.calling_ae_title,
            job.printer_ae_title,
        )
        self._wake.set()
        return job

    def wake(self) -> None:
        """Look at the queue now (a held job was released, a job queued again)."""
        self._wake.set()

    def start(self) -> None:
        """Start the worker thread (it first resumes jobs a previous run left queued)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_orphans()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="print-spool", daemon=True)
        self._thread.start()

    def _remove_orphans(self) -> None:
        # A crash between writing the pixels and committing the job leaves a folder that no
        # job names; the modality never heard success for it, so it is safe to drop.
        with self.factory() as session:
            known = set(session.scalars(select(PrintJob.spool_dir)))
            shared = session.get_bind().dialect.name != "sqlite"
        young = time.time() - SHARED_ORPHAN_AGE_S if shared else float("inf")
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.name not in known and folder.stat().st_mtime < young:
                log.warning("removing spool folder %s of an unacknowledged job", folder.name)
                _remove_tree(folder)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker after the job it is rendering, if any."""
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
                log.exception("print spool worker error")
                busy = False
            if not busy:
                # Asleep until there is work: a new job, a refile, a stop, the soonest held
                # job falling due, or the next look for reprints queued by another process.
                nap = POLL_S if self._next_due is None else min(POLL_S, self._next_due)
                self._wake.wait(max(nap, 0.0))
                self._wake.clear()

    def _due_jobs(self) -> list[int]:
        """IDs of the queued jobs whose hold has passed, oldest first."""
        now = utcnow()
        due = []
        next_due: float | None = None
        with self.factory() as session:
            queued = session.scalars(
                select(PrintJob)
                .where(PrintJob.status == PrintJobStatus.QUEUED.value, PrintJob.held.is_(False))
                .order_by(PrintJob.id)
            )
            for job in queued:
                profile = self.profiles.get(job.printer_ae_title)
                # Only a job's first attempt is held; a reprint or retry goes at once.
                hold = profile.hold_seconds if profile and job.attempts == 0 else 0.0
                due_at = job.created_at + dt.timedelta(seconds=hold)
                if due_at <= now:
                    due.append(job.id)
                else:
                    wait = (due_at - now).total_seconds()
                    next_due = wait if next_due is None else min(next_due, wait)
        self._next_due = next_due
        return due

    @contextmanager
    def _claim(self) -> Iterator[tuple[Session, PrintJob] | None]:
        """The next due job, locked for this worker until the block ends and commits.

        ``FOR UPDATE SKIP LOCKED`` passes over a job that another service's worker holds
        (PostgreSQL); the outcome is written in the same transaction, so the lock lasts
        until the job is done or failed. A worker that dies mid-job loses its connection
        and with it the lock: the job is still queued and another worker takes it.
        SQLite ignores the clause: one service, one worker.
        """
        with self.factory() as session, session.begin():
            for job_id in self._due_jobs():
                job = session.scalar(
                    select(PrintJob)
                    .where(
                        PrintJob.id == job_id,
                        PrintJob.status == PrintJobStatus.QUEUED.value,
                        PrintJob.held.is_(False),
                    )
                    .with_for_update(skip_locked=True, of=PrintJob)
                )
                if job is not None:
                    yield session, job
                    return
            yield None

    def refile(self, job_id: int) -> bool:
        """Ask the worker to file a printed job's PDF again under its current patient link.

        The worker renders it once more, with the new name and metadata, and removes
        the old file; nothing is sent to a printer. Returns ``True`` (the request is
        taken; an unknown or still queued job is simply left alone).
        """
        self._refiles.put(job_id)
        self._wake.set()
        return True

    def run_refile(self, job_id: int) -> None:
        """Render a printed job's PDF again under its current link, without dispatching it."""
        with self.factory() as session:
            job = session.get(PrintJob, job_id)
        if job is None or job.status != PrintJobStatus.DONE.value:
            return  # a queued job is named by its link when it prints
        profile = self.profiles.get(job.printer_ae_title)
        if profile is None:
            return
        pdf = pdf_target(profile, job.id, pdf_stem(job.id, job.procedure))
        old = Path(job.pdf_path) if job.pdf_path else None
        if old == pdf:
            return
        if (self.root / job.spool_dir / JOB_FILE).is_file():
            pages, pdf = self._render(job, profile, pdf)
        elif old is not None and old.is_file():
            # The pixels are gone: keep the page, file it under the new name at least.
            old.replace(pdf)
            pages = job.pages
        else:
            return
        if old is not None and old != pdf and old.is_file():
            old.unlink()
        with transaction(self.factory) as session:
            row = session.get(PrintJob, job_id)
            if row is not None:
                row.pdf_path = str(pdf)
                row.pages = pages
        log.info("print job %d filed again under its corrected patient link", job_id)

    def run_once(self) -> bool:
        """Print the next due job, if any; returns whether one was processed.

        Refile requests (:meth:`refile`) are served first.
        """
        try:
            refile = self._refiles.get_nowait()
        except queue.Empty:
            pass
        else:
            try:
                self.run_refile(refile)
            except Exception:
                log.exception("print job %d could not be filed again", refile)
            return True
        if self.preview_held():
            return True
        with self._claim() as claimed:
            if claimed is None:
                return False
            session, job = claimed
            try:
                pages, pdf = self._print(job)
            except Exception as exc:  # any failure is recorded with its reason; reprint retries
                reason = f"{type(exc).__name__}: {exc}"[:1000]
                log.error("print job %d failed: %s", job.id, reason)
                self._finish(session, job, PrintJobStatus.FAILED, error=reason)
            else:
                # The folder only: a linked job's file name carries the patient ID.
                log.info("print job %d printed: %d page(s) into %s", job.id, pages, pdf.parent)
                self._finish(session, job, PrintJobStatus.DONE, pages=pages, pdf=pdf)
        return True

    def preview_held(self) -> bool:
        """Render the PDF of one held job that has none yet, for the front desk's preview.

        Nothing is sent to a printer; the job stays held. Returns whether one was rendered.
        """
        with self.factory() as session:
            job = session.scalars(
                select(PrintJob)
                .where(
                    PrintJob.status == PrintJobStatus.QUEUED.value,
                    PrintJob.held.is_(True),
                    PrintJob.pages == 0,
                    PrintJob.error == "",
                )
                .order_by(PrintJob.id)
                .limit(1)
            ).first()
        if job is None:
            return False
        profile = self.profiles.get(job.printer_ae_title)
        try:
            if profile is None:
                raise RuntimeError(f"printer {job.printer_ae_title} is no longer configured")
            pdf = pdf_target(profile, job.id, pdf_stem(job.id, job.procedure))
            pdf.parent.mkdir(parents=True, exist_ok=True)
            pages, pdf = self._render(job, profile, pdf)
        except Exception as exc:
            log.error("held print job %d cannot be previewed: %s", job.id, type(exc).__name__)
            with transaction(self.factory) as session:
                row = session.get(PrintJob, job.id)
                if row is not None:
                    row.error = f"preview: {type(exc).__name__}"
            return True
        with transaction(self.factory) as session:
            row = session.get(PrintJob, job.id)
            if row is not None and row.held:
                row.pdf_path = str(pdf)
                row.pages = pages
        log.info("held print job %d rendered for its preview", job.id)
        return True

    def _print(self, job: PrintJob) -> tuple[int, Path]:
        profile = self.profiles.get(job.printer_ae_title)
        if profile is None:
            raise RuntimeError(f"printer {job.printer_ae_title} is no longer configured")
        folder = self.root / job.spool_dir
        # The name follows the job's current link (the front desk may have corrected it).
        pdf = pdf_target(profile, job.id, pdf_stem(job.id, job.procedure))
        pdf.parent.mkdir(parents=True, exist_ok=True)
        old_pdf = Path(job.pdf_path) if job.pdf_path else None
        if (folder / JOB_FILE).is_file():
            pages, pdf = self._render(job, profile, pdf)
            if old_pdf is not None and old_pdf != pdf and old_pdf.is_file():
                # A PDF named for a link since corrected must not stay filed under it.
                old_pdf.unlink()
        elif pdf.is_file():
            pages = job.pages  # the pixels are gone but the PDF is here: send it again
        elif old_pdf is not None and old_pdf.is_file():
            pdf, pages = old_pdf, job.pages  # as above, under the name it was printed with
        else:
            raise RuntimeError("neither the spooled images nor the PDF exist any more")
        if profile.cups_queue:
            send_to_cups(profile, pdf, job.copies, f"clinic job {job.id}")
        return pages, pdf

    def _render(self, job: PrintJob, profile: PrinterProfile, pdf: Path) -> tuple[int, Path]:
        """Render a job's spooled films to ``pdf``, with its patient link in the metadata."""
        proc = job.procedure
        films = read_films(self.root / job.spool_dir)
        options = PageOptions(
            max_density=profile.max_density,
            resolution_dpi=profile.resolution_dpi,
            paper=profile.paper,
            fit=profile.fit,
            header=profile.header,
            printer_name=profile.name,
            calling_ae_title=job.calling_ae_title,
            patient_name=readable_name(proc.patient.name) if proc else "",
            patient_id=proc.patient.patient_id if proc else "",
            accession_number=proc.accession_number if proc else "",
        )
        # Stored in UTC; the header shows the clinic's local time.
        local = job.created_at.replace(tzinfo=dt.UTC).astimezone().replace(tzinfo=None)
        return render_pdf(films, pdf, options, now=local), pdf

    @staticmethod
    def _finish(
        session: Session,
        job: PrintJob,
        status: PrintJobStatus,
        pages: int = 0,
        pdf: Path | None = None,
        error: str = "",
    ) -> None:
        """Record the outcome of claimed ``job`` in the claim's transaction."""
        job.status = status.value
        job.attempts += 1
        job.error = error
        if pdf is not None:
            job.pdf_path = str(pdf)
            job.pages = pages
            job.printed_at = utcnow()
        session.flush()

    def job_by_uid(self, uid: str) -> PrintJob | None:
        """The job of a Print Job SOP Instance UID (N-GET Print Job)."""
        with self.factory() as session:
            return session.scalar(select(PrintJob).where(PrintJob.sop_instance_uid == uid))


def _remove_tree(folder: Path) -> None:
    if not folder.exists():
        return
    for child in folder.iterdir():
        child.unlink(missing_ok=True)
    folder.rmdir()
