"""Worklist matching (PS3.4 C.2.2.2) against a real SQLite store.

A handful of bookings is made once per module through :meth:`Scheduler.book`; each
case builds a C-FIND identifier, runs it through ``parse_identifier`` and
``build_select`` and compares the matched accession numbers with the expected set.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from clinic.dicom.status import IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS, DimseFailure
from clinic.domain.attendance import stale_cutoff
from clinic.domain.bookings import Scheduler
from clinic.domain.names import fold, fold_ascii, trim_name
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from clinic.store.models import Procedure, ProcedureStatus, Station
from clinic.worklist.matching import (
    DEFAULT_SPS_RETURN,
    MatchOptions,
    Row,
    WorklistQuery,
    build_response,
    build_select,
    like_pattern,
    parse_identifier,
)
from tests.support.database import (
    ON_POSTGRESQL,
    fresh_postgresql_database,
    postgresql_only,
    sqlite_only,
)

UID = "1.2.826.0.1.3680043.2.1125.77."

#: (accession, patient id, name, birth date, sex, modality, station, start, performing)
BOOKINGS: list[tuple[str, str, str, str, str, str, str, str, str]] = [
    (
        "A01",
        "P01",
        "MÜLLER^HANS",
        "1970-05-01",
        "M",
        "CR",
        "XRAY1",
        "2026-11-26T08:00",
        "SMITH^ANNA",
    ),
    ("A02", "P02", "MULLER^PETER", "1980-01-15", "M", "CR", "XRAY1", "2026-11-26T10:30", ""),
    (
        "A03",
        "P03",
        "Dvořák^Antonín",
        "1990-12-31",
        "M",
        "US",
        "US1",
        "2026-11-26T10:30:59",
        "ŠKODA^JAN",
    ),
    ("A04", "P04", "müller^eva", "2001-03-03", "F", "IO", "DENT1", "2026-11-26T10:31", ""),
    ("A05", "P05", "PER%CENT^A", "2002-04-04", "F", "PX", "PAN1", "2026-11-26T23:30", ""),
    ("A06", "P06", "PERXCENT^B", "2003-05-05", "F", "PX", "PAN1", "2026-11-27T05:59", ""),
    ("A_07", "P_7", "UNDER_SCORE^C", "2004-06-06", "M", "CR", "XRAY2", "2026-11-27T06:01", ""),
    ("AX07", "PX7", "UNDERXSCORE^D", "2005-07-07", "M", "CR", "XRAY2", "2026-11-28T12:00", ""),
    ("A09", "P%9", "NINE^NINA", "2006-08-08", "F", "CR", "XRAY1", "2026-11-25T09:00", ""),
    ("CANC", "P10", "MULLER^CANCELLED", "1970-01-01", "M", "CR", "XRAY1", "2026-11-26T09:00", ""),
    ("COMP", "P11", "MULLER^COMPLETED", "1970-01-01", "M", "CR", "XRAY1", "2026-11-26T09:15", ""),
    ("DISC", "P12", "MULLER^DISCONT", "1970-01-01", "M", "CR", "XRAY1", "2026-11-26T09:20", ""),
]
#: Every booking the worklist serves (A09 is IN_PROGRESS, the rest SCHEDULED).
ACTIVE = {"A01", "A02", "A03", "A04", "A05", "A06", "A_07", "AX07", "A09"}
SPS_KEYWORDS = {
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "Modality",
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepID",
    "ScheduledProcedureStepStatus",
    "ScheduledProcedureStepDescription",
}


def book_all(scheduler: Scheduler) -> dict[str, int]:
    """Book :data:`BOOKINGS`, move a few through their life cycle; return accession -> id."""
    ids: dict[str, int] = {}
    for n, (acc, pid, name, birth, sex, mod, station, start, perf) in enumerate(BOOKINGS, 1):
        proc = scheduler.book(
            {
                "accession_number": acc,
                "patient_id": pid,
                "patient_name": name,
                "patient_birth_date": birth,
                "patient_sex": sex,
                "modality": mod,
                "station_ae_title": station,
                "scheduled_start": start,
                "performing_physician": perf,
                "referring_physician": "JONES^BOB" if acc == "A01" else "",
                "procedure_description": "" if acc == "A02" else f"Exam {acc}",
                "requested_procedure_id": f"RP{n:02d}",
                "step_id": f"S{n:02d}",
                "study_instance_uid": f"{UID}{n}",
                "notes": "bring old films" if acc == "A01" else "",
            },
            actor="test",
        )
        ids[acc] = proc.id
    scheduler.set_status(ids["A09"], ProcedureStatus.IN_PROGRESS, "test")
    scheduler.cancel(ids["CANC"], "patient called", "test")
    scheduler.set_status(ids["COMP"], ProcedureStatus.IN_PROGRESS, "test")
    scheduler.set_status(ids["COMP"], ProcedureStatus.COMPLETED, "test")
    scheduler.set_status(ids["DISC"], ProcedureStatus.DISCONTINUED, "test")
    return ids


@contextmanager
def _store(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Engine]:
    """A migrated store for a whole module: SQLite, or PostgreSQL on the PostgreSQL pass."""
    with contextlib.ExitStack() as stack:
        if ON_POSTGRESQL:
            url = stack.enter_context(fresh_postgresql_database())
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'clinic.db'}"
        eng = make_engine(url)
        upgrade(eng)
        try:
            yield eng
        finally:
            eng.dispose()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated store holding :data:`BOOKINGS` for the whole module."""
    with _store(tmp_path_factory, "matching") as eng:
        book_all(Scheduler(make_session_factory(eng)))
        yield eng


@pytest.fixture(scope="module")
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def identifier(
    top: Mapping[str, Any] | None = None, sps: Mapping[str, Any] | None = None
) -> Dataset:
    """A worklist identifier: ``top`` keys, and SPS keys inside one sequence item."""
    ds = Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deliberately invalid values
        for keyword, value in (top or {}).items():
            setattr(ds, keyword, value)
        item = Dataset()
        for keyword, value in (sps or {}).items():
            setattr(item, keyword, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def matched(
    factory: sessionmaker[Session], ds: Dataset, options: MatchOptions | None = None
) -> set[str]:
    """Accession numbers of the bookings the identifier selects."""
    query = parse_identifier(ds, options or MatchOptions())
    with factory() as session:
        return {p.accession_number for p, _ in session.execute(build_select(query)).unique()}


CASES: list[tuple[str, dict[str, Any], dict[str, Any], set[str]]] = [
    # single value
    ("patient id", {"PatientID": "P01"}, {}, {"A01"}),
    ("patient id is case-sensitive", {"PatientID": "p01"}, {}, set()),
    ("accession", {"AccessionNumber": "A04"}, {}, {"A04"}),
    ("patient sex", {"PatientSex": "F"}, {}, {"A04", "A05", "A06", "A09"}),
    ("requested procedure id", {"RequestedProcedureID": "RP03"}, {}, {"A03"}),
    ("no such patient", {"PatientID": "NOBODY"}, {}, set()),
    ("cancelled booking not served", {"AccessionNumber": "CANC"}, {}, set()),
    ("completed booking not served", {"AccessionNumber": "COMP"}, {}, set()),
    ("discontinued booking not served", {"AccessionNumber": "DISC"}, {}, set()),
    # wildcards
    ("star suffix", {"PatientID": "P0*"}, {}, {"A01", "A02", "A03", "A04", "A05", "A06"}),
    (
        "question mark",
        {"AccessionNumber": "A0?"},
        {},
        {"A01", "A02", "A03", "A04", "A05", "A06", "A09"},
    ),
    ("star inside", {"AccessionNumber": "A*7"}, {}, {"A_07", "AX07"}),
    ("name star", {"PatientName": "MULLER^*"}, {}, {"A01", "A02", "A04"}),
    ("name leading question", {"PatientName": "?ULLER^HANS"}, {}, {"A01"}),
    ("name leading star", {"PatientName": "*ORAK*"}, {}, {"A03"}),
    ("question matches one char", {"PatientName": "UNDER?SCORE*"}, {}, {"A_07", "AX07"}),
    # LIKE's own % and _ only ever match literally
    ("percent in name pattern", {"PatientName": "PER%CENT*"}, {}, {"A05"}),
    ("percent in single name", {"PatientName": "PER%CENT^A"}, {}, {"A05"}),
    ("underscore in name pattern", {"PatientName": "UNDER_SCORE*"}, {}, {"A_07"}),
    ("underscore in id pattern", {"PatientID": "P_*"}, {}, {"A_07"}),
    ("underscore in id value", {"PatientID": "P_7"}, {}, {"A_07"}),
    ("percent in id pattern", {"PatientID": "P%*"}, {}, {"A09"}),
    ("percent alone", {"PatientID": "%"}, {}, set()),
    ("underscore accession pattern", {"AccessionNumber": "A_0*"}, {}, {"A_07"}),
    # universal matching
    ("empty name", {"PatientName": ""}, {}, ACTIVE),
    ("lone star", {"PatientName": "*"}, {}, ACTIVE),
    ("empty name components", {"PatientName": "^^^^"}, {}, ACTIVE),
    ("star birth date", {"PatientBirthDate": "*"}, {}, ACTIVE),
    ("star study uid", {"StudyInstanceUID": "*"}, {}, ACTIVE),
    ("star sps status", {}, {"ScheduledProcedureStepStatus": "*"}, ACTIVE),
    (
        "star sps date and time",
        {},
        {"ScheduledProcedureStepStartDate": "*", "ScheduledProcedureStepStartTime": "**"},
        ACTIVE,
    ),
    (
        "star time with a date",
        {},
        {"ScheduledProcedureStepStartDate": "20261127", "ScheduledProcedureStepStartTime": "*"},
        {"A06", "A_07"},
    ),
    ("double star", {"PatientID": "**"}, {}, ACTIVE),
    (
        "all empty",
        {"PatientID": "", "AccessionNumber": ""},
        {"Modality": "", "ScheduledStationAETitle": ""},
        ACTIVE,
    ),
    (
        "empty sps dates",
        {},
        {"ScheduledProcedureStepStartDate": "", "ScheduledProcedureStepStartTime": ""},
        ACTIVE,
    ),
    # dates: single value, closed and open ranges
    ("birth date", {"PatientBirthDate": "19800115"}, {}, {"A02"}),
    ("birth date range inclusive", {"PatientBirthDate": "19800115-19901231"}, {}, {"A02", "A03"}),
    ("birth date from", {"PatientBirthDate": "20050707-"}, {}, {"AX07", "A09"}),
    ("birth date until", {"PatientBirthDate": "-19700501"}, {}, {"A01"}),
    (
        "sps date",
        {},
        {"ScheduledProcedureStepStartDate": "20261126"},
        {"A01", "A02", "A03", "A04", "A05"},
    ),
    (
        "sps date range",
        {},
        {"ScheduledProcedureStepStartDate": "20261126-20261127"},
        {"A01", "A02", "A03", "A04", "A05", "A06", "A_07"},
    ),
    (
        "sps date from",
        {},
        {"ScheduledProcedureStepStartDate": "20261127-"},
        {"A06", "A_07", "AX07"},
    ),
    ("sps date until", {}, {"ScheduledProcedureStepStartDate": "-20261125"}, {"A09"}),
    ("sps date nothing", {}, {"ScheduledProcedureStepStartDate": "20261201"}, set()),
    # times inclusive at their precision
    (
        "time range includes 10:30:59",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261126",
            "ScheduledProcedureStepStartTime": "0800-1030",
        },
        {"A01", "A02", "A03"},
    ),
    (
        "time single minute",
        {},
        {"ScheduledProcedureStepStartDate": "20261126", "ScheduledProcedureStepStartTime": "1030"},
        {"A02", "A03"},
    ),
    (
        "time with seconds",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261126",
            "ScheduledProcedureStepStartTime": "103000-103058",
        },
        {"A02"},
    ),
    (
        "time with colons",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261126",
            "ScheduledProcedureStepStartTime": "10:31-11:00",
        },
        {"A04"},
    ),
    (
        "time from seconds",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261126",
            "ScheduledProcedureStepStartTime": "103059-1031",
        },
        {"A03", "A04"},
    ),
    (
        "time fraction",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261126",
            "ScheduledProcedureStepStartTime": "1030-103058.5",
        },
        {"A02"},
    ),
    (
        "time hour only",
        {},
        {"ScheduledProcedureStepStartDate": "20261126", "ScheduledProcedureStepStartTime": "10"},
        {"A02", "A03", "A04"},
    ),
    (
        "time open start",
        {},
        {"ScheduledProcedureStepStartDate": "20261126", "ScheduledProcedureStepStartTime": "1031-"},
        {"A04", "A05"},
    ),
    # combined date-time range across midnight and days
    (
        "night shift",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261126-20261127",
            "ScheduledProcedureStepStartTime": "2200-0600",
        },
        {"A05", "A06"},
    ),
    (
        "three days window",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261125-20261127",
            "ScheduledProcedureStepStartTime": "1000-0559",
        },
        {"A02", "A03", "A04", "A05", "A06", "A01"},
    ),
    (
        "open date with time",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261127-",
            "ScheduledProcedureStepStartTime": "0600-",
        },
        {"A_07", "AX07"},
    ),
    (
        "until date with time",
        {},
        {
            "ScheduledProcedureStepStartDate": "-20261126",
            "ScheduledProcedureStepStartTime": "-0800",
        },
        {"A09", "A01"},
    ),
    # time of day alone: every day
    (
        "time only",
        {},
        {"ScheduledProcedureStepStartTime": "0800-1030"},
        {"A01", "A02", "A03", "A09"},
    ),
    ("time only until", {}, {"ScheduledProcedureStepStartTime": "-0800"}, {"A01", "A06", "A_07"}),
    ("time only single", {}, {"ScheduledProcedureStepStartTime": "12"}, {"AX07"}),
    # lists of UIDs
    ("one study uid", {"StudyInstanceUID": f"{UID}2"}, {}, {"A02"}),
    (
        "list of study uids",
        {"StudyInstanceUID": [f"{UID}1", f"{UID}3", "1.2.3.4"]},
        {},
        {"A01", "A03"},
    ),
    ("uid of cancelled booking", {"StudyInstanceUID": f"{UID}10"}, {}, set()),
    # person names: case- and accent-insensitive
    ("plain finds accented", {"PatientName": "MULLER^HANS"}, {}, {"A01"}),
    ("lower accented prefix", {"PatientName": "müller*"}, {}, {"A01", "A02", "A04"}),
    ("mixed case accented", {"PatientName": "mÜller^hans"}, {}, {"A01"}),
    ("czech without accents", {"PatientName": "DVORAK^ANTONIN"}, {}, {"A03"}),
    ("trailing empty components", {"PatientName": "MULLER^HANS^^"}, {}, {"A01"}),
    ("family only is not a prefix", {"PatientName": "MULLER"}, {}, set()),
    ("referring physician", {"ReferringPhysicianName": "jones*"}, {}, {"A01"}),
    # sequence matching inside the Scheduled Procedure Step Sequence
    ("station", {}, {"ScheduledStationAETitle": "XRAY1"}, {"A01", "A02", "A09"}),
    (
        "station wildcard",
        {},
        {"ScheduledStationAETitle": "XRAY*"},
        {"A01", "A02", "A_07", "AX07", "A09"},
    ),
    ("modality", {}, {"Modality": "PX"}, {"A05", "A06"}),
    (
        "modality and date range",
        {},
        {"Modality": "CR", "ScheduledProcedureStepStartDate": "20261126-20261128"},
        {"A01", "A02", "A_07", "AX07"},
    ),
    (
        "station and today",
        {},
        {"ScheduledStationAETitle": "XRAY1", "ScheduledProcedureStepStartDate": "20261126"},
        {"A01", "A02"},
    ),
    ("sps id", {}, {"ScheduledProcedureStepID": "S03"}, {"A03"}),
    ("sps status scheduled", {}, {"ScheduledProcedureStepStatus": "SCHEDULED"}, ACTIVE - {"A09"}),
    ("sps status started", {}, {"ScheduledProcedureStepStatus": "STARTED"}, {"A09"}),
    ("sps status wildcard", {}, {"ScheduledProcedureStepStatus": "SCHED*"}, ACTIVE - {"A09"}),
    ("sps status any", {}, {"ScheduledProcedureStepStatus": "S*ED"}, ACTIVE),
    ("sps status question", {}, {"ScheduledProcedureStepStatus": "STARTE?"}, {"A09"}),
    ("sps status completed", {}, {"ScheduledProcedureStepStatus": "COMPLETED"}, set()),
    ("performing physician", {}, {"ScheduledPerformingPhysicianName": "smith^anna"}, {"A01"}),
    ("performing physician accents", {}, {"ScheduledPerformingPhysicianName": "SKODA*"}, {"A03"}),
    ("top and sequence keys", {"PatientName": "MULLER*"}, {"Modality": "CR"}, {"A01", "A02"}),
]


@pytest.mark.parametrize(
    ("top", "sps", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matching(
    factory: sessionmaker[Session], top: dict[str, Any], sps: dict[str, Any], expected: set[str]
) -> None:
    assert matched(factory, identifier(top, sps)) == expected


def test_store_holds_inactive_bookings(factory: sessionmaker[Session]) -> None:
    """The inactive bookings exist; only the worklist leaves them out."""
    with factory() as session:
        statuses = dict(session.execute(select(Procedure.accession_number, Procedure.status)).all())
    assert statuses["CANC"] == "CANCELLED"
    assert statuses["COMP"] == "COMPLETED"
    assert statuses["DISC"] == "DISCONTINUED"
    assert statuses["A09"] == "IN_PROGRESS"
    assert matched(factory, identifier({"PatientName": "MULLER^C*"})) == set()


ACCENT_SENSITIVE = [
    ("plain does not find accented", "MULLER^HANS", set()),
    ("accented finds accented", "MÜLLER^HANS", {"A01"}),
    ("case still ignored", "müller*", {"A01", "A04"}),
    ("plain prefix", "MULLER*", {"A02"}),
    ("czech", "DVORAK*", set()),
    ("czech exact", "dvořák^antonín", {"A03"}),
]


@pytest.mark.parametrize(
    ("name", "expected"), [c[1:] for c in ACCENT_SENSITIVE], ids=[c[0] for c in ACCENT_SENSITIVE]
)
def test_accent_sensitive_names(
    factory: sessionmaker[Session], name: str, expected: set[str]
) -> None:
    options = MatchOptions(accent_insensitive=False)
    assert matched(factory, identifier({"PatientName": name}), options) == expected


def test_without_prefix_range_same_result(factory: sessionmaker[Session]) -> None:
    """The prefix range is only an index aid: other backends match the same without it."""
    options = MatchOptions(prefix_range=False)
    for name, expected in [("MULLER*", {"A01", "A02", "A04"}), ("PER%CENT*", {"A05"})]:
        assert matched(factory, identifier({"PatientName": name}), options) == expected


def test_sps_sequence_absent_matches_all(factory: sessionmaker[Session]) -> None:
    ds = Dataset()
    ds.PatientName = ""
    assert matched(factory, ds) == ACTIVE


def test_status_filter_with_scheduler(scheduler: Scheduler) -> None:
    """Bookings leave the worklist as they are cancelled or completed, at once."""
    ids = {}
    for n in range(4):
        ids[n] = scheduler.book(
            {
                "accession_number": f"ST{n}",
                "patient_id": f"SP{n}",
                "patient_name": "STATUS^TEST",
                "modality": "CR",
                "station_ae_title": "XRAY1",
                "scheduled_start": "2026-11-26T09:00",
            },
            actor="test",
        ).id
    factory = scheduler.session_factory
    ds = identifier({"PatientName": "STATUS^TEST"})
    assert matched(factory, ds) == {"ST0", "ST1", "ST2", "ST3"}
    scheduler.cancel(ids[0], "no show", "test")
    scheduler.set_status(ids[1], ProcedureStatus.IN_PROGRESS, "test")
    assert matched(factory, ds) == {"ST1", "ST2", "ST3"}
    scheduler.set_status(ids[1], ProcedureStatus.COMPLETED, "test")
    scheduler.set_status(ids[2], ProcedureStatus.DISCONTINUED, "test")
    assert matched(factory, ds) == {"ST3"}


# -- bad identifiers ---------------------------------------------------------------------


BAD: list[tuple[str, dict[str, Any], dict[str, Any], int]] = [
    ("garbage date", {}, {"ScheduledProcedureStepStartDate": "2026XX01"}, UNABLE_TO_PROCESS),
    ("month 13", {}, {"ScheduledProcedureStepStartDate": "20261301"}, UNABLE_TO_PROCESS),
    ("february 30", {"PatientBirthDate": "20260230"}, {}, UNABLE_TO_PROCESS),
    (
        "reversed range",
        {},
        {"ScheduledProcedureStepStartDate": "20261127-20261126"},
        UNABLE_TO_PROCESS,
    ),
    (
        "two dashes",
        {},
        {"ScheduledProcedureStepStartDate": "20261126-20261127-20261128"},
        UNABLE_TO_PROCESS,
    ),
    ("lone dash", {}, {"ScheduledProcedureStepStartDate": "-"}, UNABLE_TO_PROCESS),
    (
        "bad time",
        {},
        {"ScheduledProcedureStepStartDate": "20261126", "ScheduledProcedureStepStartTime": "2500"},
        UNABLE_TO_PROCESS,
    ),
    ("bad time alone", {}, {"ScheduledProcedureStepStartTime": "10X0"}, UNABLE_TO_PROCESS),
    # PS3.4 C.2.2.2.5.2: range matching crossing midnight is not supported
    (
        "time only crossing midnight",
        {},
        {"ScheduledProcedureStepStartTime": "2200-0600"},
        UNABLE_TO_PROCESS,
    ),
    (
        "same-day window ends before it starts",
        {},
        {
            "ScheduledProcedureStepStartDate": "20261126",
            "ScheduledProcedureStepStartTime": "2200-0600",
        },
        UNABLE_TO_PROCESS,
    ),
    ("uid wildcard", {"StudyInstanceUID": "1.2.*"}, {}, UNABLE_TO_PROCESS),
    ("multi-valued id", {"PatientID": ["P01", "P02"]}, {}, UNABLE_TO_PROCESS),
]


@pytest.mark.parametrize(("top", "sps", "status"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_values(top: dict[str, Any], sps: dict[str, Any], status: int) -> None:
    with pytest.raises(DimseFailure) as info:
        parse_identifier(identifier(top, sps), MatchOptions())
    assert info.value.status == status
    # The message names the attribute, never the value.
    assert any(k in str(info.value) for k in [*top, *sps, "SPS start"])
    for value in [*top.values(), *sps.values()]:
        if isinstance(value, str) and len(value) > 2:
            assert value not in str(info.value)


def test_person_name_as_sequence_is_a_structure_error() -> None:
    ds = Dataset()
    ds.add(DataElement(0x00100010, "SQ", DicomSequence([Dataset()])))
    with pytest.raises(DimseFailure) as info:
        parse_identifier(ds, MatchOptions())
    assert info.value.status == IDENTIFIER_MISMATCH
    assert "PatientName" in str(info.value)


def test_sps_sequence_as_text_is_a_structure_error() -> None:
    ds = Dataset()
    ds.PatientName = ""
    ds.add(DataElement(0x00400100, "LO", "XRAY1"))
    with pytest.raises(DimseFailure) as info:
        parse_identifier(ds, MatchOptions())
    assert info.value.status == IDENTIFIER_MISMATCH


def test_two_sps_items_are_a_structure_error() -> None:
    ds = Dataset()
    first, second = Dataset(), Dataset()
    first.Modality = "CR"
    second.Modality = "US"
    ds.ScheduledProcedureStepSequence = [first, second]
    with pytest.raises(DimseFailure) as info:
        parse_identifier(ds, MatchOptions())
    assert info.value.status == IDENTIFIER_MISMATCH


def test_sequence_for_sps_value_is_a_structure_error() -> None:
    item = Dataset()
    item.add(DataElement(0x00080060, "SQ", DicomSequence([Dataset()])))  # Modality
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = [item]
    with pytest.raises(DimseFailure) as info:
        parse_identifier(ds, MatchOptions())
    assert info.value.status == IDENTIFIER_MISMATCH


def test_like_pattern_escapes() -> None:
    assert like_pattern("A%B_C*D?") == "A\\%B\\_C%D_"


# -- matched rows -> response identifiers ------------------------------------------------


def _row(factory: sessionmaker[Session], accession: str) -> Row:
    with factory() as session:
        result = session.execute(
            select(Procedure, Station)
            .outerjoin(Station, Station.ae_title == Procedure.station_ae_title)
            .where(Procedure.accession_number == accession)
        ).one()
        return Row(result[0], result[1])


def _respond(
    factory: sessionmaker[Session], ds: Dataset, accession: str
) -> tuple[WorklistQuery, Dataset]:
    query = parse_identifier(ds, MatchOptions())
    return query, build_response(query, _row(factory, accession), "ISO_IR 192")


def test_response_has_exactly_the_requested_keys(factory: sessionmaker[Session]) -> None:
    ds = identifier(
        {"PatientName": "", "PatientID": "", "AccessionNumber": "A01", "StudyInstanceUID": ""},
        {"ScheduledStationAETitle": "", "Modality": "", "ScheduledProcedureStepStartDate": ""},
    )
    _, rsp = _respond(factory, ds, "A01")
    assert set(rsp.dir()) == {
        "SpecificCharacterSet",
        "PatientName",
        "PatientID",
        "AccessionNumber",
        "StudyInstanceUID",
        "ScheduledProcedureStepSequence",
    }
    assert rsp.SpecificCharacterSet == "ISO_IR 192"
    assert rsp.PatientName == "MÜLLER^HANS"
    assert rsp.PatientID == "P01"
    assert rsp.AccessionNumber == "A01"
    assert rsp.StudyInstanceUID == f"{UID}1"
    item = rsp.ScheduledProcedureStepSequence[0]
    assert set(item.dir()) == {
        "ScheduledStationAETitle",
        "Modality",
        "ScheduledProcedureStepStartDate",
    }
    assert item.ScheduledStationAETitle == "XRAY1"
    assert item.Modality == "CR"
    assert item.ScheduledProcedureStepStartDate == "20261126"


def test_response_values_of_every_known_key(factory: sessionmaker[Session]) -> None:
    ds = identifier(
        {
            "PatientName": "",
            "PatientID": "",
            "PatientBirthDate": "",
            "PatientSex": "",
            "AccessionNumber": "",
            "RequestedProcedureID": "",
            "StudyInstanceUID": "",
            "RequestedProcedureDescription": "",
            "ReferringPhysicianName": "",
            "RequestedProcedurePriority": "",
        },
        {k: "" for k in [*SPS_KEYWORDS, "CommentsOnTheScheduledProcedureStep"]},
    )
    _, rsp = _respond(factory, ds, "A01")
    assert rsp.PatientBirthDate == "19700501"
    assert rsp.PatientSex == "M"
    assert rsp.RequestedProcedureID == "RP01"
    assert rsp.RequestedProcedureDescription == "Exam A01"
    assert rsp.ReferringPhysicianName == "JONES^BOB"
    assert rsp.RequestedProcedurePriority in ("", None)
    item = rsp.ScheduledProcedureStepSequence[0]
    assert item.ScheduledProcedureStepStartDate == "20261126"
    assert item.ScheduledProcedureStepStartTime == "080000"
    assert item.ScheduledPerformingPhysicianName == "SMITH^ANNA"
    assert item.ScheduledProcedureStepID == "S01"
    assert item.ScheduledProcedureStepStatus == "SCHEDULED"
    assert item.ScheduledProcedureStepDescription == "Exam A01"
    assert item.CommentsOnTheScheduledProcedureStep == "bring old films"
    _, started = _respond(factory, ds, "A09")
    assert started.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "STARTED"


def test_type1_keys_always_valued(factory: sessionmaker[Session]) -> None:
    """A02 has no description: the 1C descriptions fall back to the modality."""
    ds = identifier(
        {
            "PatientName": "",
            "PatientID": "",
            "StudyInstanceUID": "",
            "RequestedProcedureID": "",
            "RequestedProcedureDescription": "",
        },
        {
            "ScheduledProcedureStepDescription": "",
            "ScheduledProcedureStepID": "",
            "ScheduledStationAETitle": "",
            "Modality": "",
            "ScheduledProcedureStepStartDate": "",
            "ScheduledProcedureStepStartTime": "",
        },
    )
    _, rsp = _respond(factory, ds, "A02")
    assert rsp.RequestedProcedureDescription == "CR examination"
    item = rsp.ScheduledProcedureStepSequence[0]
    assert item.ScheduledProcedureStepDescription == "CR examination"
    for elem in [*rsp, *item]:
        if elem.VR != "SQ":
            assert elem.value not in ("", None), elem.keyword


def test_unknown_keys_answered_empty(factory: sessionmaker[Session]) -> None:
    ds = identifier(
        {"PatientName": "", "PatientWeight": "", "InstitutionName": ""},
        {"ScheduledStationName": "", "ScheduledProcedureStepLocation": "", "PreMedication": ""},
    )
    ds.OtherPatientIDsSequence = [Dataset()]
    ds.add_new(0x00091010, "LO", "")  # private
    query, rsp = _respond(factory, ds, "A01")
    assert query.unsupported == []  # asked for, answered (empty): nothing to warn about
    assert rsp.PatientWeight in ("", None)
    assert rsp.InstitutionName in ("", None)
    assert len(rsp.OtherPatientIDsSequence) == 0
    assert 0x00091010 in rsp
    assert rsp[0x00091010].value in ("", None)
    item = rsp.ScheduledProcedureStepSequence[0]
    assert set(item.dir()) == {
        "ScheduledStationName",
        "ScheduledProcedureStepLocation",
        "PreMedication",
    }
    assert item.PreMedication in ("", None)


def test_unknown_keys_with_values_are_unsupported_not_refused(
    factory: sessionmaker[Session],
) -> None:
    """Values of keys clinic does not support are not parsed, matched or refused."""
    other = Dataset()
    other.PatientID = "X1"
    ds = identifier(
        {
            "PatientID": "P01",
            "AdmissionID": "ADM1",
            "OtherPatientIDs": ["A", "B"],  # several values: fine where nothing is matched
            "PatientWeight": "70.5",
        },
        {"PreMedication": "none", "RequestedContrastAgent": ""},
    )
    ds.OtherPatientIDsSequence = [other]
    ds.add_new(0x00091010, "LO", "private value")
    query, rsp = _respond(factory, ds, "A01")
    assert sorted(query.unsupported) == sorted(
        [
            "AdmissionID",
            "OtherPatientIDs",
            "PatientWeight",
            "OtherPatientIDsSequence",
            "(0009,1010)",
            "PreMedication",
        ]
    )
    assert query.matching_keys == ["PatientID"]
    assert matched(factory, ds) == {"A01"}
    assert rsp.AdmissionID in ("", None)
    assert rsp.OtherPatientIDs in ("", None)
    assert len(rsp.OtherPatientIDsSequence) == 0


def test_empty_sps_item_returns_the_default_attributes(factory: sessionmaker[Session]) -> None:
    for sequence in ([Dataset()], []):
        ds = Dataset()
        ds.PatientName = ""
        ds.ScheduledProcedureStepSequence = sequence
        _, rsp = _respond(factory, ds, "A03")
        items = rsp.ScheduledProcedureStepSequence
        assert len(items) == 1
        assert set(items[0].dir()) == set(DEFAULT_SPS_RETURN)
        assert items[0].ScheduledStationAETitle == "US1"
        assert items[0].ScheduledProcedureStepStartTime == "103059"
        assert items[0].ScheduledPerformingPhysicianName == "ŠKODA^JAN"


def test_response_transform_applied(factory: sessionmaker[Session]) -> None:
    ds = identifier({"PatientName": ""}, {"ScheduledPerformingPhysicianName": ""})
    query = parse_identifier(ds, MatchOptions())
    rsp = build_response(query, _row(factory, "A03"), "ISO_IR 100", str.upper)
    assert rsp.SpecificCharacterSet == "ISO_IR 100"
    assert rsp.PatientName == "DVOŘÁK^ANTONÍN"
    assert rsp.ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName == "ŠKODA^JAN"


def test_timezone_offset_answered_never_matched(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PS3.4 K.4.1.1.3.2: Timezone Offset From UTC is never answered zero-length.

    It is the offset of the booking's local start time (summer time included), and
    never a matching key: a value in the query does not narrow the answers.
    """
    monkeypatch.setenv("TZ", "Europe/Vienna")
    time.tzset()
    try:
        ds = identifier({"TimezoneOffsetFromUTC": "-0500", "PatientID": "P01"})
        query = parse_identifier(ds, MatchOptions())
        assert query.matching_keys == ["PatientID"]
        assert query.unsupported == []
        assert matched(factory, ds) == {"A01"}
        row = _row(factory, "A01")
        rsp = build_response(query, row, "ISO_IR 192")
        summer = 3 <= row.procedure.scheduled_start.month <= 10
        assert rsp.TimezoneOffsetFromUTC in (("+0200", "+0100") if summer else ("+0100",))
        assert re.fullmatch(r"[+-]\d{4}", rsp.TimezoneOffsetFromUTC)
        empty = identifier({"TimezoneOffsetFromUTC": "", "PatientID": "P01"})
        assert build_response(parse_identifier(empty, MatchOptions()), row, "ISO_IR 192")[
            "TimezoneOffsetFromUTC"
        ].value
    finally:
        monkeypatch.undo()
        time.tzset()


def test_specific_character_set_never_matched(factory: sessionmaker[Session]) -> None:
    ds = identifier({"SpecificCharacterSet": "ISO_IR 100", "PatientID": "P01"})
    query = parse_identifier(ds, MatchOptions())
    assert "SpecificCharacterSet" not in query.matching_keys
    assert "SpecificCharacterSet" not in query.return_keys
    assert matched(factory, ds) == {"A01"}


def test_matching_and_return_keys_recorded() -> None:
    ds = identifier(
        {"PatientName": "DOE*", "PatientID": ""}, {"Modality": "CR", "ScheduledStationAETitle": ""}
    )
    query = parse_identifier(ds, MatchOptions())
    assert query.matching_keys == ["PatientName", "Modality"]
    assert query.return_keys == ["PatientName", "PatientID"]


# -- stale bookings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "sps", "expected"),
    [
        ({}, {}, {"A06", "A_07", "AX07", "A09"}),
        ({}, {"ScheduledProcedureStepStartDate": "20261126"}, set()),
        ({}, {"ScheduledProcedureStepStartDate": "20261125-20261127"}, {"A06", "A_07", "A09"}),
        ({"PatientName": "M*"}, {}, set()),  # the patient-driven plan
        ({"PatientID": "P%9"}, {}, {"A09"}),  # in progress: served whatever its day
        ({}, {"ScheduledStationAETitle": "PAN1"}, {"A06"}),
    ],
)
def test_stale_scheduled_bookings_are_not_served(
    factory: sessionmaker[Session], top: dict[str, Any], sps: dict[str, Any], expected: set[str]
) -> None:
    """Still SCHEDULED and starting before the cut-off: off the worklist, any query."""
    query = parse_identifier(identifier(top, sps), MatchOptions())
    with factory() as session:
        rows = session.execute(build_select(query, dt.datetime(2026, 11, 27))).unique()
        assert {p.accession_number for p, _ in rows} == expected


def test_stale_cutoff_is_midnight_past_days_ago() -> None:
    today = dt.date(2026, 12, 1)
    assert stale_cutoff(1, today) == dt.datetime(2026, 11, 30)
    assert stale_cutoff(0, today) == dt.datetime(2026, 12, 1)
    assert stale_cutoff(3, today) == dt.datetime(2026, 11, 28)
    assert stale_cutoff(1) == dt.datetime.combine(dt.date.today() - dt.timedelta(days=1), dt.time())


# -- the queries walk indexes ----------------------------------------------------------


#: The cut-off of stale bookings the service adds to every query (here: two days back).
STALE_BEFORE = dt.datetime(2026, 11, 25)


def _plan(engine: Engine, ds: Dataset) -> str:
    """SQLite's plan of the query the service runs for ``ds`` (stale bookings cut off)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plan (PostgreSQL: the test_postgresql_plan tests)")
    stmt = build_select(parse_identifier(ds, MatchOptions()), STALE_BEFORE)
    compiled = stmt.compile(engine, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params).fetchall()
    return "\n".join(str(r[3]) for r in rows)


def test_name_prefix_query_uses_the_name_index(engine: Engine) -> None:
    plan = _plan(engine, identifier({"PatientName": "MUL*"}))
    assert "ix_patients_name_ascii" in plan, plan
    assert "SCAN procedures" not in plan, plan


@sqlite_only
def test_accent_sensitive_name_query_uses_the_fold_index(engine: Engine) -> None:
    stmt = build_select(
        parse_identifier(
            identifier({"PatientName": "MÜL*"}), MatchOptions(accent_insensitive=False)
        )
    )
    compiled = stmt.compile(engine, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    with engine.connect() as conn:
        plan = " ".join(
            str(r[3]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
        )
    assert "ix_patients_name_fold" in plan, plan


def test_exact_name_query_uses_the_name_index(engine: Engine) -> None:
    plan = _plan(engine, identifier({"PatientName": "MULLER^HANS"}))
    assert "ix_patients_name_ascii" in plan, plan
    assert "SCAN procedures" not in plan, plan


def test_station_and_date_query_uses_station_index(engine: Engine) -> None:
    plan = _plan(
        engine,
        identifier(
            {}, {"ScheduledStationAETitle": "XRAY1", "ScheduledProcedureStepStartDate": "20261126"}
        ),
    )
    assert "ix_procedures_station_start" in plan, plan
    assert "scheduled_start>" in plan, plan


def test_today_query_uses_an_index(engine: Engine) -> None:
    plan = _plan(engine, identifier({}, {"ScheduledProcedureStepStartDate": "20261126"}))
    assert "SCAN procedures" not in plan, plan
    assert "scheduled_start>" in plan, plan


def test_patient_id_query_uses_an_index(engine: Engine) -> None:
    plan = _plan(engine, identifier({"PatientID": "P01"}))
    assert "SCAN" not in plan, plan


# -- wildcard matching against a reference implementation -------------------------------

#: Characters names and patterns are drawn from: LIKE's own % and _, PN separators,
#: case and accents.
ALPHABET = "AaBÜü%_^ "
RANDOM_NAMES = [
    "A",
    "AB",
    "A%B",
    "AXB",
    "A_B",
    "Ü^A",
    "u^a",
    "A^B^",
    "%",
    "_",
    "%%^__",
    "BA%",
    "B_A",
    "AA^BB",
    "ÜÜ%",
    "uu_",
    "A B",
    "A^ B",
]


@pytest.fixture(scope="module")
def names_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    with _store(tmp_path_factory, "names") as eng:
        yield _book_names(make_session_factory(eng))


def _book_names(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    scheduler = Scheduler(factory)
    for n, name in enumerate(RANDOM_NAMES):
        scheduler.book(
            {
                "accession_number": f"N{n}",
                "patient_id": f"N{n}",
                "patient_name": name,
                "modality": "CR",
                "station_ae_title": "XRAY1",
                "scheduled_start": "2026-11-26T09:00",
            },
            actor="test",
        )
    return factory


def reference_matches(pattern: str, accent_insensitive: bool) -> set[str]:
    """PS3.4 C.2.2.2 by hand: single value, or ``*``/``?`` over folded names."""
    key = fold_ascii if accent_insensitive else fold
    wildcards = "*" in pattern or "?" in pattern
    if set(pattern) <= {"*"} or (not wildcards and trim_name(pattern) == ""):
        return {f"N{n}" for n in range(len(RANDOM_NAMES))}
    found = set()
    for n, name in enumerate(RANDOM_NAMES):
        stored = key(trim_name(name.strip()))
        if wildcards:
            regex = "".join(
                ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in key(pattern)
            )
            hit = re.fullmatch(regex, stored, flags=re.DOTALL) is not None
        else:
            hit = stored == key(trim_name(pattern))
        if hit:
            found.add(f"N{n}")
    return found


@given(
    pattern=st.text(alphabet=ALPHABET + "*?", max_size=6).map(str.strip),
    accent_insensitive=st.booleans(),
    prefix_range=st.booleans(),
)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_wildcards_agree_with_reference(
    names_store: sessionmaker[Session], pattern: str, accent_insensitive: bool, prefix_range: bool
) -> None:
    # Prefix ranges are for byte-ordered collations; the service never uses them on PostgreSQL.
    options = MatchOptions(
        accent_insensitive=accent_insensitive, prefix_range=prefix_range and not ON_POSTGRESQL
    )
    found = matched(names_store, identifier({"PatientName": pattern}), options)
    assert found == reference_matches(pattern, accent_insensitive)


def test_station_only_query_uses_station_index(engine: Engine) -> None:
    plan = _plan(engine, identifier({}, {"ScheduledStationAETitle": "XRAY1"}))
    assert "ix_procedures_station_start (station_ae_title=?)" in plan, plan


def test_modality_and_date_query_uses_modality_index(engine: Engine) -> None:
    ds = identifier({}, {"Modality": "CR", "ScheduledProcedureStepStartDate": "20261126-20261127"})
    plan = _plan(engine, ds)
    assert "ix_procedures_modality_start" in plan, plan


def test_name_and_today_query_uses_the_date_window(engine: Engine) -> None:
    """With a start date, the day's window of the status index beats a name prefix."""
    ds = identifier({"PatientName": "M*"}, {"ScheduledProcedureStepStartDate": "20261126"})
    plan = _plan(engine, ds)
    assert "ix_procedures_status_start (status=? AND scheduled_start>? AND scheduled_start<?)" in (
        plan
    ), plan


def _postgresql_plan(engine: Engine, ds: Dataset) -> str:
    """PostgreSQL's plan when it may not scan a whole table: which index can serve the query."""
    stmt = build_select(parse_identifier(ds, MatchOptions(prefix_range=False)), STALE_BEFORE)
    compiled = stmt.compile(engine, compile_kwargs={"render_postcompile": True})
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).fetchall()
        conn.rollback()
    return "\n".join(str(r[0]) for r in rows)


@postgresql_only
@pytest.mark.parametrize(
    ("keys", "steps", "index"),
    [
        ({}, {"ScheduledStationAETitle": "XRAY1"}, "ix_procedures_station_start"),
        (
            {},
            {"ScheduledStationAETitle": "XRAY1", "ScheduledProcedureStepStartDate": "20261126"},
            "ix_procedures_station_start",
        ),
        (
            {},
            {"Modality": "CR", "ScheduledProcedureStepStartDate": "20261126"},
            "ix_procedures_modality_start",
        ),
        ({"PatientID": "P01"}, {}, "patients_patient_id_key"),
        ({"AccessionNumber": "A01"}, {}, "procedures_accession_number_key"),
    ],
)
def test_postgresql_plan_uses_an_index(
    engine: Engine, keys: dict[str, Any], steps: dict[str, Any], index: str
) -> None:
    plan = _postgresql_plan(engine, identifier(keys, steps))
    assert index in plan, plan
    assert "Seq Scan on procedures" not in plan, plan
