"""Exams nobody performed: bookings still SCHEDULED after their day has passed.

A station that sends no MPPS never finishes its bookings, and a patient who does not
come leaves one behind. Once its day is more than ``past_days`` days back, such a
booking leaves the worklist (:func:`stale_cutoff`, applied by the worklist door); the
front desk sees it as "not done" and either marks it not attended (a cancellation with
that reason, audited) or reschedules it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import and_, func, select

from clinic.domain.bookings import Scheduler
from clinic.domain.errors import TransitionError
from clinic.store.models import Procedure, ProcedureStatus

#: The cancellation reason a booking marked not attended keeps.
NOT_ATTENDED = "Not attended"


def stale_cutoff(past_days: int, today: dt.date | None = None) -> dt.datetime:
    """The start of the oldest day whose still-scheduled bookings the worklist serves.

    Parameters
    ----------
    past_days : int
        How many days before today are still served (``0``: today on).
    today : date, optional
        Today in local time (the clock's by default).

    Returns
    -------
    datetime
        Midnight (local, naive like ``scheduled_start``) of ``today - past_days``.
    """
    day = (today or dt.date.today()) - dt.timedelta(days=past_days)
    return dt.datetime.combine(day, dt.time.min)


class Attendance:
    """Finds the exams that were never done and marks them not attended.

    Parameters
    ----------
    scheduler : Scheduler
        The booking service the cancellations go through (and its store).
    """

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def not_done(self, past_days: int, limit: int = 20) -> tuple[Sequence[Procedure], int]:
        """Bookings still SCHEDULED whose day is off the worklist, most recent first.

        Parameters
        ----------
        past_days : int
            The worklist's ``past_days``: bookings before :func:`stale_cutoff` are listed.
        limit : int
            At most this many are returned (a station without MPPS may leave hundreds).

        Returns
        -------
        tuple
            The most recent ``limit`` bookings and how many there are in all.
        """
        condition = and_(
            Procedure.status == ProcedureStatus.SCHEDULED.value,
            Procedure.scheduled_start < stale_cutoff(past_days),
        )
        stmt = (
            select(Procedure)
            .where(condition)
            .order_by(Procedure.scheduled_start.desc(), Procedure.id.desc())
            .limit(limit)
        )
        with self.scheduler.session_factory() as session:
            total = session.scalar(select(func.count()).select_from(Procedure).where(condition))
            return list(session.scalars(stmt).unique()), int(total or 0)

    def mark_not_attended(
        self, procedure_id: int, actor: str, now: dt.datetime | None = None
    ) -> Procedure:
        """Cancel a booking whose time has passed with the reason :data:`NOT_ATTENDED`.

        Parameters
        ----------
        procedure_id : int
            The booking.
        actor : str
            Who says so, for the audit log.
        now : datetime, optional
            The local time (the clock's by default).

        Raises
        ------
        clinic.domain.errors.NotFound
            No such booking.
        TransitionError
            The booking is not SCHEDULED, or its time has not come yet (cancel it instead).
        """
        proc = self.scheduler.get(procedure_id)
        if proc.status != ProcedureStatus.SCHEDULED:
            raise TransitionError(f"a {proc.status} booking cannot be marked not attended")
        if proc.scheduled_start > (now or dt.datetime.now()):
            raise TransitionError("a booking still to come cannot be marked not attended")
        return self.scheduler.cancel(procedure_id, NOT_ATTENDED, actor)
