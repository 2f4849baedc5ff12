"""The procedure catalog and the stations: what the front desk books, and where.

Both are small reference tables kept by administrators; every change is audited.
No Flask and no DICOM network here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.config import CHARACTER_SETS
from clinic.domain import vr
from clinic.domain.audit import audit
from clinic.domain.codes import LOCAL_SCHEME, Code, code_of
from clinic.domain.errors import NotFound, ValidationError
from clinic.store.db import transaction
from clinic.store.models import CatalogEntry, Procedure, Station

MAX_DURATION_MINUTES = 24 * 60
#: The catalog's code columns beside ``code`` (the procedure's Code Value), with their VR checks.
_CODE_FIELDS = (
    ("code_scheme", vr.check_sh),
    ("code_meaning", vr.check_lo),
    ("protocol_code_value", vr.check_sh),
    ("protocol_code_scheme", vr.check_sh),
    ("protocol_code_meaning", vr.check_lo),
)


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value).strip()


#: The longest preparation text a procedure may have (it must fit on the slip).
MAX_PREPARATION_LENGTH = 600


def clean_catalog_entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a catalog entry's fields.

    Parameters
    ----------
    raw : Mapping
        ``code``, ``description``, ``modality``, ``default_station``,
        ``duration_minutes``, ``active`` and, optionally, ``preparation`` (what the
        patient is to do before the exam, printed on the slip).

    Returns
    -------
    dict
        The typed values.

    Raises
    ------
    ValidationError
        Naming each bad field.
    """
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    code = _text(raw, "code").upper()
    out["code"] = code
    if not code:
        errors["code"] = "is required"
    else:
        problem = vr.check_sh(code)
        if problem:
            errors["code"] = problem
    description = _text(raw, "description")
    out["description"] = description
    problem = vr.check_lo(description) or (None if description else "is required")
    if problem:
        errors["description"] = problem
    modality = _text(raw, "modality").upper()
    out["modality"] = modality
    problem = vr.check_cs(modality) or (None if modality else "is required")
    if problem:
        errors["modality"] = problem
    station = _text(raw, "default_station")
    out["default_station"] = station
    if station:
        problem = vr.check_ae(station)
        if problem:
            errors["default_station"] = problem
    duration = _text(raw, "duration_minutes") or "15"
    try:
        minutes = int(duration)
    except ValueError:
        errors["duration_minutes"] = "must be a whole number of minutes"
    else:
        if not 1 <= minutes <= MAX_DURATION_MINUTES:
            errors["duration_minutes"] = f"must be between 1 and {MAX_DURATION_MINUTES}"
        out["duration_minutes"] = minutes
    for key, check in _CODE_FIELDS:
        value = _text(raw, key)
        if key.endswith("scheme"):
            value = value.upper()
        out[key] = value
        problem = check(value) if value else None
        if problem:
            errors[key] = problem
    if not out["protocol_code_value"] and (
        out["protocol_code_scheme"] or out["protocol_code_meaning"]
    ):
        errors["protocol_code_value"] = "is required when a protocol scheme or meaning is given"
    if "preparation" in raw:
        preparation = str(raw.get("preparation") or "").strip().replace("\r\n", "\n")
        out["preparation"] = preparation
        if len(preparation) > MAX_PREPARATION_LENGTH:
            errors["preparation"] = f"is too long ({MAX_PREPARATION_LENGTH} characters at most)"
    active = raw.get("active", True)
    out["active"] = (
        active
        if isinstance(active, bool)
        else str(active).lower()
        in (
            "1",
            "true",
            "on",
            "yes",
            "y",
        )
    )
    if errors:
        raise ValidationError(errors)
    return out


def clean_station(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a station's fields (``ae_title``, ``modality``, ``name``, ``location``,
    ``character_set``).

    Raises
    ------
    ValidationError
        Naming each bad field.
    """
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    ae = _text(raw, "ae_title")
    out["ae_title"] = ae
    problem = vr.check_ae(ae)
    if problem:
        errors["ae_title"] = problem
    modality = _text(raw, "modality").upper()
    out["modality"] = modality
    problem = vr.check_cs(modality)
    if problem:
        errors["modality"] = problem
    for key in ("name", "location"):
        value = _text(raw, key)
        out[key] = value
        problem = vr.check_sh(value)
        if problem:
            errors[key] = problem
    charset = _text(raw, "character_set")
    out["character_set"] = charset
    if charset and charset not in CHARACTER_SETS:
        errors["character_set"] = f"must be empty or one of {', '.join(CHARACTER_SETS)}"
    if errors:
        raise ValidationError(errors)
    return out


def procedure_code(entry: CatalogEntry) -> Code:
    """The entry's procedure code: its ``code``, in the clinic's scheme unless another is set."""
    return Code(
        entry.code, entry.code_scheme or LOCAL_SCHEME, entry.code_meaning or entry.description
    )


def protocol_code(entry: CatalogEntry) -> Code | None:
    """The entry's protocol code, or ``None`` when it has none."""
    return code_of(
        entry.protocol_code_value,
        entry.protocol_code_scheme,
        entry.protocol_code_meaning or entry.description,
    )


def _active_entries(session: Session) -> list[CatalogEntry]:
    """The active catalog, loaded once per transaction (an import books many rows)."""
    cached: list[CatalogEntry] | None = session.info.get("catalog_entries")
    if cached is None:
        # No autoflush: a booking being built may hang half-made off its patient.
        with session.no_autoflush:
            cached = list(
                session.scalars(
                    select(CatalogEntry)
                    .where(CatalogEntry.active.is_(True))
                    .order_by(CatalogEntry.code)
                )
            )
        session.info["catalog_entries"] = cached
    return cached


def codes_from_catalog(session: Session, cleaned: Mapping[str, Any]) -> dict[str, Any]:
    """Fill a new booking's absent procedure and protocol codes from the catalog.

    A booking with a procedure code takes the protocol code of the catalog entry with
    that code (value and scheme). A booking without one takes both codes of the active
    entry whose description is the booking's (ignoring case) for the same modality.

    Parameters
    ----------
    session : Session
        The booking's transaction.
    cleaned : Mapping
        The booking's validated fields.

    Returns
    -------
    dict
        ``procedure_code`` and ``protocol_code`` as given or found (absent when neither).
    """
    out: dict[str, Any] = {
        k: cleaned[k] for k in ("procedure_code", "protocol_code") if cleaned.get(k)
    }
    if "procedure_code" in out and "protocol_code" in out:
        return out
    entries = _active_entries(session)
    entry: CatalogEntry | None = None
    given: Code | None = out.get("procedure_code")
    if given is not None:
        entry = _entry_with_code(entries, given)
    else:
        description = str(cleaned.get("procedure_description", "")).casefold()
        modality = cleaned.get("modality", "")
        if description:
            entry = next(
                (
                    e
                    for e in entries
                    if e.description.casefold() == description and e.modality == modality
                ),
                None,
            )
        if entry is not None:
            out["procedure_code"] = procedure_code(entry)
    if entry is not None and "protocol_code" not in out:
        found = protocol_code(entry)
        if found is not None:
            out["protocol_code"] = found
    return out


def codes_for_change(session: Session, cleaned: Mapping[str, Any]) -> dict[str, Any]:
    """The codes an update sets: those sent, and the protocol of a new catalog code.

    A changed procedure code that is a catalog entry's brings that entry's protocol code
    along, unless the update sends a protocol code itself. ``None`` clears a code.
    """
    out: dict[str, Any] = {
        k: cleaned[k] for k in ("procedure_code", "protocol_code") if k in cleaned
    }
    given: Code | None = out.get("procedure_code")
    if given is not None and "protocol_code" not in out:
        entry = _entry_with_code(_active_entries(session), given)
        found = protocol_code(entry) if entry is not None else None
        if found is not None:
            out["protocol_code"] = found
    return out


def _entry_with_code(entries: list[CatalogEntry], code: Code) -> CatalogEntry | None:
    for entry in entries:
        own = procedure_code(entry)
        if (own.value, own.scheme) == (code.value, code.scheme):
            return entry
    return None


def _columns(key: str, code: Code | None) -> dict[str, str]:
    prefix = key.removesuffix("_code")
    return {
        f"{prefix}_code_value": code.value if code else "",
        f"{prefix}_code_scheme": code.scheme if code else "",
        f"{prefix}_code_meaning": code.meaning if code else "",
    }


def code_columns(values: Mapping[str, Any]) -> dict[str, str]:
    """A new booking's six code columns from ``procedure_code`` and ``protocol_code``.

    Absent codes give empty columns, so every row of a bulk insert has the same keys.
    """
    out: dict[str, str] = {}
    for key in ("procedure_code", "protocol_code"):
        out.update(_columns(key, values.get(key)))
    return out


def set_codes(proc: Procedure, values: Mapping[str, Any]) -> None:
    """Store the ``procedure_code`` and ``protocol_code`` of ``values`` that are present.

    ``None`` (a cleared field) removes the code.
    """
    for key in ("procedure_code", "protocol_code"):
        if key in values:
            for column, value in _columns(key, values[key]).items():
                setattr(proc, column, value)


class Catalog:
    """Reads and changes the procedure catalog and the stations.

    Parameters
    ----------
    session_factory : sessionmaker
        The store.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    # -- catalog ---------------------------------------------------------------------

    def entries(self, *, active_only: bool = False) -> list[CatalogEntry]:
        """Return the catalog by code (only active entries when asked)."""
        stmt = select(CatalogEntry).order_by(CatalogEntry.code)
        if active_only:
            stmt = stmt.where(CatalogEntry.active.is_(True))
        with self.session_factory() as session:
            return list(session.scalars(stmt))

    def entry(self, code: str) -> CatalogEntry | None:
        """Return the entry with ``code``, or ``None``."""
        with self.session_factory() as session:
            return session.scalar(select(CatalogEntry).where(CatalogEntry.code == code))

    def preparation_for(self, description: str, modality: str) -> str:
        """The preparation text of the catalog procedure a booking was made from.

        Bookings carry the catalog entry's description and modality; ``""`` when no
        entry has them (a procedure typed by hand).
        """
        with self.session_factory() as session:
            text = session.scalar(
                select(CatalogEntry.preparation)
                .where(
                    CatalogEntry.description == description,
                    CatalogEntry.modality == modality,
                )
                .order_by(CatalogEntry.active.desc(), CatalogEntry.id)
                .limit(1)
            )
            return text or ""

    def get_entry(self, entry_id: int) -> CatalogEntry:
        """Return the entry with ``entry_id``; raise :class:`NotFound` if none."""
        with self.session_factory() as session:
            found = session.get(CatalogEntry, entry_id)
            if found is None:
                raise NotFound(entry_id)
            return found

    def save_entry(
        self, raw: Mapping[str, Any], actor: str, entry_id: int | None = None
    ) -> CatalogEntry:
        """Create an entry (``entry_id`` None) or change one; audited.

        Raises
        ------
        ValidationError, NotFound
        """
        cleaned = clean_catalog_entry(raw)
        with transaction(self.session_factory) as session:
            clash = session.scalar(
                select(CatalogEntry.id).where(CatalogEntry.code == cleaned["code"])
            )
            if clash is not None and clash != entry_id:
                raise ValidationError({"code": "is already in the catalog"})
            if entry_id is None:
                entry = CatalogEntry(**cleaned)
                session.add(entry)
                session.flush()
                audit(session, actor, "create", "catalog", entry.code, cleaned)
                return entry
            found = session.get(CatalogEntry, entry_id)
            if found is None:
                raise NotFound(entry_id)
            changes = {
                k: [getattr(found, k), v] for k, v in cleaned.items() if getattr(found, k) != v
            }
            for key, value in cleaned.items():
                setattr(found, key, value)
            if changes:
                audit(session, actor, "update", "catalog", found.code, changes)
            return found

    # -- stations --------------------------------------------------------------------

    def stations(self) -> list[Station]:
        """Return every station by AE title."""
        with self.session_factory() as session:
            return list(session.scalars(select(Station).order_by(Station.ae_title)))

    def get_station(self, station_id: int) -> Station:
        """Return the station with ``station_id``; raise :class:`NotFound` if none."""
        with self.session_factory() as session:
            found = session.get(Station, station_id)
            if found is None:
                raise NotFound(station_id)
            return found

    def save_station(
        self, raw: Mapping[str, Any], actor: str, station_id: int | None = None
    ) -> Station:
        """Create a station (``station_id`` None) or change one; audited.

        The AE title of an existing station cannot change (bookings refer to it).

        Raises
        ------
        ValidationError, NotFound
        """
        cleaned = clean_station(raw)
        with transaction(self.session_factory) as session:
            if station_id is None:
                clash = session.scalar(
                    select(Station.id).where(Station.ae_title == cleaned["ae_title"])
                )
                if clash is not None:
                    raise ValidationError({"ae_title": "is already a station"})
                station = Station(**cleaned)
                session.add(station)
                session.flush()
                audit(session, actor, "create", "station", station.ae_title, cleaned)
                return station
            found = session.get(Station, station_id)
            if found is None:
                raise NotFound(station_id)
            if cleaned["ae_title"] != found.ae_title:
                raise ValidationError({"ae_title": "cannot change; create a new station instead"})
            changes = {
                k: [getattr(found, k), v] for k, v in cleaned.items() if getattr(found, k) != v
            }
            for key, value in cleaned.items():
                setattr(found, key, value)
            if changes:
                audit(session, actor, "update", "station", found.ae_title, changes)
            return found
