"""Print jobs as the outside world reads them (CLI, REST API, web pages)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.store.models import PrintJob


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
