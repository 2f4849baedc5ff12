"""The calendar: opening hours, how long bookings occupy their station, free time.

An active booking (``SCHEDULED``, ``ARRIVED``, ``IN_PROGRESS``) occupies its station
from ``scheduled_start`` for ``duration_minutes``: the half-open interval
``[start, start + duration)``, so a booking that ends at 10:30 and one that starts at
10:30 do not overlap. A station is open by weekday (the clinic's ``[scheduling]``
hours unless the station has its own) except on its closed dates. Free time is the
opening hours minus the active bookings, as intervals. No Flask and no DICOM here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.audit import audit
from clinic.domain.errors import NotFound, ValidationError
from clinic.domain.fields import MAX_DURATION_MINUTES
from clinic.store.db import transaction
from clinic.store.models import ACTIVE_STATUSES, Procedure, Station

#: Weekday keys, Monday first (``datetime.date.weekday()`` order).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES: dict[str, str] = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
#: Mon–Fri 08:00–17:00, closed at the weekend.
DEFAULT_HOURS: dict[str, str] = {
    **{day: "08:00-17:00" for day in WEEKDAYS[:5]},
    "sat": "",
    "sun": "",
}
DEFAULT_DURATION_MINUTES = 15
#: At most this many free times are offered on the booking form.
SUGGESTIONS = 6

Span = tuple[dt.time, dt.time]
Interval = tuple[dt.datetime, dt.datetime]

_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _clock(hours: str, minutes: str) -> dt.time | None:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return dt.time.max
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{hours}:{minutes} is not a time of day")
    return dt.time(h, m)


def parse_hours(text: str) -> tuple[Span, ...]:
    """Read one weekday's opening hours.

    Parameters
    ----------
    text : str
        ``HH:MM-HH:MM``, several separated by commas (``08:00-12:00, 13:00-17:00``);
        empty or ``closed`` for a closed day. ``24:00`` ends a day.

    Returns
    -------
    tuple of (time, time)
        The opening spans in order.

    Raises
    ------
    ValueError
        When a span cannot be read, ends before it starts or overlaps another.
    """
    text = (text or "").strip()
    if text.lower() in ("", "closed", "-"):
        return ()
    spans: list[Span] = []
    for part in text.split(","):
        match = _SPAN.match(part.strip())
        if match is None:
            raise ValueError(f"{part.strip()!r} is not written HH:MM-HH:MM")
        start = _clock(match.group(1), match.group(2))
        end = _clock(match.group(3), match.group(4))
        assert start is not None and end is not None
        if start == dt.time.max or end <= start:
            raise ValueError(f"{part.strip()!r} ends before it starts")
        if spans and start < spans[-1][1]:
            raise ValueError(f"{part.strip()!r} overlaps or precedes the span before it")
        spans.append((start, end))
    return tuple(spans)


def format_hours(spans: Sequence[Span]) -> str:
    """Write spans as :func:`parse_hours` reads them (empty for a closed day)."""

    def clock(value: dt.time) -> str:
        return "24:00" if value == dt.time.max else value.strftime("%H:%M")

    return ", ".join(f"{clock(a)}-{clock(b)}" for a, b in spans)


def parse_closed_dates(values: Iterable[str | dt.date]) -> frozenset[dt.date]:
    """Read closed dates (``YYYY-MM-DD`` text or dates).

    Raises
    ------
    ValueError
        Naming the first date that cannot be read.
    """
    out: set[dt.date] = set()
    for value in values:
        if isinstance(value, dt.date):
            out.add(value)
            continue
        text = str(value).strip()
        if not text:
            continue
        try:
            out.add(dt.date.fromisoformat(text))
        except ValueError:
            raise ValueError(f"{text!r} is not a date written YYYY-MM-DD") from None
    return frozenset(out)


@dataclass(frozen=True)
class OpeningHours:
    """When a station takes bookings: spans per weekday, and dates it is closed."""

    weekly: tuple[tuple[Span, ...], ...]
    closed_dates: frozenset[dt.date] = field(default_factory=frozenset)

    @classmethod
    def from_mapping(
        cls, hours: Mapping[str, str], closed_dates: Iterable[str | dt.date] = ()
    ) -> OpeningHours:
        """Build from ``{"mon": "08:00-17:00", ...}``; a missing weekday is closed.

        Raises
        ------
        ValidationError
            Naming each weekday (or ``closed_dates``) that cannot be read.
        """
        errors: dict[str, str] = {}
        weekly: list[tuple[Span, ...]] = []
        unknown = sorted(set(hours) - set(WEEKDAYS))
        for key in unknown:
            errors[key] = "is not a weekday (mon, tue, wed, thu, fri, sat, sun)"
        for day in WEEKDAYS:
            try:
                weekly.append(parse_hours(hours.get(day, "")))
            except ValueError as exc:
                errors[day] = str(exc)
                weekly.append(())
        try:
            closed = parse_closed_dates(closed_dates)
        except ValueError as exc:
            errors["closed_dates"] = str(exc)
            closed = frozenset()
        if errors:
            raise ValidationError(errors)
        return cls(tuple(weekly), closed)

    def as_mapping(self) -> dict[str, str]:
        """The weekly hours as ``{"mon": "08:00-17:00", ...}`` (empty: closed)."""
        return {day: format_hours(spans) for day, spans in zip(WEEKDAYS, self.weekly, strict=True)}

    def is_closed(self, day: dt.date) -> bool:
        """Whether the station takes no bookings on ``day``."""
        return day in self.closed_dates or not self.weekly[day.weekday()]

    def on(self, day: dt.date) -> list[Interval]:
        """The opening intervals of ``day`` (none on a closed day)."""
        if day in self.closed_dates:
            return []
        out = []
        for start, end in self.weekly[day.weekday()]:
            end_at = (
                dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
                if end == dt.time.max
                else dt.datetime.combine(day, end)
            )
            out.append((dt.datetime.combine(day, start), end_at))
        return out


DEFAULT_OPENING_HOURS = OpeningHours.from_mapping(DEFAULT_HOURS)


def booking_end(start: dt.datetime, minutes: int) -> dt.datetime:
    """When a booking of ``minutes`` starting at ``start`` frees its station."""
    return start + dt.timedelta(minutes=minutes)


def overlaps(
    a_start: dt.datetime, a_end: dt.datetime, b_start: dt.datetime, b_end: dt.datetime
) -> bool:
    """Whether two half-open intervals share time (touching ends do not)."""
    return a_start < b_end and b_start < a_end


def free_intervals(
    opening: Iterable[Interval], busy: Iterable[Interval], min_minutes: int = 1
) -> list[Interval]:
    """Opening intervals minus busy intervals, keeping those ``min_minutes`` or longer.

    Parameters
    ----------
    opening : iterable of (datetime, datetime)
        When the station is open, in order and not overlapping.
    busy : iterable of (datetime, datetime)
        When it is taken (bookings; may overlap each other or reach past opening).
    min_minutes : int
        The shortest free interval worth returning.

    Returns
    -------
    list of (datetime, datetime)
        Free intervals in order.
    """
    taken = sorted(busy)
    shortest = dt.timedelta(minutes=max(1, min_minutes))
    out: list[Interval] = []
    for open_start, open_end in opening:
        cursor = open_start
        for b_start, b_end in taken:
            if b_end <= cursor or b_start >= open_end:
                continue
            if b_start > cursor:
                out.append((cursor, b_start))
            cursor = max(cursor, b_end)
            if cursor >= open_end:
                break
        if cursor < open_end:
            out.append((cursor, open_end))
    return [(a, b) for a, b in out if b - a >= shortest]


def overlapping_ids(bookings: Iterable[tuple[int, str, dt.datetime, dt.datetime]]) -> set[int]:
    """The ids of bookings that overlap another on the same station.

    Parameters
    ----------
    bookings : iterable of (id, station, start, end)
        Active bookings only.
    """
    by_station: dict[str, list[tuple[dt.datetime, dt.datetime, int]]] = {}
    for proc_id, station, start, end in bookings:
        by_station.setdefault(station, []).append((start, end, proc_id))
    found: set[int] = set()
    for items in by_station.values():
        items.sort()
        latest_end: dt.datetime | None = None
        latest_id = 0
        for start, end, proc_id in items:
            if latest_end is not None and start < latest_end:
                found.update((proc_id, latest_id))
            if latest_end is None or end > latest_end:
                latest_end, latest_id = end, proc_id
    return found


def clashes(
    session: Session,
    station: str,
    start: dt.datetime,
    minutes: int,
    exclude_id: int | None = None,
) -> list[int]:
    """Ids of active bookings on ``station`` that overlap ``[start, start + minutes)``.

    Runs in the caller's transaction; the candidates are read through the
    station-and-start index (a booking lasts at most a day).
    """
    end = booking_end(start, minutes)
    stmt = select(Procedure.id, Procedure.scheduled_start, Procedure.duration_minutes).where(
        Procedure.station_ae_title == station,
        Procedure.scheduled_start < end,
        Procedure.scheduled_start > start - dt.timedelta(minutes=MAX_DURATION_MINUTES),
        Procedure.status.in_(ACTIVE_STATUSES),
    )
    found = []
    for proc_id, other_start, other_minutes in session.execute(stmt.order_by(Procedure.id)):
        if proc_id == exclude_id:
            continue
        if overlaps(start, end, other_start, booking_end(other_start, other_minutes)):
            found.append(proc_id)
    return found


def station_opening_hours(station: Station, default: OpeningHours) -> OpeningHours:
    """A station's own hours and closed dates, else the clinic's ``default`` hours.

    Closed dates of the clinic apply to every station, with the station's own.
    """
    weekly = default.weekly
    if station.opening_hours:
        try:
            mapping = json.loads(station.opening_hours)
            weekly = OpeningHours.from_mapping(mapping).weekly
        except (ValueError, TypeError, ValidationError, AttributeError):
            weekly = default.weekly
    closed = set(default.closed_dates)
    if station.closed_dates:
        with contextlib.suppress(ValueError, TypeError):
            closed |= parse_closed_dates(json.loads(station.closed_dates))
    return OpeningHours(weekly, frozenset(closed))


@dataclass
class DayPlan:
    """One station's day: opening, bookings (with end and overlap) and free time."""

    day: dt.date
    opening: list[Interval]
    bookings: list[tuple[Procedure, dt.datetime, bool]]
    free: list[Interval]

    @property
    def closed(self) -> bool:
        """Whether the station is closed this day."""
        return not self.opening

    def entries(self) -> list[tuple[str, Any, dt.datetime, dt.datetime, bool]]:
        """Bookings and free intervals in time order: ``(kind, booking, start, end, overlap)``.

        ``kind`` is ``"booking"`` or ``"free"`` (whose booking is ``None``).
        """
        items: list[tuple[str, Any, dt.datetime, dt.datetime, bool]] = [
            ("booking", proc, proc.scheduled_start, end, clash)
            for proc, end, clash in self.bookings
        ]
        items += [("free", None, start, end, False) for start, end in self.free]
        return sorted(items, key=lambda item: (item[2], item[0] == "booking"))


class Calendar:
    """Reads stations' opening hours, free time and weeks; changes a station's hours.

    Parameters
    ----------
    session_factory : sessionmaker
        The store.
    default_hours : OpeningHours
        The clinic's hours (``[scheduling]``), for stations without their own.
    default_duration_minutes : int
        How long a booking lasts when neither the caller nor the catalog says.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        default_hours: OpeningHours = DEFAULT_OPENING_HOURS,
        default_duration_minutes: int = DEFAULT_DURATION_MINUTES,
    ) -> None:
        self.session_factory = session_factory
        self.default_hours = default_hours
        self.default_duration_minutes = default_duration_minutes

    def station(self, ae_title: str) -> Station:
        """Return the station with ``ae_title``; raise :class:`NotFound` if none."""
        with self.session_factory() as session:
            found = session.scalar(select(Station).where(Station.ae_title == ae_title))
        if found is None:
            raise NotFound(ae_title)
        return found

    def hours(self, ae_title: str) -> OpeningHours:
        """The opening hours of a station (raise :class:`NotFound` for an unknown one)."""
        return station_opening_hours(self.station(ae_title), self.default_hours)

    def bookings(self, ae_title: str, first: dt.date, last: dt.date) -> list[Procedure]:
        """Active bookings of a station that touch the days ``first`` to ``last``."""
        start = dt.datetime.combine(first, dt.time())
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
        stmt = (
            select(Procedure)
            .where(
                Procedure.station_ae_title == ae_title,
                Procedure.scheduled_start < end,
                Procedure.scheduled_start > start - dt.timedelta(minutes=MAX_DURATION_MINUTES),
                Procedure.status.in_(ACTIVE_STATUSES),
            )
            .order_by(Procedure.scheduled_start, Procedure.id)
        )
        with self.session_factory() as session:
            rows = list(session.scalars(stmt).unique())
        return [p for p in rows if booking_end(p.scheduled_start, p.duration_minutes) > start]

    def days(self, ae_title: str, first: dt.date, count: int) -> list[DayPlan]:
        """Plans of ``count`` days from ``first`` for one station.

        Raises
        ------
        NotFound
            The station is unknown.
        """
        hours = self.hours(ae_title)
        last = first + dt.timedelta(days=count - 1)
        rows = self.bookings(ae_title, first, last)
        ends = {p.id: booking_end(p.scheduled_start, p.duration_minutes) for p in rows}
        clashing = overlapping_ids(
            (p.id, p.station_ae_title, p.scheduled_start, ends[p.id]) for p in rows
        )
        busy = [(p.scheduled_start, ends[p.id]) for p in rows]
        plans = []
        for offset in range(count):
            day = first + dt.timedelta(days=offset)
            opening = hours.on(day)
            plans.append(
                DayPlan(
                    day=day,
                    opening=opening,
                    bookings=[
                        (p, ends[p.id], p.id in clashing)
                        for p in rows
                        if p.scheduled_start.date() == day
                    ],
                    free=free_intervals(opening, busy, 1),
                )
            )
        return plans

    def week(self, ae_title: str, day: dt.date) -> list[DayPlan]:
        """Monday to Sunday of the week holding ``day``."""
        monday = day - dt.timedelta(days=day.weekday())
        return self.days(ae_title, monday, 7)

    def free_slots(self, ae_title: str, day: dt.date, minutes: int) -> list[Interval]:
        """Free intervals of ``day`` at least ``minutes`` long (``[]`` on a closed day).

        Raises
        ------
        NotFound
            The station is unknown.
        """
        hours = self.hours(ae_title)
        opening = hours.on(day)
        if not opening:
            return []
        busy = [
            (p.scheduled_start, booking_end(p.scheduled_start, p.duration_minutes))
            for p in self.bookings(ae_title, day, day)
        ]
        return free_intervals(opening, busy, minutes)

    def next_free(
        self,
        ae_title: str,
        after: dt.datetime,
        minutes: int,
        count: int = SUGGESTIONS,
        days: int = 14,
    ) -> list[dt.datetime]:
        """The first ``count`` start times from ``after`` where ``minutes`` fit.

        Each free interval offers its start (and later starts in steps of the
        duration while more fit), looking ``days`` days ahead.
        """
        found: list[dt.datetime] = []
        for plan in self.days(ae_title, after.date(), days):
            for start, end in plan.free:
                cursor = max(start, after)
                # Start on a whole five minutes, as people book.
                if cursor.minute % 5 or cursor.second or cursor.microsecond:
                    cursor = cursor.replace(second=0, microsecond=0) + dt.timedelta(
                        minutes=5 - cursor.minute % 5
                    )
                step = dt.timedelta(minutes=minutes)
                while cursor + step <= end and len(found) < count:
                    found.append(cursor)
                    cursor += step
                if len(found) >= count:
                    return found
        return found

    def save_station_hours(
        self,
        ae_title: str,
        hours: Mapping[str, str] | None,
        closed_dates: Iterable[str],
        actor: str,
    ) -> Station:
        """Give a station its own hours (``None``: the clinic's) and closed dates; audited.

        Raises
        ------
        NotFound, ValidationError
        """
        dates = [d.strip() for d in closed_dates if d.strip()]
        parsed = OpeningHours.from_mapping(hours or {}, dates)
        stored_hours = json.dumps(parsed.as_mapping()) if hours is not None else ""
        stored_dates = json.dumps(sorted(d.isoformat() for d in parsed.closed_dates))
        if not parsed.closed_dates:
            stored_dates = ""
        with transaction(self.session_factory) as session:
            station = session.scalar(
                select(Station).where(Station.ae_title == ae_title).with_for_update()
            )
            if station is None:
                raise NotFound(ae_title)
            changes: dict[str, list[Any]] = {}
            if station.opening_hours != stored_hours:
                changes["opening_hours"] = [station.opening_hours, stored_hours]
                station.opening_hours = stored_hours
            if station.closed_dates != stored_dates:
                changes["closed_dates"] = [station.closed_dates, stored_dates]
                station.closed_dates = stored_dates
            if changes:
                audit(session, actor, "update", "station", ae_title, changes)
            return station
