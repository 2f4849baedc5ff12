"""The linking rule of clinic.domain.print_links on the store, without listeners."""

from __future__ import annotations

import datetime as dt

from clinic.domain.bookings import Scheduler
from clinic.domain.print_links import (
    RULE_IN_PROGRESS,
    RULE_ONLY_BOOKING,
    booking_for_station,
    pdf_stem,
    safe_part,
)

NOW = dt.datetime(2026, 11, 26, 10, 0)


def book(scheduler: Scheduler, n: int, start: dt.datetime, station: str = "PANO1") -> int:
    proc = scheduler.book(
        {
            "patient_id": f"U{n}",
            "patient_name": f"TEST^U{n}",
            "modality": "PX",
            "station_ae_title": station,
            "scheduled_start": start.strftime("%Y-%m-%dT%H:%M"),
            "accession_number": f"UACC{n}",
        },
        actor="test",
    )
    return proc.id


def chosen(scheduler: Scheduler, station: str = "PANO1") -> tuple[int, str] | None:
    with scheduler.session_factory() as session:
        found = booking_for_station(session, station, NOW)
        return (found[0].id, found[1]) if found else None


def test_window_is_two_hours_either_side_inclusive(scheduler: Scheduler) -> None:
    book(scheduler, 1, NOW - dt.timedelta(hours=2, minutes=1))
    book(scheduler, 2, NOW + dt.timedelta(hours=2, minutes=1))
    assert chosen(scheduler) is None
    edge = book(scheduler, 3, NOW + dt.timedelta(hours=2))
    assert chosen(scheduler) == (edge, RULE_ONLY_BOOKING)


def test_cancelled_and_discontinued_bookings_do_not_count(scheduler: Scheduler) -> None:
    kept = book(scheduler, 1, NOW)
    other = book(scheduler, 2, NOW + dt.timedelta(minutes=10))
    scheduler.cancel(other, "patient ill", actor="test")
    assert chosen(scheduler) == (kept, RULE_ONLY_BOOKING)
    scheduler.set_status(kept, "IN_PROGRESS", actor="test")
    scheduler.set_status(kept, "DISCONTINUED", actor="test")
    assert chosen(scheduler) is None


def test_an_exam_in_progress_wins_even_outside_the_window(scheduler: Scheduler) -> None:
    book(scheduler, 1, NOW)
    book(scheduler, 2, NOW + dt.timedelta(minutes=30))
    late = book(scheduler, 3, NOW + dt.timedelta(hours=5))
    assert chosen(scheduler) is None
    scheduler.set_status(late, "IN_PROGRESS", actor="test")
    assert chosen(scheduler) == (late, RULE_IN_PROGRESS)
    assert chosen(scheduler, "OTHER") is None
    assert chosen(scheduler, "") is None


def test_file_names_are_safe(scheduler: Scheduler) -> None:
    assert safe_part("../É 1/2") == "1_2"
    assert safe_part("A" * 40) == "A" * 32
    proc = scheduler.get(book(scheduler, 1, NOW))
    assert pdf_stem(7, proc) == "job-000007-U1-UACC1"
    assert pdf_stem(7, None) == "job-000007"
