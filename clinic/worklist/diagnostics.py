"""Per calling AE title, the last worklist query: when, which keys, how many matches.

Queries are recorded off the answering thread: a small writer thread stores the
latest query of each AE title, so a busy modality never waits on this bookkeeping.
Only attribute keywords are kept, never values (no patient data). At most
``max_ae_titles`` AE titles are kept (those queried most recently), so a peer that
invents a new calling AE title for every query cannot grow the table.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from clinic.store.db import transaction
from clinic.store.models import WorklistQueryLog

log = logging.getLogger(__name__)

#: How long the writer gathers records before it commits them together.
BATCH_WINDOW_S = 0.5
#: Calling AE titles whose last query is kept; past it the least recent are forgotten.
MAX_AE_TITLES = 1000
#: Queued by :meth:`QueryLogWriter.flush` and :meth:`QueryLogWriter.close`: commit what
#: was gathered now, without waiting for the rest of the batch window.
_COMMIT_NOW = "commit now"
_STOP = None


@dataclass(frozen=True)
class QueryRecord:
    """What is kept of one worklist query."""

    calling_ae_title: str
    peer: str
    at: dt.datetime
    matching_keys: tuple[str, ...]
    return_keys: tuple[str, ...]
    matches: int
    status: int
    character_set: str


class QueryLogWriter:
    """Stores :class:`QueryRecord` objects from a background thread.

    Parameters
    ----------
    session_factory : sessionmaker
        The store to write to.
    max_ae_titles : int
        Rows kept at most (one per calling AE title); the least recent go first.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], max_ae_titles: int = MAX_AE_TITLES
    ) -> None:
        self._factory = session_factory
        self._max_rows = max_ae_titles
        self._queue: queue.Queue[QueryRecord | str | None] = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._run, name="mwl-query-log", daemon=True)
        self._thread.start()

    def record(self, rec: QueryRecord) -> None:
        """Queue a record; when the queue is full the record is dropped (diagnostics only)."""
        try:
            self._queue.put_nowait(rec)
        except queue.Full:
            log.warning("worklist query log queue is full; a diagnostic record was dropped")

    def flush(self) -> None:
        """Block until every queued record is stored (at once, not after the batch window)."""
        self._queue.put(_COMMIT_NOW)
        self._queue.join()

    def close(self) -> None:
        """Store what is queued and stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Gather what arrives within a short window: one commit (and one fsync) then
            # serves a busy modality's many queries, instead of one per query.
            deadline = time.monotonic() + BATCH_WINDOW_S
            while isinstance(batch[-1], QueryRecord):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            records = [r for r in batch if isinstance(r, QueryRecord)]
            if records:
                self._store(records)
            for _ in batch:
                self._queue.task_done()
            if _STOP in batch:
                return

    def _store(self, records: list[QueryRecord]) -> None:
        latest: dict[str, QueryRecord] = {}
        for rec in records:
            latest[rec.calling_ae_title] = rec
        try:
            with transaction(self._factory) as session:
                for rec in latest.values():
                    session.merge(
                        WorklistQueryLog(
                            calling_ae_title=rec.calling_ae_title[:16],
                            at=rec.at,
                            peer=rec.peer[:64],
                            matching_keys=",".join(rec.matching_keys),
                            return_keys=",".join(rec.return_keys),
                            matches=rec.matches,
                            status=rec.status,
                            character_set=rec.character_set,
                        )
                    )
                session.flush()
                self._prune(session)
        except Exception:  # diagnostics must never take the service down
            log.exception("could not store worklist query diagnostics")

    def _prune(self, session: Session) -> None:
        """Forget the least recently seen AE titles past ``max_ae_titles``."""
        count = session.scalar(select(func.count()).select_from(WorklistQueryLog)) or 0
        excess = count - self._max_rows
        if excess <= 0:
            return
        oldest = (
            select(WorklistQueryLog.calling_ae_title)
            .order_by(WorklistQueryLog.at, WorklistQueryLog.calling_ae_title)
            .limit(excess)
        )
        session.execute(
            delete(WorklistQueryLog).where(WorklistQueryLog.calling_ae_title.in_(oldest))
        )
