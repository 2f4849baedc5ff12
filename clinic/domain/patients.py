"""Finding patients the way a front desk asks, and spotting likely duplicates.

A search text may be a name (any order of its parts, case and accents ignored,
``*`` and ``?`` wildcards allowed), a Patient ID, or a birth date. No Flask here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.audit import audit
from clinic.domain.errors import NotFound, ValidationError
from clinic.domain.names import fold_ascii
from clinic.store.db import transaction
from clinic.store.models import AuditEntry, Patient, Procedure

_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%d.%m.%Y", "%d/%m/%Y")
_SPLIT = re.compile(r"[\s,^]+")
_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def printable_text(text: str) -> str:
    """``text`` without control characters (NUL, CR, LF, DEL, C1 ...), ends stripped.

    A NUL ends the text for SQLite's LIKE, so ``%00`` alone became a pattern that
    matches every patient; PostgreSQL refuses it outright.
    """
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc").strip()


def parse_birth_date(text: str) -> dt.date | None:
    """Return the date written in ``text`` (``YYYY-MM-DD``, ``YYYYMMDD``, ``DD.MM.YYYY``,
    ``DD/MM/YYYY``), or ``None`` when it is not a date."""
    text = text.strip()
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _like(token: str) -> str:
    """Turn a search word with ``*``/``?`` into a LIKE pattern (``\\`` escapes)."""
    escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped.replace("*", "%").replace("?", "_") + "%"


def name_condition(text: str) -> ColumnElement[bool] | None:
    """Return the SQL condition "every word of ``text`` is in the folded name".

    Returns ``None`` when ``text`` has no word.
    """
    words = [w for w in _SPLIT.split(fold_ascii(text)) if w.strip("*?")]
    if not words:
        return None
    return and_(*(Patient.name_ascii.like(_like(w), escape="\\") for w in words))


def search_patients(
    session_factory: sessionmaker[Session],
    text: str = "",
    *,
    birth_date: dt.date | None = None,
    limit: int = 50,
) -> list[Patient]:
    """Find patients by name, Patient ID or birth date.

    Parameters
    ----------
    session_factory : sessionmaker
        The store.
    text : str
        A name (``müller hans``, ``MUL*``, ``Doe, J``), a Patient ID, or a birth
        date; a date searches by birth date, anything else by name or ID.
    birth_date : date, optional
        Only patients born that day.
    limit : int
        At most this many, by name.

    Returns
    -------
    list of Patient
        Control characters in ``text`` are ignored.
    """
    text = printable_text(text)
    conditions: list[ColumnElement[bool]] = []
    as_date = parse_birth_date(text) if text else None
    if as_date is not None:
        conditions.append(Patient.birth_date == as_date)
    elif text:
        by_name = name_condition(text)
        by_id = Patient.patient_id == text
        conditions.append(or_(by_id, by_name) if by_name is not None else by_id)
    if birth_date is not None:
        conditions.append(Patient.birth_date == birth_date)
    if not conditions:
        return []
    stmt = select(Patient).where(*conditions).order_by(Patient.name_ascii, Patient.id).limit(limit)
    with session_factory() as session:
        return list(session.scalars(stmt))


def get_patient(session_factory: sessionmaker[Session], patient_id: str) -> Patient | None:
    """Return the patient with this Patient ID, or ``None``."""
    with session_factory() as session:
        return session.scalar(select(Patient).where(Patient.patient_id == patient_id))


_UMLAUT_SPELLING = re.compile(r"(?<=[AOU])E")
_NOT_LETTER = re.compile(r"[^A-Z]")


def loose_key(component: str) -> str:
    """Fold one name component so that the ways people write it compare equal.

    Accents and case are ignored, German umlauts written out match the plain and the
    accented letter (``Müller`` = ``Mueller`` = ``Muller``), ``ß`` = ``ss`` = ``s``, and
    anything but letters is dropped (``O'Brien`` = ``OBrien``, ``Hans-Peter`` = ``Hans Peter``).
    """
    text = _NOT_LETTER.sub("", fold_ascii(component))
    return _UMLAUT_SPELLING.sub("", text).replace("SS", "S")


def _name_parts(name: str) -> tuple[str, str]:
    """The loose family name and the loose given names of a DICOM person name."""
    family, _, given = name.split("=", 1)[0].partition("^")
    return loose_key(family), loose_key(given.replace("^", " "))


def _given_compatible(first: str, second: str) -> bool:
    """Given names agree: equal, or one is the start of the other (``H``, ``HANS``)."""
    return not first or not second or first.startswith(second) or second.startswith(first)


def nearby_birth_dates(day: dt.date) -> set[dt.date]:
    """Dates a typing slip can turn ``day`` into: day and month swapped, one digit off."""
    digits = day.strftime("%Y%m%d")
    out: set[dt.date] = set()
    candidates = [digits[:4] + digits[6:8] + digits[4:6]]
    for i, old in enumerate(digits):
        candidates.extend(digits[:i] + new + digits[i + 1 :] for new in "0123456789" if new != old)
    for text in candidates:
        try:
            out.add(dt.datetime.strptime(text, "%Y%m%d").date())
        except ValueError:
            continue
    out.discard(day)
    return out


def duplicate_reasons(
    name: str, birth_date: dt.date | None, other_name: str, other_birth: dt.date | None
) -> list[str]:
    """Why a stored patient is probably the same person as the one being booked.

    Parameters
    ----------
    name, birth_date : str, date or None
        The patient being booked.
    other_name, other_birth : str, date or None
        A stored patient.

    Returns
    -------
    list of str
        Plain-word reasons; empty when the two are not likely the same person.
    """
    family, given = _name_parts(name)
    other_family, other_given = _name_parts(other_name)
    if not family or not other_family:
        return []
    same_family = family == other_family
    same_name = same_family and _given_compatible(given, other_given)
    swapped = bool(given) and family == other_given and given == other_family
    if birth_date is None or other_birth is None:
        if same_family and given == other_given:
            return ["same name, birth date unknown"]
        return []
    if birth_date == other_birth:
        if same_name:
            return ["same name and birth date"]
        if swapped:
            return ["given and family names swapped, same birth date"]
        if same_family:
            return ["same family name and birth date"]
        return []
    if other_birth not in nearby_birth_dates(birth_date):
        return []
    close = (
        "birth date with day and month swapped"
        if (birth_date.day, birth_date.month) == (other_birth.month, other_birth.day)
        else "birth date one digit off"
    )
    if same_name:
        return [f"same name, {close}"]
    if swapped:
        return [f"given and family names swapped, {close}"]
    return []


@dataclass(frozen=True)
class LikelyDuplicate:
    """A stored patient who is probably the person being booked, and why."""

    patient_id: str
    name: str
    birth_date: dt.date | None
    sex: str
    reasons: tuple[str, ...]


def likely_duplicates(
    session_factory: sessionmaker[Session],
    name: str,
    birth_date: dt.date | None,
    *,
    exclude_patient_id: str = "",
    limit: int = 10,
) -> list[LikelyDuplicate]:
    """Return existing patients who are probably the same person as a new one.

    Names match however they are written (accents, umlauts spelt out, ``ß``, case,
    punctuation; see :func:`loose_key`), also with given and family names swapped;
    birth dates match exactly, with day and month swapped, or one digit off
    (:func:`nearby_birth_dates`); a patient without a birth date matches on the whole
    name. See :func:`duplicate_reasons` for the rules.
    """
    family, given = _name_parts(name)
    if not family:
        return []
    initials = {family[0]} | ({given[0]} if given else set())
    # Candidates by a cheap, indexed filter; the rules above then decide.
    by_initial = or_(*(Patient.name_ascii.like(f"{letter}%") for letter in sorted(initials)))
    if birth_date is not None:
        dates = sorted({birth_date} | nearby_birth_dates(birth_date))
        cond = or_(Patient.birth_date.in_(dates), and_(Patient.birth_date.is_(None), by_initial))
    else:
        cond = by_initial
    stmt = select(Patient).where(cond)
    if exclude_patient_id:
        stmt = stmt.where(Patient.patient_id != exclude_patient_id)
    found: list[LikelyDuplicate] = []
    with session_factory() as session:
        for candidate in session.scalars(stmt.order_by(Patient.id).limit(5000)):
            reasons = duplicate_reasons(name, birth_date, candidate.name, candidate.birth_date)
            if reasons:
                found.append(
                    LikelyDuplicate(
                        candidate.patient_id,
                        candidate.name,
                        candidate.birth_date,
                        candidate.sex,
                        tuple(reasons),
                    )
                )
                if len(found) >= limit:
                    break
    return found


def new_patient_id() -> str:
    """Return a new Patient ID for a patient the clinic has not seen (``P`` + 9 characters)."""
    return "P" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


def merge_patients(
    session_factory: sessionmaker[Session], keep_id: str, merge_id: str, actor: str
) -> list[int]:
    """Merge patient ``merge_id`` into ``keep_id``: one person recorded twice becomes one.

    The merged patient's bookings move to the kept patient (their performed steps and
    print jobs hang on the bookings and move with them), so the worklist answers them
    under the kept patient at once; the merged patient's record is removed and its
    details stay in the audit log.

    Parameters
    ----------
    session_factory : sessionmaker
        The store.
    keep_id, merge_id : str
        Patient IDs of the record that stays and of the one merged into it.
    actor : str
        Who merges, for the audit log.

    Returns
    -------
    list of int
        The ids of the bookings that moved.

    Raises
    ------
    NotFound
        When either patient ID is not stored.
    ValidationError
        When both are the same patient.
    """
    if keep_id == merge_id:
        raise ValidationError({"patient_id": "a patient cannot be merged into itself"})
    with transaction(session_factory) as session:
        found = {
            p.patient_id: p
            for p in session.scalars(
                select(Patient).where(Patient.patient_id.in_([keep_id, merge_id])).with_for_update()
            )
        }
        for pid in (keep_id, merge_id):
            if pid not in found:
                raise NotFound(pid)
        keep, merged = found[keep_id], found[merge_id]
        moved = list(session.scalars(select(Procedure.id).where(Procedure.patient_pk == merged.id)))
        session.execute(
            update(Procedure).where(Procedure.patient_pk == merged.id).values(patient_pk=keep.id)
        )
        details = {
            "patient_name": merged.name,
            "patient_birth_date": merged.birth_date,
            "patient_sex": merged.sex,
        }
        audit(
            session,
            actor,
            "merge",
            "patient",
            keep.patient_id,
            {"merged_patient_id": merged.patient_id, "merged": details, "procedures": moved},
        )
        audit(
            session,
            actor,
            "delete",
            "patient",
            merged.patient_id,
            {"merged_into": keep.patient_id, **details},
        )
        session.delete(merged)
        return moved


@dataclass(frozen=True)
class PatientChange:
    """One audited change of a patient's record: who, when, what, before and after."""

    at: dt.datetime
    actor: str
    action: str
    changes: dict[str, tuple[Any, Any]]
    note: str


def patient_history(
    session_factory: sessionmaker[Session], patient_id: str, limit: int = 50
) -> list[PatientChange]:
    """Return the audited changes of one patient's details, newest first.

    Each update lists its fields with the values before and after; a creation, a
    merge or a contact change is described in ``note``.
    """
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.entity == "patient", AuditEntry.entity_id == patient_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    out: list[PatientChange] = []
    with session_factory() as session:
        for entry in session.scalars(stmt):
            try:
                detail = json.loads(entry.detail)
            except ValueError:
                detail = {}
            changes: dict[str, tuple[Any, Any]] = {}
            note = ""
            if isinstance(detail, dict):
                for key, value in detail.items():
                    if isinstance(value, list) and len(value) == 2:
                        changes[key] = (value[0], value[1])
                if entry.action == "merge":
                    note = f"record {detail.get('merged_patient_id', '')} merged into this one"
                elif entry.action == "create":
                    note = "registered"
            out.append(PatientChange(entry.at, entry.actor, entry.action, changes, note))
    return out
