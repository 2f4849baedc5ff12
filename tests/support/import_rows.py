"""Import rows: a good one, and hostile variations of it; what an import writes."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from sqlalchemy import func, select

from clinic.domain.bookings import Scheduler
from clinic.domain.fields import READ_ONLY_FIELDS, WRITABLE_FIELDS
from clinic.store.models import AuditEntry, Patient, Procedure

GOOD = {
    "patient_id": "P1",
    "patient_name": "DOE^JANE",
    "patient_birth_date": "1980-02-29",
    "patient_sex": "F",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": "2026-11-26T09:30",
}
NASTY = [
    "",
    " ",
    "2026-02-30",
    "2026-11-26T25:00",
    "2026-11-26T09:30:00+99:00",
    "0000-01-01",
    "9999-12-31T23:59",
    "../../etc/passwd",
    "A" * 70,
    "DOE^JANE^^^^^",
    "=^=",
    "\x00",
    "\\",
    "1.2.3..4",
    "01.2",
    "Müller",
    "\ud800",
]
field_values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=30),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
field_names = st.one_of(
    st.sampled_from([*WRITABLE_FIELDS, *READ_ONLY_FIELDS]), st.text(max_size=10)
)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    """A good row with some fields replaced, removed or added."""
    row: dict[str, Any] = dict(GOOD)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(field_names)
        if draw(st.integers(0, 3)) == 0:
            row.pop(key, None)
        else:
            row[key] = draw(field_values)
    return row


def counts(scheduler: Scheduler) -> tuple[int, ...]:
    """Rows of every table an import writes."""
    with scheduler.session_factory() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Patient, Procedure, AuditEntry)
        )
