"""The calendar's rules: opening hours, closed days, durations, overlaps, free time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clinic.domain.bookings import Scheduler
from clinic.domain.calendar import (
    DEFAULT_OPENING_HOURS,
    Calendar,
    OpeningHours,
    format_hours,
    free_intervals,
    overlapping_ids,
    overlaps,
    parse_hours,
)
from clinic.domain.catalog import Catalog
from clinic.domain.errors import NotFound, OverlapError, TransitionError, ValidationError
from clinic.store.models import ProcedureStatus

THURSDAY = dt.date(2026, 11, 26)
SATURDAY = dt.date(2026, 11, 28)


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


def booking(start: str, **extra: Any) -> dict[str, Any]:
    return {
        "patient_id": "P1",
        "patient_name": "DOE^JANE",
        "modality": "CR",
        "station_ae_title": "XRAY1",
        "scheduled_start": start,
        **extra,
    }


# -- opening hours ---------------------------------------------------------------------


def test_hours_are_read_and_written_back() -> None:
    spans = parse_hours("08:00-12:00, 13:00-17:30")
    assert spans == ((dt.time(8), dt.time(12)), (dt.time(13), dt.time(17, 30)))
    assert format_hours(spans) == "08:00-12:00, 13:00-17:30"
    assert parse_hours("") == () == parse_hours("closed")
    assert format_hours(parse_hours("20:00-24:00")) == "20:00-24:00"


@pytest.mark.parametrize(
    "text", ["8-17", "08:00-07:00", "08:00-12:00,11:00-13:00", "25:00-26:00", "08:00"]
)
def test_unreadable_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(text)


def test_default_hours_are_monday_to_friday_eight_to_five() -> None:
    assert DEFAULT_OPENING_HOURS.on(THURSDAY) == [(at(THURSDAY, "08:00"), at(THURSDAY, "17:00"))]
    assert DEFAULT_OPENING_HOURS.on(SATURDAY) == []
    assert DEFAULT_OPENING_HOURS.is_closed(SATURDAY + dt.timedelta(days=1))
    assert not DEFAULT_OPENING_HOURS.is_closed(THURSDAY)


def test_closed_dates_close_an_open_weekday() -> None:
    hours = OpeningHours.from_mapping({"thu": "08:00-17:00"}, ["2026-11-26"])
    assert hours.on(THURSDAY) == []
    assert hours.is_closed(THURSDAY)
    assert hours.on(THURSDAY + dt.timedelta(days=7)) != []


def test_bad_weekday_or_date_names_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        OpeningHours.from_mapping({"thu": "8 to 5", "xyz": "08:00-09:00"}, ["26.11.2026"])
    assert set(caught.value.errors) == {"thu", "xyz", "closed_dates"}


# -- intervals ---------------------------------------------------------------------------


def test_adjacent_intervals_do_not_overlap() -> None:
    ten, half_past, eleven = at(THURSDAY, "10:00"), at(THURSDAY, "10:30"), at(THURSDAY, "11:00")
    assert not overlaps(ten, half_past, half_past, eleven)
    assert overlaps(ten, half_past + dt.timedelta(minutes=1), half_past, eleven)
    assert overlaps(ten, eleven, half_past, half_past + dt.timedelta(minutes=5))


def test_free_time_is_opening_minus_bookings() -> None:
    opening = DEFAULT_OPENING_HOURS.on(THURSDAY)
    busy = [
        (at(THURSDAY, "07:30"), at(THURSDAY, "08:15")),  # starts before opening
        (at(THURSDAY, "10:00"), at(THURSDAY, "10:30")),
        (at(THURSDAY, "10:30"), at(THURSDAY, "11:00")),  # adjacent: no gap between
        (at(THURSDAY, "10:45"), at(THURSDAY, "11:15")),  # overlapping the one before
        (at(THURSDAY, "16:50"), at(THURSDAY, "17:40")),  # runs past closing
    ]
    assert free_intervals(opening, busy, 1) == [
        (at(THURSDAY, "08:15"), at(THURSDAY, "10:00")),
        (at(THURSDAY, "11:15"), at(THURSDAY, "16:50")),
    ]
    # Only intervals long enough for the duration asked for.
    assert free_intervals(opening, busy, 106) == [(at(THURSDAY, "11:15"), at(THURSDAY, "16:50"))]
    assert free_intervals([], busy, 15) == []


def test_overlapping_ids_per_station() -> None:
    rows = [
        (1, "A", at(THURSDAY, "10:00"), at(THURSDAY, "10:30")),
        (2, "A", at(THURSDAY, "10:30"), at(THURSDAY, "10:45")),  # adjacent to 1
        (3, "A", at(THURSDAY, "10:40"), at(THURSDAY, "10:50")),  # overlaps 2
        (4, "B", at(THURSDAY, "10:00"), at(THURSDAY, "10:30")),  # other station
        (5, "A", at(THURSDAY, "09:00"), at(THURSDAY, "12:00")),  # overlaps all of A
    ]
    assert overlapping_ids(rows) == {1, 2, 3, 5}
    assert overlapping_ids(rows[:2] + rows[3:4]) == set()


# -- durations and overlaps through the booking service ------------------------------------


def test_duration_comes_from_the_booking_the_catalog_or_the_default(
    scheduler: Scheduler,
) -> None:
    Catalog(scheduler.session_factory).save_entry(
        {"code": "PANO", "description": "Panoramic", "modality": "PX", "duration_minutes": 20},
        "test",
    )
    assert scheduler.book(booking("2026-11-26T08:00"), "t").duration_minutes == 15
    sent = scheduler.book(booking("2026-11-26T09:00", duration_minutes=45), "t")
    assert sent.duration_minutes == 45
    pano = scheduler.book(
        booking(
            "2026-11-26T10:00",
            modality="PX",
            station_ae_title="PANO1",
            procedure_description="Panoramic",
        ),
        "t",
    )
    assert pano.duration_minutes == 20
    rooted = Scheduler(scheduler.session_factory, default_duration_minutes=25)
    assert rooted.book(booking("2026-11-26T11:00"), "t").duration_minutes == 25


@pytest.mark.parametrize("value", ["0", "1441", "ten", "1.5"])
def test_bad_duration_is_refused(scheduler: Scheduler, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        scheduler.book(booking("2026-11-26T08:00", duration_minutes=value), "t")
    assert "duration_minutes" in caught.value.errors


def test_overlap_is_refused_only_when_asked_and_nothing_is_written(
    scheduler: Scheduler,
) -> None:
    first = scheduler.book(booking("2026-11-26T10:00", duration_minutes=30), "t")
    with pytest.raises(OverlapError) as caught:
        scheduler.book(booking("2026-11-26T10:15"), "t", refuse_overlaps=True)
    assert caught.value.procedure_ids == [first.id]
    assert len(scheduler.list_procedures(THURSDAY)) == 1
    # Adjacent (10:00 + 30 min, 10:30) and another station are fine.
    scheduler.book(booking("2026-11-26T10:30"), "t", refuse_overlaps=True)
    scheduler.book(booking("2026-11-26T10:15", station_ae_title="XRAY2"), "t", refuse_overlaps=True)
    # Confirmed (or from HL7 / import): accepted.
    scheduler.book(booking("2026-11-26T10:15"), "t")
    assert len(scheduler.list_procedures(THURSDAY)) == 4


def test_cancelled_and_finished_bookings_free_their_time(scheduler: Scheduler) -> None:
    cancelled = scheduler.book(booking("2026-11-26T10:00"), "t")
    scheduler.cancel(cancelled.id, "ill", "t")
    done = scheduler.book(booking("2026-11-26T11:00"), "t")
    scheduler.set_status(done.id, ProcedureStatus.IN_PROGRESS, "t")
    scheduler.set_status(done.id, ProcedureStatus.COMPLETED, "t")
    scheduler.book(booking("2026-11-26T10:00"), "t", refuse_overlaps=True)
    scheduler.book(booking("2026-11-26T11:00"), "t", refuse_overlaps=True)


def test_moving_into_a_taken_slot_is_refused_but_other_changes_are_not(
    scheduler: Scheduler,
) -> None:
    first = scheduler.book(booking("2026-11-26T10:00"), "t")
    second = scheduler.book(booking("2026-11-26T10:05"), "t")  # overlapping, e.g. HL7
    with pytest.raises(OverlapError):
        scheduler.update(
            first.id, {"duration_minutes": 20}, "t", refuse_overlaps=True
        )  # still overlapping, and longer
    # A change that does not move it is allowed even though it overlaps already.
    scheduler.update(second.id, {"notes": "bring films"}, "t", refuse_overlaps=True)
    moved = scheduler.update(
        second.id, {"scheduled_start": "2026-11-26T10:15"}, "t", refuse_overlaps=True
    )
    assert moved.scheduled_start == at(THURSDAY, "10:15")
    with pytest.raises(OverlapError) as caught:
        scheduler.update(
            first.id, {"scheduled_start": "2026-11-26T10:20"}, "t", refuse_overlaps=True
        )
    assert caught.value.procedure_ids == [second.id]
    assert scheduler.get(first.id).scheduled_start == at(THURSDAY, "10:00")


# -- check-in ----------------------------------------------------------------------------


def test_arrived_moves_on_as_scheduled_does(scheduler: Scheduler) -> None:
    proc = scheduler.book(booking("2026-11-26T10:00"), "t")
    assert scheduler.arrive(proc.id, "desk").status == ProcedureStatus.ARRIVED
    with pytest.raises(TransitionError):
        scheduler.arrive(proc.id, "desk")
    # An arrived booking still occupies its station and can still change.
    with pytest.raises(OverlapError):
        scheduler.book(booking("2026-11-26T10:05"), "t", refuse_overlaps=True)
    scheduler.update(proc.id, {"notes": "in the waiting room"}, "desk")
    scheduler.set_status(proc.id, ProcedureStatus.IN_PROGRESS, "t")
    scheduler.set_status(proc.id, ProcedureStatus.COMPLETED, "t")
    other = scheduler.book(booking("2026-11-26T11:00"), "t")
    scheduler.arrive(other.id, "desk")
    assert scheduler.cancel(other.id, "went home", "desk").status == ProcedureStatus.CANCELLED


# -- the calendar service -----------------------------------------------------------------


def test_free_slots_of_a_station(scheduler: Scheduler) -> None:
    calendar = Calendar(scheduler.session_factory)
    scheduler.book(booking("2026-11-26T10:00", duration_minutes=30), "t")
    scheduler.book(booking("2026-11-26T10:30", duration_minutes=30), "t")
    scheduler.book(booking("2026-11-26T16:30", duration_minutes=20), "t")
    assert calendar.free_slots("XRAY1", THURSDAY, 15) == [
        (at(THURSDAY, "08:00"), at(THURSDAY, "10:00")),
        (at(THURSDAY, "11:00"), at(THURSDAY, "16:30")),
    ]
    assert calendar.free_slots("XRAY1", THURSDAY, 331) == []
    assert len(calendar.free_slots("XRAY1", THURSDAY, 330)) == 1
    assert calendar.free_slots("XRAY1", SATURDAY, 15) == []
    with pytest.raises(NotFound):
        calendar.free_slots("NOSUCH", THURSDAY, 15)


def test_station_hours_override_the_clinic_and_are_audited(scheduler: Scheduler) -> None:
    scheduler.book(booking("2026-11-26T10:00"), "t")  # makes the station
    calendar = Calendar(scheduler.session_factory)
    calendar.save_station_hours(
        "XRAY1", {"thu": "07:00-09:00", "sat": "09:00-12:00"}, ["2026-12-03"], "admin"
    )
    assert calendar.free_slots("XRAY1", THURSDAY, 15) == [
        (at(THURSDAY, "07:00"), at(THURSDAY, "09:00"))
    ]
    assert calendar.free_slots("XRAY1", SATURDAY, 15) == [
        (at(SATURDAY, "09:00"), at(SATURDAY, "12:00"))
    ]
    assert calendar.free_slots("XRAY1", dt.date(2026, 12, 3), 15) == []
    assert calendar.free_slots("XRAY1", dt.date(2026, 11, 23), 15) == []  # Monday: not listed
    calendar.save_station_hours("XRAY1", None, [], "admin")
    assert calendar.hours("XRAY1").weekly == DEFAULT_OPENING_HOURS.weekly


def test_week_plan_and_next_free_times(scheduler: Scheduler) -> None:
    calendar = Calendar(scheduler.session_factory)
    a = scheduler.book(booking("2026-11-26T08:00", duration_minutes=30), "t")
    b = scheduler.book(booking("2026-11-26T08:20"), "t")
    week = calendar.week("XRAY1", THURSDAY)
    assert [p.day.weekday() for p in week] == list(range(7))
    thursday = week[3]
    assert [(p.id, clash) for p, _, clash in thursday.bookings] == [(a.id, True), (b.id, True)]
    assert thursday.free[0][0] == at(THURSDAY, "08:35")
    assert week[5].closed and week[6].closed
    kinds = [entry[0] for entry in thursday.entries()]
    assert kinds[:3] == ["booking", "booking", "free"]
    starts = calendar.next_free("XRAY1", at(THURSDAY, "08:00"), 15, count=3)
    assert starts == [at(THURSDAY, "08:35"), at(THURSDAY, "08:50"), at(THURSDAY, "09:05")]
    # From Friday evening the next free time is Monday morning.
    friday_evening = at(THURSDAY + dt.timedelta(days=1), "16:58")
    assert calendar.next_free("XRAY1", friday_evening, 15, count=1) == [
        at(dt.date(2026, 11, 30), "08:00")
    ]


def test_import_books_overlaps_as_sent(scheduler: Scheduler) -> None:
    result = scheduler.import_procedures(
        [
            booking("2026-11-26T10:00", accession_number="IMP1", duration_minutes="30"),
            booking("2026-11-26T10:10", accession_number="IMP2"),
        ],
        "import",
    )
    assert result.created == 2
    durations = [p.duration_minutes for p in scheduler.list_procedures(THURSDAY)]
    assert durations == [30, 15]
