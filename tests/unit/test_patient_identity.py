"""One patient ID is one person: demographics change only when the caller says so."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from clinic.domain.bookings import Scheduler
from clinic.domain.errors import PatientConflict, ValidationError
from clinic.domain.names import same_name
from clinic.store.models import AuditEntry, Patient, Procedure

BASE = {
    "patient_id": "P1",
    "patient_name": "MÜLLER^JOSÉ",
    "patient_birth_date": "1970-05-01",
    "patient_sex": "M",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": "2026-12-02T09:30",
}


def row(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def patient(scheduler: Scheduler, pid: str = "P1") -> Patient:
    with scheduler.session_factory() as session:
        return session.scalars(select(Patient).where(Patient.patient_id == pid)).one()


def bookings(scheduler: Scheduler) -> int:
    with scheduler.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Procedure)) or 0)


def patient_audit(scheduler: Scheduler) -> list[AuditEntry]:
    with scheduler.session_factory() as session:
        stmt = select(AuditEntry).where(AuditEntry.entity == "patient").order_by(AuditEntry.id)
        return list(session.scalars(stmt))


@pytest.mark.parametrize(
    ("field", "sent", "stored"),
    [
        ("patient_name", "MUELLER^JOSE", "MÜLLER^JOSÉ"),
        ("patient_birth_date", "1970-01-05", "1970-05-01"),
        ("patient_sex", "F", "M"),
    ],
)
def test_other_demographics_are_refused_and_nothing_is_written(
    scheduler: Scheduler, field: str, sent: str, stored: str
) -> None:
    scheduler.book(row(), actor="desk")
    with pytest.raises(PatientConflict) as info:
        scheduler.book(row(**{field: sent}, scheduled_start="2026-12-03T10:00"), actor="desk")
    assert info.value.patient_id == "P1"
    assert info.value.conflicts == {field: {"stored": stored, "sent": sent}}
    assert bookings(scheduler) == 1
    kept = patient(scheduler)
    assert (kept.name, kept.birth_date, kept.sex) == ("MÜLLER^JOSÉ", dt.date(1970, 5, 1), "M")


def test_update_on_purpose_changes_the_patient_for_every_booking_and_is_audited(
    scheduler: Scheduler,
) -> None:
    first = scheduler.book(row(), actor="desk")
    second = scheduler.book(
        row(patient_birth_date="1970-01-05", scheduled_start="2026-12-03T10:00"),
        actor="desk2",
        update_patient=True,
    )
    assert patient(scheduler).birth_date == dt.date(1970, 1, 5)
    assert scheduler.get(first.id).patient.birth_date == dt.date(1970, 1, 5)
    assert scheduler.get(second.id).patient.id == scheduler.get(first.id).patient.id
    change = patient_audit(scheduler)[-1]
    assert (change.actor, change.action, change.entity_id) == ("desk2", "update", "P1")
    assert json.loads(change.detail) == {"patient_birth_date": ["1970-05-01", "1970-01-05"]}


def test_same_person_written_another_way_is_no_conflict(scheduler: Scheduler) -> None:
    scheduler.book(row(patient_name="DOE^JANE^MARIE"), actor="desk")
    # The booking form joins given names with spaces and people type in any case.
    scheduler.book(
        row(patient_name="Doe^Jane Marie", scheduled_start="2026-12-03T10:00"), actor="desk"
    )
    # Fields not sent are not contradicted.
    scheduler.book(
        {k: v for k, v in row(scheduled_start="2026-12-04T10:00").items() if k != "patient_sex"}
        | {"patient_name": "doe^jane^marie", "patient_birth_date": "1970-05-01"},
        actor="desk",
    )
    assert patient(scheduler).name == "DOE^JANE^MARIE"  # the stored spelling stays
    assert bookings(scheduler) == 3


def test_missing_details_are_filled_in_not_refused(scheduler: Scheduler) -> None:
    scheduler.book({k: v for k, v in row().items() if k not in ("patient_sex",)}, actor="a")
    scheduler.book(
        {**row(scheduled_start="2026-12-03T10:00"), "patient_birth_date": "1970-05-01"}, actor="b"
    )
    assert patient(scheduler).sex == "M"
    assert json.loads(patient_audit(scheduler)[-1].detail) == {"patient_sex": ["", "M"]}


def test_patch_naming_other_demographics_is_refused(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(), actor="desk")
    with pytest.raises(PatientConflict):
        scheduler.update(proc.id, {"patient_sex": "F", "notes": "x"}, actor="desk")
    assert scheduler.get(proc.id).notes == ""
    with pytest.raises(PatientConflict):  # clearing a stored birth date changes who it is
        scheduler.update(proc.id, {"patient_birth_date": ""}, actor="desk")
    scheduler.update(proc.id, {"patient_sex": "F"}, actor="desk", update_patient=True)
    assert patient(scheduler).sex == "F"


def test_import_rows_that_disagree_about_one_patient_name_both_rows(
    scheduler: Scheduler,
) -> None:
    rows = [
        row(accession_number="A1"),
        row(patient_id="P2", accession_number="A2"),
        row(accession_number="A3", patient_birth_date="1971-05-01"),
    ]
    with pytest.raises(ValidationError) as info:
        scheduler.import_procedures(rows, actor="import")
    assert info.value.row == 3
    assert info.value.errors == {"patient_birth_date": "differs from row 1 for the same patient_id"}
    assert bookings(scheduler) == 0


def test_import_conflicting_with_the_store(scheduler: Scheduler) -> None:
    scheduler.book(row(accession_number="A0"), actor="desk")
    rows = [
        row(patient_id="P2", accession_number="A1"),
        row(accession_number="A2", patient_sex="F"),
    ]
    with pytest.raises(PatientConflict) as info:
        scheduler.import_procedures(rows, actor="import")
    assert info.value.row == 2
    assert info.value.conflicts == {"patient_sex": {"stored": "M", "sent": "F"}}
    assert bookings(scheduler) == 1
    result = scheduler.import_procedures(rows, actor="import", update_patients=True)
    assert (result.created, result.updated) == (2, 0)
    assert patient(scheduler).sex == "F"


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("DOE^JANE", "doe^jane", True),
        ("DOE^JANE^MARIE", "Doe^Jane Marie", True),
        ("DOE^JANE=ドウ^ジェーン", "DOE^JANE", True),
        ("DOE^JANE^^^", "DOE^JANE", True),
        ("DOE^JANE", "DOE^JOHN", False),
        ("DOE^JANE", "JANE^DOE", False),
        ("MÜLLER^HANS", "MUELLER^HANS", False),
    ],
)
def test_same_name(first: str, second: str, same: bool) -> None:
    assert same_name(first, second) is same


def test_concurrent_bookings_for_one_new_patient_all_succeed(scheduler: Scheduler) -> None:
    """Ten bookings at once for a patient nobody has stored yet: one patient, ten bookings."""
    barrier = threading.Barrier(10)
    failures: list[BaseException] = []

    def book(n: int) -> None:
        barrier.wait()
        try:
            scheduler.book(
                row(patient_id="NEW1", scheduled_start=f"2026-12-02T{8 + n:02d}:00"), actor="api"
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=book, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert bookings(scheduler) == 10
    creations = [a for a in patient_audit(scheduler) if a.action == "create"]
    assert len(creations) == 1


def test_concurrent_bookings_with_other_details_get_a_conflict_not_an_error(
    scheduler: Scheduler,
) -> None:
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def book(n: int) -> None:
        barrier.wait()
        try:
            scheduler.book(
                row(
                    patient_id="NEW2",
                    patient_birth_date=f"1970-05-0{1 + n % 2}",
                    scheduled_start=f"2026-12-02T{8 + n:02d}:00",
                ),
                actor="api",
            )
            outcomes.append("booked")
        except PatientConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=book, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 6
    assert outcomes.count("booked") == 3 and outcomes.count("conflict") == 3
