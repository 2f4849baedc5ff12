"""Retention: old print jobs of finished bookings go with their files; the audit log stays."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from clinic.cli import main
from clinic.config import Settings
from clinic.domain.bookings import Scheduler
from clinic.server import ClinicServer
from clinic.store.models import AuditEntry, PrintJob, utcnow
from tests.support.waiting import wait_for

OLD = dt.timedelta(days=45)


def _job(
    scheduler: Scheduler,
    data_dir: Path,
    name: str,
    age: dt.timedelta,
    status: str = "done",
    procedure_id: int | None = None,
) -> int:
    """A print job row with its PDF and spool folder on disk; returns its id."""
    spool = data_dir / "spool" / name
    spool.mkdir(parents=True)
    (spool / "job.json").write_text("{}", encoding="utf-8")
    pdf = data_dir / "pdf" / f"{name}.pdf"
    pdf.parent.mkdir(parents=True, exist_ok=True)
    pdf.write_bytes(b"%PDF-1.4\n")
    created = utcnow() - age
    with scheduler.session_factory() as session, session.begin():
        job = PrintJob(
            sop_instance_uid=f"1.2.3.{name}",
            status=status,
            calling_ae_title="XRAY1",
            printer_ae_title="PDFPRINT",
            spool_dir=name,
            pdf_path=str(pdf.resolve()),
            created_at=created,
            procedure_id=procedure_id,
        )
        session.add(job)
        session.flush()
        return job.id


def _booking(scheduler: Scheduler, n: int, status: str | None = None) -> int:
    proc = scheduler.book(
        {
            "patient_id": f"R{n}",
            "patient_name": f"RETAIN^P{n}",
            "modality": "CR",
            "station_ae_title": "XRAY1",
            "scheduled_start": "2026-09-01T09:00",
        },
        actor="test",
    )
    if status == "CANCELLED":
        scheduler.cancel(proc.id, "no show", actor="test")
    return proc.id


@pytest.fixture
def jobs(scheduler: Scheduler, settings: Settings) -> dict[str, int]:
    data = settings.data_dir
    finished = _booking(scheduler, 1, "CANCELLED")
    active = _booking(scheduler, 2)
    return {
        "old_unlinked": _job(scheduler, data, "a" * 24, OLD),
        "old_failed": _job(scheduler, data, "b" * 24, OLD, status="failed"),
        "old_finished": _job(scheduler, data, "c" * 24, OLD, procedure_id=finished),
        "old_active_booking": _job(scheduler, data, "d" * 24, OLD, procedure_id=active),
        "old_queued": _job(scheduler, data, "e" * 24, OLD, status="queued"),
        "recent": _job(scheduler, data, "f" * 24, dt.timedelta(days=3)),
    }


def _remaining(scheduler: Scheduler) -> set[int]:
    with scheduler.session_factory() as session:
        return set(session.scalars(select(PrintJob.id)))


def _audit_count(scheduler: Scheduler) -> int:
    with scheduler.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _check_removed(scheduler: Scheduler, settings: Settings, jobs: dict[str, int]) -> None:
    gone = {"old_unlinked", "old_failed", "old_finished"}
    assert _remaining(scheduler) == {v for k, v in jobs.items() if k not in gone}
    spool = settings.data_dir / "spool"
    pdfs = settings.data_dir / "pdf"
    for name, letter in zip(jobs, "abcdef", strict=True):
        kept = name not in gone
        assert (spool / (letter * 24)).exists() == kept, name
        assert (pdfs / f"{letter * 24}.pdf").exists() == kept, name


def test_retention_run_removes_old_jobs_and_files_and_keeps_the_audit_log(
    scheduler: Scheduler, settings: Settings, jobs: dict[str, int], tmp_path: Path
) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text("[retention]\nprint_job_days = 30\n", encoding="utf-8")
    audit_before = _audit_count(scheduler)
    env = {"CLINIC_DATA_DIR": str(settings.data_dir), "CLINIC_CONFIG": str(config)}
    result = CliRunner().invoke(main, ["retention", "run", "--json"], env=env)
    assert result.exit_code == 0, result.output
    removed = json.loads(result.output)
    expected = sorted(jobs[k] for k in ("old_unlinked", "old_failed", "old_finished"))
    assert removed == {"jobs": expected, "pdfs": 3, "spool_folders": 3}
    _check_removed(scheduler, settings, jobs)

    # Nothing of the audit log went; the run added its own entry, with job numbers only.
    assert _audit_count(scheduler) == audit_before + 1
    with scheduler.session_factory() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None and (entry.action, entry.entity) == ("purge", "print_job")
    assert json.loads(entry.detail) == {"jobs": expected, "older_than_days": 30}

    # A second run finds nothing more.
    again = CliRunner().invoke(main, ["retention", "run", "--days", "30"], env=env)
    assert again.exit_code == 0 and "removed 0 print job(s)" in again.output
    assert _audit_count(scheduler) == audit_before + 1


def test_retention_is_off_unless_configured(
    scheduler: Scheduler, settings: Settings, jobs: dict[str, int], tmp_path: Path
) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text("", encoding="utf-8")
    env = {"CLINIC_DATA_DIR": str(settings.data_dir), "CLINIC_CONFIG": str(config)}
    result = CliRunner().invoke(main, ["retention", "run"], env=env)
    assert result.exit_code == 0 and "retention is off" in result.output
    assert _remaining(scheduler) == set(jobs.values())


def test_the_service_applies_retention_itself(
    scheduler: Scheduler, settings: Settings, jobs: dict[str, int]
) -> None:
    old = {jobs[k] for k in ("old_unlinked", "old_failed", "old_finished")}
    audit_before = _audit_count(scheduler)
    server = ClinicServer(dataclasses.replace(settings, retention_days=30))
    server.start()
    try:
        wait_for(lambda: not old & _remaining(scheduler), timeout=30, what="retention run")
    finally:
        server.stop()
    # (The old queued job is the spool's to print, and may be gone by now as well.)
    assert {jobs["recent"], jobs["old_active_booking"]} <= _remaining(scheduler)
    assert not (settings.data_dir / "pdf" / f"{'a' * 24}.pdf").exists()
    assert (settings.data_dir / "pdf" / f"{'f' * 24}.pdf").exists()
    assert _audit_count(scheduler) > audit_before
