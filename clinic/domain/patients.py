"""Finding patients the way a front desk asks, and spotting likely duplicates.

A search text may be a name (any order of its parts, case and accents ignored,
``*`` and ``?`` wildcards allowed), a Patient ID, or a birth date. No Flask here.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.names import fold_ascii, name_keys
from clinic.store.models import Patient

_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%d.%m.%Y", "%d/%m/%Y")
_SPLIT = re.compile(r"[\s,^]+")
_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


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
    """
    text = text.strip()
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


def likely_duplicates(
    session_factory: sessionmaker[Session],
    name: str,
    birth_date: dt.date | None,
    *,
    exclude_patient_id: str = "",
) -> list[Patient]:
    """Return existing patients who are probably the same person as a new one.

    Same family name (accents and case ignored) and the same birth date; or the
    same full name when either birth date is unknown.
    """
    _, folded = name_keys(name)
    family = folded.split("^", 1)[0].strip()
    if not family:
        return []
    same_family = or_(
        Patient.name_ascii == family,
        Patient.name_ascii.like(
            family.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "^%",
            escape="\\",
        ),
    )
    if birth_date is not None:
        cond = or_(
            and_(same_family, Patient.birth_date == birth_date),
            and_(Patient.name_ascii == folded, Patient.birth_date.is_(None)),
        )
    else:
        cond = Patient.name_ascii == folded
    stmt = select(Patient).where(cond)
    if exclude_patient_id:
        stmt = stmt.where(Patient.patient_id != exclude_patient_id)
    with session_factory() as session:
        return list(session.scalars(stmt.order_by(Patient.id).limit(10)))


def new_patient_id() -> str:
    """Return a new Patient ID for a patient the clinic has not seen (``P`` + 9 characters)."""
    return "P" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))
