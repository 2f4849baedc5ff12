"""The domain's patient search and duplicates, and its catalog and station checks."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.domain import patients
from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog, clean_catalog_entry, clean_station
from clinic.domain.errors import ValidationError


@pytest.fixture
def people(scheduler: Scheduler) -> Scheduler:
    base = {"modality": "CR", "station_ae_title": "XRAY1", "scheduled_start": "2026-11-26T09:00"}
    for pid, name, born in [
        ("P1", "MÜLLER^HANS", "1970-05-01"),
        ("P2", "MULLER^ANNA", "1990-01-01"),
        ("P3", "O'BRIEN^SEÁN", ""),
        ("P4", "50%_OFF^X", "1980-01-01"),
    ]:
        scheduler.book(
            {**base, "patient_id": pid, "patient_name": name, "patient_birth_date": born},
            actor="t",
        )
    return scheduler


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("muller", {"P1", "P2"}),
        ("MÜLLER", {"P1", "P2"}),
        ("hans müller", {"P1"}),
        ("Müller, Anna", {"P2"}),
        ("m?ller^h*", {"P1"}),
        ("sean", {"P3"}),
        ("o'brien", {"P3"}),
        ("P2", {"P2"}),
        ("1990-01-01", {"P2"}),
        ("01.05.1970", {"P1"}),
        ("50%", {"P4"}),
        ("_OFF", {"P4"}),
        ("%", {"P4"}),
        ("nobody", set()),
        ("", set()),
        ("*", set()),
    ],
)
def test_search(people: Scheduler, text: str, expected: set[str]) -> None:
    found = patients.search_patients(people.session_factory, text)
    assert {p.patient_id for p in found} == expected


def test_search_with_birth_date(people: Scheduler) -> None:
    found = patients.search_patients(
        people.session_factory, "muller", birth_date=dt.date(1990, 1, 1)
    )
    assert [p.patient_id for p in found] == ["P2"]


def test_likely_duplicates(people: Scheduler) -> None:
    factory = people.session_factory
    same = patients.likely_duplicates(factory, "Muller^H", dt.date(1970, 5, 1))
    assert [p.patient_id for p in same] == ["P1"]
    assert patients.likely_duplicates(factory, "Muller^H", dt.date(1985, 11, 23)) == []
    no_birth = patients.likely_duplicates(factory, "O'BRIEN^SEAN", None)
    assert [p.patient_id for p in no_birth] == ["P3"]
    assert (
        patients.likely_duplicates(
            factory, "MULLER^HANS", dt.date(1970, 5, 1), exclude_patient_id="P1"
        )
        == []
    )
    assert patients.likely_duplicates(factory, "^", None) == []


def test_new_patient_ids_differ() -> None:
    ids = {patients.new_patient_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 10 for i in ids)


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({}, {"code", "description", "modality"}),
        ({"code": "X" * 17, "description": "d", "modality": "CR"}, {"code"}),
        ({"code": "A", "description": "d", "modality": "C-R"}, {"modality"}),
        (
            {"code": "A", "description": "d", "modality": "CR", "duration_minutes": "x"},
            {"duration_minutes"},
        ),
        (
            {"code": "A", "description": "d", "modality": "CR", "duration_minutes": 0},
            {"duration_minutes"},
        ),
        (
            {"code": "A", "description": "d", "modality": "CR", "default_station": "A" * 17},
            {"default_station"},
        ),
    ],
)
def test_catalog_checks(raw: dict[str, object], fields: set[str]) -> None:
    with pytest.raises(ValidationError) as info:
        clean_catalog_entry(raw)
    assert set(info.value.errors) == fields


def test_station_checks(scheduler: Scheduler) -> None:
    with pytest.raises(ValidationError) as info:
        clean_station({"ae_title": "", "character_set": "ISO_IR 6"})
    assert set(info.value.errors) == {"ae_title", "character_set"}
    catalog = Catalog(scheduler.session_factory)
    station = catalog.save_station({"ae_title": "US1", "modality": "US"}, "t")
    with pytest.raises(ValidationError) as info:
        catalog.save_station({"ae_title": "US2"}, "t", station.id)
    assert "ae_title" in info.value.errors
