"""A patient's record: details, contact, every booking (past and upcoming), print jobs.

Contact details (phone, e-mail) are optional, kept for the front desk and never sent
to a modality; every change is audited with before and after. No Flask here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.audit import audit
from clinic.domain.errors import NotFound, ValidationError
from clinic.domain.fields import procedure_to_dict
from clinic.domain.print_jobs import job_to_dict
from clinic.store.db import transaction
from clinic.store.models import Patient, PrintJob, Procedure

PHONE_MAX = 32
EMAIL_MAX = 254
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CONTACT_FIELDS = ("phone", "email")


@dataclass
class PatientRecord:
    """One patient with their bookings (by start) and the print jobs filed with them."""

    patient: Patient
    bookings: list[Procedure]
    print_jobs: list[PrintJob]


def record(session_factory: sessionmaker[Session], patient_id: str) -> PatientRecord:
    """Return the record of ``patient_id``.

    Raises
    ------
    NotFound
        No patient has that ID.
    """
    with session_factory() as session:
        patient = session.scalar(select(Patient).where(Patient.patient_id == patient_id))
        if patient is None:
            raise NotFound(patient_id)
        bookings = list(
            session.scalars(
                select(Procedure)
                .where(Procedure.patient_pk == patient.id)
                .order_by(Procedure.scheduled_start, Procedure.id)
            ).unique()
        )
        jobs = list(
            session.scalars(
                select(PrintJob)
                .join(Procedure, PrintJob.procedure_id == Procedure.id)
                .where(Procedure.patient_pk == patient.id)
                .order_by(PrintJob.id.desc())
            ).unique()
        )
    return PatientRecord(patient, bookings, jobs)


def record_to_dict(rec: PatientRecord) -> dict[str, Any]:
    """The record as the REST API answers it: details, ``bookings`` and ``print_jobs``."""
    patient = rec.patient
    return {
        "patient_id": patient.patient_id,
        "patient_name": patient.name,
        "patient_birth_date": patient.birth_date.isoformat() if patient.birth_date else "",
        "patient_sex": patient.sex,
        "phone": patient.phone,
        "email": patient.email,
        "bookings": [procedure_to_dict(p) for p in rec.bookings],
        "print_jobs": [job_to_dict(j) for j in rec.print_jobs],
    }


def clean_contact(raw: Mapping[str, Any]) -> dict[str, str]:
    """Validate ``phone`` and ``email`` (either may be empty, which clears it).

    Raises
    ------
    ValidationError
        Naming each bad field (or an unknown one).
    """
    errors: dict[str, str] = {}
    out: dict[str, str] = {}
    for key, value in raw.items():
        if key not in CONTACT_FIELDS:
            errors[str(key)] = "is not a known field"
            continue
        if value is not None and not isinstance(value, str):
            errors[key] = "must be text"
            continue
        text = (value or "").strip()
        if key == "phone" and text:
            if len(text) > PHONE_MAX:
                errors[key] = f"must be at most {PHONE_MAX} characters"
            elif not _PHONE.match(text):
                errors[key] = "may hold only digits, spaces, + ( ) . / and -"
        if key == "email" and text:
            if len(text) > EMAIL_MAX:
                errors[key] = f"must be at most {EMAIL_MAX} characters"
            elif not _EMAIL.match(text):
                errors[key] = "is not an e-mail address (name@example.org)"
        out[key] = text
    if errors:
        raise ValidationError(errors)
    return out


def update_contact(
    session_factory: sessionmaker[Session],
    patient_id: str,
    raw: Mapping[str, Any],
    actor: str,
) -> Patient:
    """Change a patient's phone and e-mail; audited with before and after.

    Raises
    ------
    NotFound, ValidationError
    """
    cleaned = clean_contact(raw)
    with transaction(session_factory) as session:
        patient = session.scalar(
            select(Patient).where(Patient.patient_id == patient_id).with_for_update()
        )
        if patient is None:
            raise NotFound(patient_id)
        changes = {
            key: [getattr(patient, key), value]
            for key, value in cleaned.items()
            if getattr(patient, key) != value
        }
        for key, value in cleaned.items():
            setattr(patient, key, value)
        if changes:
            audit(session, actor, "update", "patient", patient_id, changes)
        return patient
