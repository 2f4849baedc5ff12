"""Likely duplicates: the ways one person gets typed twice at a front desk."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.domain import patients
from clinic.domain.bookings import Scheduler
from clinic.domain.patients import duplicate_reasons, loose_key, nearby_birth_dates

D = dt.date

# stored name, stored birth date, typed name, typed birth date, expected reason (None: not one)
NEAR_DUPLICATES = [
    ("MÜLLER^JOSÉ", D(1970, 5, 1), "MUELLER^JOSE", D(1970, 5, 1), "same name and birth date"),
    ("Mueller^José", D(1970, 5, 1), "Müller^Jose", D(1970, 5, 1), "same name and birth date"),
    ("Müller^Hans", D(1970, 5, 1), "Muller^Hans", D(1970, 5, 1), "same name and birth date"),
    ("Strauß^Eva", D(1981, 3, 9), "STRAUSS^EVA", D(1981, 3, 9), "same name and birth date"),
    ("Straus^Eva", D(1981, 3, 9), "Strauß^Eva", D(1981, 3, 9), "same name and birth date"),
    ("Gößmann^Jörg", D(1966, 1, 2), "Goessmann^Joerg", D(1966, 1, 2), "same name and birth date"),
    ("O'Brien^Sean", D(1990, 7, 4), "OBRIEN^SEAN", D(1990, 7, 4), "same name and birth date"),
    ("Dvořák^Anna", D(1990, 7, 4), "DVORAK^ANNA", D(1990, 7, 4), "same name and birth date"),
    (
        "Hans^Peter",
        D(1975, 12, 3),
        "Peter^Hans",
        D(1975, 12, 3),
        "given and family names swapped, same birth date",
    ),
    (
        "Meier^Lena",
        D(1975, 3, 12),
        "Meier^Lena",
        D(1975, 12, 3),
        "same name, birth date with day and month swapped",
    ),
    (
        "Meier^Lena",
        D(1975, 3, 12),
        "Meier^Lena",
        D(1976, 3, 12),
        "same name, birth date one digit off",
    ),
    (
        "Meier^Lena",
        D(1975, 3, 12),
        "Meier^Lena",
        D(1975, 3, 13),
        "same name, birth date one digit off",
    ),
    ("Meier^Lena", D(1975, 3, 12), "Meier^L", D(1975, 3, 12), "same name and birth date"),
    ("Meier^Lena", D(1975, 3, 12), "Meier^Paul", D(1975, 3, 12), "same family name and birth date"),
    ("Meier^Lena", None, "MEIER^LENA", D(1975, 3, 12), "same name, birth date unknown"),
    # Not the same person.
    ("Meier^Lena", D(1975, 3, 12), "Meier^Lena", D(1985, 6, 30), None),
    ("Meier^Lena", D(1975, 3, 12), "Maier^Lena", D(1975, 3, 12), None),
    ("Meier^Lena", D(1975, 3, 12), "Meier^Paul", D(1975, 3, 13), None),
    ("Meier^Lena", None, "Meier^Paul", None, None),
]


@pytest.mark.parametrize(("stored", "born", "typed", "typed_born", "reason"), NEAR_DUPLICATES)
def test_duplicate_rules(
    stored: str, born: dt.date | None, typed: str, typed_born: dt.date | None, reason: str | None
) -> None:
    assert duplicate_reasons(typed, typed_born, stored, born) == ([reason] if reason else [])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Müller", "Mueller"),
        ("Müller", "MULLER"),
        ("Strauß", "Strauss"),
        ("Hans-Peter", "HANSPETER"),
    ],
)
def test_loose_key(a: str, b: str) -> None:
    assert loose_key(a) == loose_key(b)


def test_nearby_birth_dates() -> None:
    near = nearby_birth_dates(D(1975, 3, 12))
    assert D(1975, 12, 3) in near and D(1976, 3, 12) in near and D(1975, 3, 2) in near
    assert D(1975, 3, 12) not in near and D(1985, 6, 30) not in near
    assert all(isinstance(d, dt.date) for d in near)


@pytest.mark.parametrize(("stored", "born", "typed", "typed_born", "reason"), NEAR_DUPLICATES)
def test_found_in_the_store(
    scheduler: Scheduler,
    stored: str,
    born: dt.date | None,
    typed: str,
    typed_born: dt.date | None,
    reason: str | None,
) -> None:
    row = {
        "patient_id": "P1",
        "patient_name": stored,
        "modality": "CR",
        "station_ae_title": "XRAY1",
        "scheduled_start": "2026-12-02T09:00",
    }
    if born:
        row["patient_birth_date"] = born.isoformat()
    scheduler.book(row, actor="t")
    found = patients.likely_duplicates(scheduler.session_factory, typed, typed_born)
    assert [(d.patient_id, d.reasons) for d in found] == ([("P1", (reason,))] if reason else [])
