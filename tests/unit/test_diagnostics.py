"""The worklist diagnostics writer: records gathered off the answering thread, then stored."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from clinic.domain.bookings import Scheduler
from clinic.store.models import WorklistQueryLog
from clinic.worklist import diagnostics
from clinic.worklist.diagnostics import QueryLogWriter, QueryRecord


def record(calling: str, matches: int) -> QueryRecord:
    return QueryRecord(
        calling_ae_title=calling,
        peer="127.0.0.1",
        at=dt.datetime(2026, 11, 26, 9, 30),
        matching_keys=("PatientName",),
        return_keys=("PatientName", "AccessionNumber"),
        matches=matches,
        status=0,
        character_set="ISO_IR 192",
    )


def stored(scheduler: Scheduler) -> dict[str, int]:
    with scheduler.session_factory() as session:
        return {row.calling_ae_title: row.matches for row in session.query(WorklistQueryLog)}


def test_flush_stores_at_once_not_after_the_batch_window(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagnostics, "BATCH_WINDOW_S", 30.0)
    writer = QueryLogWriter(scheduler.session_factory)
    try:
        writer.record(record("XRAY1", 1))
        writer.record(record("XRAY1", 2))  # the latest query of an AE title is kept
        writer.record(record("US1", 3))
        began = time.monotonic()
        writer.flush()
        assert time.monotonic() - began < 5.0
        assert stored(scheduler) == {"XRAY1": 2, "US1": 3}
    finally:
        writer.close()


def test_close_stores_what_is_queued(scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnostics, "BATCH_WINDOW_S", 30.0)
    writer = QueryLogWriter(scheduler.session_factory)
    writer.record(record("PX1", 4))
    began = time.monotonic()
    writer.close()
    assert time.monotonic() - began < 5.0
    assert stored(scheduler) == {"PX1": 4}
