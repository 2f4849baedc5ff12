"""The scheduling domain: validation by VR, identifiers, life cycle, audit, imports."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from clinic.domain.bookings import Scheduler
from clinic.domain.errors import NotFound, PatientConflict, TransitionError, ValidationError
from clinic.domain.fields import REQUIRED_FIELDS, clean_procedure, procedure_to_dict
from clinic.store.db import transaction
from clinic.store.models import AuditEntry, AuditLogIsAppendOnly, Patient, Procedure, Station

BASE: dict[str, Any] = {
    "patient_id": "P1",
    "patient_name": "DOE^JANE",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": "2026-11-26T09:30",
}
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def row(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


# -- validation by value representation -------------------------------------------------

VALID: list[tuple[str, Any, Any]] = [
    # field, input, stored value
    ("patient_name", "A" * 64, "A" * 64),
    ("patient_name", "MÜLLER^HANS", "MÜLLER^HANS"),
    ("patient_name", "YAMADA^TARO=山田^太郎=やまだ^たろう", "YAMADA^TARO=山田^太郎=やまだ^たろう"),
    ("patient_name", "A^B=" + "C" * 64, "A^B=" + "C" * 64),
    ("patient_name", "A^B^C^D^E", "A^B^C^D^E"),
    ("referring_physician", "WHO^DR", "WHO^DR"),
    ("patient_id", "P" * 64, "P" * 64),
    ("patient_id", "  P1  ", "P1"),
    ("procedure_description", "D" * 64, "D" * 64),
    ("accession_number", "A" * 16, "A" * 16),
    ("requested_procedure_id", "R" * 16, "R" * 16),
    ("step_id", "S" * 16, "S" * 16),
    ("station_ae_title", "A" * 16, "A" * 16),
    ("station_ae_title", "  XRAY 1 ", "XRAY 1"),
    ("modality", "cr", "CR"),
    ("modality", "OP_T 2", "OP_T 2"),
    ("patient_sex", "f", "F"),
    ("priority", "stat", "STAT"),
    ("patient_birth_date", "1980-02-29", dt.date(1980, 2, 29)),
    ("patient_birth_date", "19800115", dt.date(1980, 1, 15)),
    ("patient_birth_date", "1980-1-5", dt.date(1980, 1, 5)),
    ("scheduled_start", "2026-11-26 09:30", dt.datetime(2026, 11, 26, 9, 30)),
    ("scheduled_start", "2026-11-26T09:30:15", dt.datetime(2026, 11, 26, 9, 30, 15)),
    ("scheduled_start", "2028-02-29T23:59", dt.datetime(2028, 2, 29, 23, 59)),
    ("study_instance_uid", "1.2.840.10008.0", "1.2.840.10008.0"),
    ("study_instance_uid", "1." + "2" * 62, "1." + "2" * 62),
    ("notes", "n" * 10240, "n" * 10240),
]


@pytest.mark.parametrize(("key", "value", "stored"), VALID)
def test_valid_values(key: str, value: Any, stored: Any) -> None:
    assert clean_procedure(row(**{key: value}))[key] == stored


INVALID: list[tuple[str, Any, str]] = [
    # field, input, words of the message
    ("patient_name", "A" * 65, "64"),
    ("patient_name", "A^B=" + "C" * 65, "64"),
    ("patient_name", "A=B=C=D", "three"),
    ("patient_name", "A^B^C^D^E^F", "five"),
    ("patient_name", "DOE\\JANE", "backslash"),
    ("patient_name", "DOE\nJANE", "control"),
    ("patient_name", "^^^", "empty"),
    ("referring_physician", "X" * 65, "64"),
    ("performing_physician", "X\x00", "control"),
    ("patient_id", "P" * 65, "64"),
    ("patient_id", "P\\1", "backslash"),
    ("patient_id", "P\t1", "control"),
    ("procedure_description", "D" * 65, "64"),
    ("accession_number", "A" * 17, "16"),
    ("accession_number", "A\\B", "backslash"),
    ("requested_procedure_id", "R" * 17, "16"),
    ("step_id", "S" * 17, "16"),
    ("station_ae_title", "A" * 17, "16"),
    ("station_ae_title", "X\\Y", "backslash"),
    ("station_ae_title", "X\x01Y", "control"),
    ("station_ae_title", "RÖNTGEN", "ASCII"),
    ("modality", "C-R", "capital"),
    ("modality", "CR.", "capital"),
    ("modality", "A" * 17, "16"),
    ("patient_sex", "X", "M, F or O"),
    ("priority", "URGENT", "STAT"),
    ("patient_birth_date", "2026-02-30", "real date"),
    ("patient_birth_date", "1981-02-29", "real date"),
    ("patient_birth_date", "15.01.1980", "real date"),
    ("patient_birth_date", "1980115", "real date"),  # 1980-01-15 or 1980-11-05?
    ("patient_birth_date", "2999-01-01", "future"),
    ("scheduled_start", "2026-02-30T10:00", "real date"),
    ("scheduled_start", "2026-11-26T25:00", "real date"),
    ("scheduled_start", "2026-11-26", "real date"),
    ("scheduled_start", "tomorrow", "real date"),
    ("study_instance_uid", "1.2.03", "leading zeros"),
    ("study_instance_uid", "1.2.a", "digits"),
    ("study_instance_uid", ".1.2", "digits"),
    ("study_instance_uid", "1..2", "digits"),
    ("study_instance_uid", "1.2.", "digits"),
    ("study_instance_uid", "1." + "2" * 63, "64"),
    ("notes", "n" * 10241, "10240"),
    ("colour", "blue", "not a known field"),
    ("patient_id", ["P1"], "text"),
    ("patient_id", {"a": 1}, "text"),
]


@pytest.mark.parametrize(("key", "value", "words"), INVALID)
def test_invalid_values(key: str, value: Any, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        clean_procedure(row(**{key: value}))
    assert list(info.value.errors) == [key]
    assert words in info.value.errors[key]
    assert key in str(info.value)


@pytest.mark.parametrize("key", REQUIRED_FIELDS)
def test_required_fields(key: str) -> None:
    raw = row()
    del raw[key]
    with pytest.raises(ValidationError) as info:
        clean_procedure(raw)
    assert info.value.errors == {key: "is required"}
    with pytest.raises(ValidationError) as info:
        clean_procedure(row(**{key: "   "}))
    assert info.value.errors == {key: "is required"}


def test_every_offending_field_named() -> None:
    with pytest.raises(ValidationError) as info:
        clean_procedure(row(patient_sex="Q", accession_number="X" * 20, modality="c/r"))
    assert set(info.value.errors) == {"patient_sex", "accession_number", "modality"}


def test_read_only_fields_ignored() -> None:
    cleaned = clean_procedure(row(id=99, status="COMPLETED"))
    assert "id" not in cleaned and "status" not in cleaned


def test_partial_update_allows_missing_and_clears_optional() -> None:
    cleaned = clean_procedure({"patient_sex": "", "patient_birth_date": ""}, partial=True)
    assert cleaned == {"patient_sex": "", "patient_birth_date": None}


# -- booking and identifiers -------------------------------------------------------------


def test_book_generates_identifiers(scheduler: Scheduler) -> None:
    procs = [scheduler.book(row(patient_id=f"P{n}"), actor="desk") for n in range(30)]
    accessions = [p.accession_number for p in procs]
    assert len(set(accessions)) == 30
    for proc in procs:
        assert 0 < len(proc.accession_number) <= 16
        assert proc.accession_number.startswith("A261126")
        assert 0 < len(proc.requested_procedure_id) <= 16
        assert 0 < len(proc.step_id) <= 16
        uid = proc.study_instance_uid
        assert len(uid) <= 64 and UID_RE.match(uid), uid
        assert uid.startswith("2.25.")
        assert proc.status == "SCHEDULED"
        assert proc.scheduled_seconds == 9 * 3600 + 30 * 60
    assert len({p.study_instance_uid for p in procs}) == 30
    assert len({p.requested_procedure_id for p in procs}) == 30
    assert len({p.step_id for p in procs}) == 30


def test_uid_root_honoured(scheduler: Scheduler) -> None:
    root = "1.2.826.0.1.3680043.10.543"
    rooted = Scheduler(scheduler.session_factory, uid_root=root)
    for n in range(5):
        uid = rooted.book(row(patient_id=f"R{n}"), actor="desk").study_instance_uid
        assert uid.startswith(root + "."), uid
        assert len(uid) <= 64 and UID_RE.match(uid), uid


def test_book_keeps_given_identifiers(scheduler: Scheduler) -> None:
    proc = scheduler.book(
        row(
            accession_number="ACC1",
            requested_procedure_id="RP1",
            step_id="SPS1",
            study_instance_uid="1.2.3.4",
        ),
        actor="desk",
    )
    assert (proc.accession_number, proc.requested_procedure_id, proc.step_id) == (
        "ACC1",
        "RP1",
        "SPS1",
    )
    assert proc.study_instance_uid == "1.2.3.4"
    assert proc.patient.name == "DOE^JANE"


def test_book_refuses_duplicate_identifiers(scheduler: Scheduler) -> None:
    scheduler.book(row(accession_number="ACC1", study_instance_uid="1.2.3"), actor="desk")
    with pytest.raises(ValidationError) as info:
        scheduler.book(row(accession_number="ACC1"), actor="desk")
    assert set(info.value.errors) == {"accession_number"}
    with pytest.raises(ValidationError) as info:
        scheduler.book(row(accession_number="ACC2", study_instance_uid="1.2.3"), actor="desk")
    assert set(info.value.errors) == {"study_instance_uid"}
    assert len(scheduler.list_procedures()) == 1


def test_book_creates_patient_and_station_once(scheduler: Scheduler) -> None:
    scheduler.book(row(), actor="desk")
    scheduler.book(row(scheduled_start="2026-11-27T10:00"), actor="desk")
    with scheduler.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1
        stations = session.scalars(select(Station)).all()
    assert [(s.ae_title, s.modality) for s in stations] == [("XRAY1", "CR")]


def test_station_inferred_from_single_station_of_modality(scheduler: Scheduler) -> None:
    scheduler.book(row(), actor="desk")
    proc = scheduler.book(row(patient_id="P2", station_ae_title=""), actor="desk")
    assert proc.station_ae_title == "XRAY1"
    scheduler.book(row(patient_id="P3", station_ae_title="XRAY2"), actor="desk")
    with pytest.raises(ValidationError) as info:
        scheduler.book(row(patient_id="P4", station_ae_title=""), actor="desk")
    assert set(info.value.errors) == {"station_ae_title"}


def test_update_changes_fields(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(), actor="desk")
    changed = scheduler.update(
        proc.id,
        {"scheduled_start": "2026-11-27T14:15", "patient_name": "Doe^Janet", "priority": "HIGH"},
        actor="desk2",
        update_patient=True,
    )
    assert changed.scheduled_start == dt.datetime(2026, 11, 27, 14, 15)
    assert changed.scheduled_seconds == 14 * 3600 + 15 * 60
    assert changed.patient.name == "Doe^Janet"
    assert changed.patient.name_fold == "DOE^JANET"
    assert changed.priority == "HIGH"
    assert scheduler.get(proc.id).priority == "HIGH"


def test_update_validates(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(), actor="desk")
    with pytest.raises(ValidationError) as info:
        scheduler.update(proc.id, {"modality": "x-ray"}, actor="desk")
    assert set(info.value.errors) == {"modality"}
    other = scheduler.book(row(patient_id="P2", accession_number="TAKEN"), actor="desk")
    with pytest.raises(ValidationError):
        scheduler.update(proc.id, {"accession_number": "TAKEN"}, actor="desk")
    assert scheduler.get(proc.id).modality == "CR"
    assert scheduler.get(other.id).accession_number == "TAKEN"
    with pytest.raises(NotFound):
        scheduler.update(123456, {"priority": "LOW"}, actor="desk")


def test_update_moves_booking_to_another_patient(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(), actor="desk")
    scheduler.book(row(patient_id="P2", patient_name="ROE^RICHARD"), actor="desk")
    moved = scheduler.update(proc.id, {"patient_id": "P2"}, actor="desk")
    assert (moved.patient.patient_id, moved.patient.name) == ("P2", "ROE^RICHARD")
    with pytest.raises(ValidationError) as info:
        scheduler.update(proc.id, {"patient_id": "NEW"}, actor="desk")
    assert set(info.value.errors) == {"patient_name"}
    moved = scheduler.update(proc.id, {"patient_id": "NEW", "patient_name": "NEW^PAT"}, "desk")
    assert (moved.patient.patient_id, moved.patient.name) == ("NEW", "NEW^PAT")


def test_cancel(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(), actor="desk")
    cancelled = scheduler.cancel(proc.id, "  patient called  ", actor="desk")
    assert cancelled.status == "CANCELLED"
    assert cancelled.cancel_reason == "patient called"
    assert procedure_to_dict(scheduler.get(proc.id))["status"] == "CANCELLED"
    with pytest.raises(TransitionError):
        scheduler.cancel(proc.id, "again", actor="desk")
    with pytest.raises(TransitionError):
        scheduler.update(proc.id, {"priority": "LOW"}, actor="desk")
    with pytest.raises(ValidationError):
        scheduler.cancel(scheduler.book(row(patient_id="P2"), "d").id, "r" * 1025, "desk")
    with pytest.raises(NotFound):
        scheduler.cancel(123456, "", actor="desk")


ALLOWED = [
    ("SCHEDULED", "IN_PROGRESS"),
    ("SCHEDULED", "CANCELLED"),
    ("SCHEDULED", "DISCONTINUED"),
    ("IN_PROGRESS", "COMPLETED"),
    ("IN_PROGRESS", "DISCONTINUED"),
]
REFUSED = [
    ("SCHEDULED", "COMPLETED"),
    ("SCHEDULED", "SCHEDULED"),
    ("IN_PROGRESS", "SCHEDULED"),
    ("IN_PROGRESS", "CANCELLED"),
    ("COMPLETED", "IN_PROGRESS"),
    ("COMPLETED", "CANCELLED"),
    ("CANCELLED", "SCHEDULED"),
    ("CANCELLED", "IN_PROGRESS"),
    ("DISCONTINUED", "COMPLETED"),
]
PATH = {
    "SCHEDULED": [],
    "IN_PROGRESS": ["IN_PROGRESS"],
    "COMPLETED": ["IN_PROGRESS", "COMPLETED"],
    "CANCELLED": ["CANCELLED"],
    "DISCONTINUED": ["DISCONTINUED"],
}


def _booked_in(scheduler: Scheduler, status: str) -> int:
    proc_id = scheduler.book(row(), actor="desk").id
    for step in PATH[status]:
        scheduler.set_status(proc_id, step, "desk")
    assert scheduler.get(proc_id).status == status
    return proc_id


@pytest.mark.parametrize(("start", "target"), ALLOWED)
def test_allowed_transitions(scheduler: Scheduler, start: str, target: str) -> None:
    proc_id = _booked_in(scheduler, start)
    assert scheduler.set_status(proc_id, target, "desk").status == target
    assert scheduler.get(proc_id).status == target


@pytest.mark.parametrize(("start", "target"), REFUSED)
def test_refused_transitions(scheduler: Scheduler, start: str, target: str) -> None:
    proc_id = _booked_in(scheduler, start)
    with pytest.raises(TransitionError):
        scheduler.set_status(proc_id, target, "desk")
    assert scheduler.get(proc_id).status == start


# -- the audit log ----------------------------------------------------------------------


def audit_rows(scheduler: Scheduler) -> list[AuditEntry]:
    with scheduler.session_factory() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_every_change_audited(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(accession_number="ACC1"), actor="alice")
    entries = audit_rows(scheduler)
    assert {(e.actor, e.action, e.entity, e.entity_id) for e in entries} == {
        ("alice", "create", "patient", "P1"),
        ("alice", "create", "station", "XRAY1"),
        ("alice", "create", "procedure", str(proc.id)),
    }
    created = next(e for e in entries if e.entity == "procedure")
    detail = json.loads(created.detail)
    assert detail["accession_number"] == "ACC1"
    assert detail["scheduled_start"] == "2026-11-26T09:30"

    scheduler.update(proc.id, {"priority": "LOW", "patient_sex": "F"}, actor="bob")
    new = audit_rows(scheduler)[len(entries) :]
    assert {(e.actor, e.action, e.entity) for e in new} == {
        ("bob", "update", "procedure"),
        ("bob", "update", "patient"),
    }
    by_entity = {e.entity: json.loads(e.detail) for e in new}
    assert by_entity["procedure"] == {"priority": ["", "LOW"]}
    assert by_entity["patient"] == {"patient_sex": ["", "F"]}

    before = len(audit_rows(scheduler))
    scheduler.update(proc.id, {"priority": "LOW"}, actor="bob")  # no change, no row
    assert len(audit_rows(scheduler)) == before

    scheduler.cancel(proc.id, "no show", actor="carol")
    last = audit_rows(scheduler)[-1]
    assert (last.actor, last.action, last.entity, last.entity_id) == (
        "carol",
        "status",
        "procedure",
        str(proc.id),
    )
    assert json.loads(last.detail) == {"status": ["SCHEDULED", "CANCELLED"], "reason": "no show"}


def test_refused_change_not_audited(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(), actor="alice")
    before = len(audit_rows(scheduler))
    with pytest.raises(TransitionError):
        scheduler.set_status(proc.id, "COMPLETED", "alice")
    with pytest.raises(ValidationError):
        scheduler.update(proc.id, {"modality": "?"}, actor="alice")
    assert len(audit_rows(scheduler)) == before


def test_audit_log_refuses_orm_update_and_delete(scheduler: Scheduler) -> None:
    scheduler.book(row(), actor="alice")
    with pytest.raises(AuditLogIsAppendOnly), transaction(scheduler.session_factory) as session:
        entry = session.scalars(select(AuditEntry)).first()
        assert entry is not None
        entry.actor = "mallory"
    with pytest.raises(AuditLogIsAppendOnly), transaction(scheduler.session_factory) as session:
        entry = session.scalars(select(AuditEntry)).first()
        assert entry is not None
        session.delete(entry)
    assert {e.actor for e in audit_rows(scheduler)} == {"alice"}
    assert len(audit_rows(scheduler)) == 3


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"],
)
def test_audit_log_refuses_raw_sql(scheduler: Scheduler, statement: str) -> None:
    scheduler.book(row(), actor="alice")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction(scheduler.session_factory) as session,
    ):
        session.execute(text(statement))
    assert [e.actor for e in audit_rows(scheduler)] == ["alice"] * 3


# -- imports ----------------------------------------------------------------------------


def five_rows() -> list[dict[str, Any]]:
    return [
        row(
            patient_id=f"P{n}",
            patient_name=f"PATIENT^{n}",
            accession_number=f"IMP{n}",
            scheduled_start=f"2026-11-26T{8 + n:02d}:00",
        )
        for n in range(1, 6)
    ]


def counts(scheduler: Scheduler) -> tuple[int, int, int]:
    with scheduler.session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(Procedure)) or 0,
            session.scalar(select(func.count()).select_from(Patient)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def test_import_creates_all(scheduler: Scheduler) -> None:
    progress: list[int] = []
    result = scheduler.import_procedures(five_rows(), actor="import", progress=progress.append)
    assert (result.created, result.updated) == (5, 0)
    assert sum(progress) == 5
    assert [p.accession_number for p in scheduler.list_procedures()] == [
        f"IMP{n}" for n in range(1, 6)
    ]
    assert counts(scheduler)[:2] == (5, 5)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"scheduled_start": "2026-02-30T10:00"}, "scheduled_start"),
        ({"patient_name": ""}, "patient_name"),
        ({"station_ae_title": "BAD\\AE"}, "station_ae_title"),
        ({"accession_number": "IMP1"}, "accession_number"),  # repeats row 1
    ],
)
def test_import_all_or_nothing(scheduler: Scheduler, bad: dict[str, Any], field: str) -> None:
    scheduler.book(row(patient_id="KEEP", accession_number="KEEP"), actor="desk")
    before = counts(scheduler)
    rows = five_rows()
    rows[2].update(bad)
    with pytest.raises(ValidationError) as info:
        scheduler.import_procedures(rows, actor="import")
    assert info.value.row == 3
    assert field in info.value.errors
    assert str(info.value).startswith("row 3: ")
    assert counts(scheduler) == before


def test_import_error_found_in_the_store_writes_nothing(scheduler: Scheduler) -> None:
    """A conflict only the store can see (a UID already used) still rejects everything."""
    scheduler.book(row(patient_id="OTHER", study_instance_uid="1.2.3.4"), actor="desk")
    before = counts(scheduler)
    rows = five_rows()
    rows[3]["study_instance_uid"] = "1.2.3.4"
    with pytest.raises(ValidationError) as info:
        scheduler.import_procedures(rows, actor="import")
    assert info.value.row == 4
    assert set(info.value.errors) == {"study_instance_uid"}
    assert counts(scheduler) == before


def test_reimport_is_idempotent_and_updates(scheduler: Scheduler) -> None:
    scheduler.import_procedures(five_rows(), actor="import")
    first = {p.accession_number: p for p in scheduler.list_procedures()}
    audited = counts(scheduler)[2]

    again = scheduler.import_procedures(five_rows(), actor="import")
    assert (again.created, again.updated) == (0, 5)
    assert counts(scheduler) == (5, 5, audited)  # nothing changed, nothing audited
    second = {p.accession_number: p for p in scheduler.list_procedures()}
    for acc, proc in first.items():
        assert second[acc].id == proc.id
        assert second[acc].study_instance_uid == proc.study_instance_uid

    rows = five_rows()
    rows[1]["scheduled_start"] = "2026-11-30T16:45"
    rows[1]["patient_name"] = "PATIENT^TWO"
    rows.append(row(patient_id="P6", accession_number="IMP6"))
    with pytest.raises(PatientConflict) as conflict:  # a patient changes only on purpose
        scheduler.import_procedures(rows, actor="import")
    assert conflict.value.row == 2
    assert conflict.value.conflicts == {
        "patient_name": {"stored": "PATIENT^2", "sent": "PATIENT^TWO"}
    }
    third = scheduler.import_procedures(rows, actor="import", update_patients=True)
    assert (third.created, third.updated) == (1, 5)
    moved = {p.accession_number: p for p in scheduler.list_procedures()}["IMP2"]
    assert moved.id == first["IMP2"].id
    assert moved.scheduled_start == dt.datetime(2026, 11, 30, 16, 45)
    assert moved.patient.name == "PATIENT^TWO"
    assert counts(scheduler)[:2] == (6, 6)


def test_reimport_of_cancelled_booking_refused(scheduler: Scheduler) -> None:
    scheduler.import_procedures(five_rows(), actor="import")
    target = next(p for p in scheduler.list_procedures() if p.accession_number == "IMP2")
    scheduler.cancel(target.id, "", actor="desk")
    before = counts(scheduler)
    rows = five_rows()
    rows[0]["priority"] = "HIGH"
    with pytest.raises(ValidationError) as info:
        scheduler.import_procedures(rows, actor="import")
    assert info.value.row == 2
    assert counts(scheduler) == before
    assert scheduler.get(target.id).status == "CANCELLED"
    first = next(p for p in scheduler.list_procedures() if p.accession_number == "IMP1")
    assert first.priority == ""


def test_import_generates_unique_accessions(scheduler: Scheduler) -> None:
    rows = [row(patient_id=f"G{n}") for n in range(50)]
    result = scheduler.import_procedures(rows, actor="import")
    assert result.created == 50
    accessions = {p.accession_number for p in scheduler.list_procedures()}
    assert len(accessions) == 50
    assert all(len(a) <= 16 for a in accessions)


def test_list_procedures_by_day(scheduler: Scheduler) -> None:
    scheduler.book(row(accession_number="D1", scheduled_start="2026-11-26T23:59"), "d")
    scheduler.book(row(accession_number="D2", scheduled_start="2026-11-27T00:00"), "d")
    scheduler.book(row(accession_number="D0", scheduled_start="2026-11-26T00:00"), "d")
    day = [p.accession_number for p in scheduler.list_procedures(dt.date(2026, 11, 26))]
    assert day == ["D0", "D1"]
    assert [p.accession_number for p in scheduler.list_procedures()] == ["D0", "D1", "D2"]


def test_station_created_by_a_concurrent_booking(scheduler: Scheduler) -> None:
    """Two first bookings for one new station at once: the second uses the first's row."""
    from clinic.domain.bookings import _Lookups

    booking = {
        "patient_id": "RACE1",
        "patient_name": "RACE^ONE",
        "modality": "CR",
        "station_ae_title": "NEWST",
        "scheduled_start": "2026-11-26T09:00",
    }
    with scheduler.session_factory() as session, session.begin():
        lookups = _Lookups(session)
        lookups._load_stations()  # this booking saw no station NEWST ...
        scheduler.book({**booking, "patient_id": "RACE2"}, actor="other")  # ... then it appeared
        lookups.ensure_station("NEWST", "CR", "test")
    with scheduler.session_factory() as session:
        stations = session.scalars(select(Station).where(Station.ae_title == "NEWST")).all()
        creations = session.scalars(
            select(AuditEntry).where(
                AuditEntry.entity == "station", AuditEntry.entity_id == "NEWST"
            )
        ).all()
    assert len(stations) == 1
    assert [entry.actor for entry in creations] == ["other"]
