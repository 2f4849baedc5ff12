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
from clinic.domain.errors import NotFound, ValidationError
from clinic.store.db import transaction
from clinic.store.models import CatalogEntry, Station

MAX_DURATION_MINUTES = 24 * 60


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
