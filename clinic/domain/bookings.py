"""The booking service: book, update, cancel and move bookings through their life cycle.

Every door (worklist, web, REST API, import, HL7) goes through :class:`Scheduler`;
it validates with the field table of :mod:`clinic.domain.fields`, generates missing
identifiers, keeps patients and stations in step with the bookings and audits every
change (:mod:`clinic.domain.audit`). It knows nothing of Flask or of the DICOM network.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain import identifiers
from clinic.domain.audit import audit
from clinic.domain.catalog import codes_from_catalog, set_codes
from clinic.domain.errors import NotFound, TransitionError, ValidationError
from clinic.domain.fields import clean_procedure
from clinic.domain.names import name_keys
from clinic.store.db import transaction
from clinic.store.models import Patient, Procedure, ProcedureStatus, Station

#: Allowed status transitions.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    ProcedureStatus.SCHEDULED: (
        ProcedureStatus.IN_PROGRESS,
        ProcedureStatus.CANCELLED,
        ProcedureStatus.DISCONTINUED,
    ),
    ProcedureStatus.IN_PROGRESS: (ProcedureStatus.COMPLETED, ProcedureStatus.DISCONTINUED),
    ProcedureStatus.COMPLETED: (),
    ProcedureStatus.DISCONTINUED: (),
    ProcedureStatus.CANCELLED: (),
}

_CHUNK = 500  # keeps IN (...) lists under every backend's parameter limit


@dataclass(frozen=True)
class ImportResult:
    """How many bookings an import created and updated."""

    created: int
    updated: int


def transition(
    session: Session, proc: Procedure, status: str, actor: str, reason: str = ""
) -> None:
    """Move ``proc`` to ``status`` in the caller's transaction, auditing the change.

    Raises
    ------
    TransitionError
        When :data:`TRANSITIONS` does not allow the move.
    """
    allowed = TRANSITIONS.get(proc.status, ())
    if status not in allowed:
        raise TransitionError(f"a {proc.status} booking cannot become {status}")
    detail: dict[str, Any] = {"status": [proc.status, status]}
    if reason:
        detail["reason"] = reason
        proc.cancel_reason = reason
    proc.status = str(status)
    audit(session, actor, "status", "procedure", proc.id, detail)


class _Lookups:
    """Patients, stations and accession numbers loaded in bulk for one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.patients: dict[str, Patient] = {}
        self.stations: dict[str, Station] = {}
        self.stations_by_modality: dict[str, list[str]] | None = None
        # Patient IDs a preload found absent from the store: new patients, no query needed.
        self.absent: set[str] = set()

    def preload(self, rows: Sequence[Mapping[str, Any]]) -> None:
        pids = {r["patient_id"] for r in rows if "patient_id" in r} - self.patients.keys()
        for chunk in _chunks(sorted(pids)):
            for p in self.session.scalars(select(Patient).where(Patient.patient_id.in_(chunk))):
                self.patients[p.patient_id] = p
        self.absent = pids - self.patients.keys()
        self._load_stations()

    def _load_stations(self) -> None:
        if self.stations_by_modality is None:
            self.stations_by_modality = {}
            for st in self.session.scalars(select(Station)):
                self.stations[st.ae_title] = st
                self.stations_by_modality.setdefault(st.modality, []).append(st.ae_title)

    def patient(self, patient_id: str) -> Patient | None:
        if patient_id not in self.patients:
            if patient_id in self.absent:
                return None
            found = self.session.scalar(select(Patient).where(Patient.patient_id == patient_id))
            if found is None:
                return None
            self.patients[patient_id] = found
        return self.patients[patient_id]

    def station_for(self, modality: str) -> str | None:
        self._load_stations()
        assert self.stations_by_modality is not None
        candidates = self.stations_by_modality.get(modality, [])
        return candidates[0] if len(candidates) == 1 else None

    def ensure_station(self, ae_title: str, modality: str, actor: str) -> None:
        self._load_stations()
        assert self.stations_by_modality is not None
        if ae_title in self.stations:
            return
        station, created = self._insert_station(ae_title, modality)
        self.stations[ae_title] = station
        self.stations_by_modality.setdefault(station.modality, []).append(ae_title)
        if created:
            audit(self.session, actor, "create", "station", ae_title, {"modality": modality})

    def _insert_station(self, ae_title: str, modality: str) -> tuple[Station, bool]:
        """Insert a station unless a concurrent booking just did; return it and whether new.

        Two first bookings for one new station may run at once (HL7 and the REST API):
        INSERT ... ON CONFLICT DO NOTHING lets the second find the first's row instead of
        failing on the unique AE title.
        """
        dialect = self.session.get_bind().dialect.name
        if dialect not in ("sqlite", "postgresql"):
            station = Station(ae_title=ae_title, modality=modality, name="", location="")
            self.session.add(station)
            return station, True
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        statement = (
            insert(Station)
            .values(ae_title=ae_title, modality=modality, name="", location="")
            .on_conflict_do_nothing(index_elements=["ae_title"])
        )
        # RETURNING says whether a row went in (a rowcount is not reliable here on every driver).
        created = self.session.execute(statement.returning(Station.id)).first() is not None
        station = self.session.scalars(select(Station).where(Station.ae_title == ae_title)).one()
        return station, created


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Scheduler:
    """Books, changes and cancels procedures in the store, auditing each change.

    Parameters
    ----------
    session_factory : sessionmaker
        Where bookings are stored.
    uid_root : str
        Organisation root for generated Study Instance UIDs; empty for ``2.25``.
    """

    def __init__(self, session_factory: sessionmaker[Session], uid_root: str = "") -> None:
        self.session_factory = session_factory
        self.uid_root = uid_root

    # -- reading ---------------------------------------------------------------------

    def get(self, procedure_id: int) -> Procedure:
        """Return the booking with ``procedure_id``; raise :class:`NotFound` if none."""
        with self.session_factory() as session:
            proc = session.get(Procedure, procedure_id)
            if proc is None:
                raise NotFound(procedure_id)
            return proc

    def list_procedures(
        self, day: dt.date | None = None, *, offset: int = 0, limit: int | None = None
    ) -> list[Procedure]:
        """Return bookings ordered by start time, only those of ``day`` when given."""
        stmt = select(Procedure).order_by(Procedure.scheduled_start, Procedure.id)
        if day is not None:
            start = dt.datetime.combine(day, dt.time())
            stmt = stmt.where(
                Procedure.scheduled_start >= start,
                Procedure.scheduled_start < start + dt.timedelta(days=1),
            )
        stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.session_factory() as session:
            return list(session.scalars(stmt).unique())

    # -- writing ---------------------------------------------------------------------

    def book(self, raw: Mapping[str, Any], actor: str) -> Procedure:
        """Validate and store a new booking.

        Parameters
        ----------
        raw : Mapping
            The booking's fields (see :data:`WRITABLE_FIELDS`).
        actor : str
            Who books it, for the audit log.

        Returns
        -------
        Procedure
            The stored booking, identifiers generated where absent.

        Raises
        ------
        ValidationError
            When a field is invalid or an identifier is already in use.
        """
        cleaned = clean_procedure(raw)
        with transaction(self.session_factory) as session:
            lookups = _Lookups(session)
            if "accession_number" in cleaned:
                taken = session.scalar(
                    select(Procedure.id).where(
                        Procedure.accession_number == cleaned["accession_number"]
                    )
                )
                if taken is not None:
                    raise ValidationError({"accession_number": "is already used by a booking"})
            self._check_uid_free(session, cleaned, None)
            proc = self._create(session, lookups, cleaned, actor)
            self._finish_creates(session)
            session.refresh(proc)
            return proc

    def update(self, procedure_id: int, raw: Mapping[str, Any], actor: str) -> Procedure:
        """Change some fields of a booking that is not finished or cancelled.

        Raises
        ------
        NotFound, ValidationError, TransitionError
        """
        cleaned = clean_procedure(raw, partial=True)
        with transaction(self.session_factory) as session:
            proc = session.get(Procedure, procedure_id, with_for_update={"of": Procedure})
            if proc is None:
                raise NotFound(procedure_id)
            if "accession_number" in cleaned and cleaned["accession_number"] != (
                proc.accession_number
            ):
                taken = session.scalar(
                    select(Procedure.id).where(
                        Procedure.accession_number == cleaned["accession_number"]
                    )
                )
                if taken is not None:
                    raise ValidationError({"accession_number": "is already used by a booking"})
            self._check_uid_free(session, cleaned, proc.id)
            self._apply(session, _Lookups(session), proc, cleaned, actor)
            session.flush()
            session.refresh(proc)
            return proc

    def cancel(self, procedure_id: int, reason: str, actor: str) -> Procedure:
        """Cancel a scheduled booking, keeping the reason; it leaves the worklist."""
        reason = (reason or "").strip()
        if len(reason) > 1024:
            raise ValidationError({"reason": "must be at most 1024 characters"})
        return self.set_status(procedure_id, ProcedureStatus.CANCELLED, actor, reason=reason)

    def set_status(
        self, procedure_id: int, status: str, actor: str, *, reason: str = ""
    ) -> Procedure:
        """Move a booking to ``status`` if its life cycle allows it.

        Raises
        ------
        NotFound
            No such booking.
        TransitionError
            The move is not allowed from the current status.
        """
        with transaction(self.session_factory) as session:
            proc = session.get(Procedure, procedure_id, with_for_update={"of": Procedure})
            if proc is None:
                raise NotFound(procedure_id)
            transition(session, proc, status, actor, reason)
            return proc

    def import_procedures(
        self,
        rows: Sequence[Mapping[str, Any]],
        actor: str,
        progress: Callable[[int], None] | None = None,
    ) -> ImportResult:
        """Book or update many procedures at once: all of them, or none.

        Rows are matched to existing bookings by accession number; a row without
        one is a new booking.

        Parameters
        ----------
        rows : Sequence of Mapping
            The bookings' fields, one mapping per row.
        actor : str
            Who imports, for the audit log.
        progress : callable, optional
            Called with the number of rows just processed.

        Raises
        ------
        ValidationError
            For the first invalid row; its ``row`` attribute is the 1-based row number.
        """
        cleaned_rows: list[dict[str, Any]] = []
        seen_accessions: dict[str, int] = {}
        seen_uids: dict[str, int] = {}
        for number, raw in enumerate(rows, start=1):
            try:
                cleaned = clean_procedure(raw)
            except ValidationError as exc:
                raise ValidationError(exc.errors, row=number) from None
            for key, seen in (
                ("accession_number", seen_accessions),
                ("study_instance_uid", seen_uids),
            ):
                if key in cleaned:
                    if cleaned[key] in seen:
                        raise ValidationError(
                            {key: f"repeats the value of row {seen[cleaned[key]]}"}, row=number
                        )
                    seen[cleaned[key]] = number
            cleaned_rows.append(cleaned)

        created = updated = 0
        with transaction(self.session_factory) as session:
            lookups = _Lookups(session)
            lookups.preload(cleaned_rows)
            existing: dict[str, Procedure] = {}
            for chunk in _chunks(sorted(seen_accessions)):
                for proc in session.scalars(
                    select(Procedure).where(Procedure.accession_number.in_(chunk))
                ).unique():
                    existing[proc.accession_number] = proc
            uid_owner: dict[str, str] = {}
            for chunk in _chunks(sorted(seen_uids)):
                for uid_value, acc in session.execute(
                    select(Procedure.study_instance_uid, Procedure.accession_number).where(
                        Procedure.study_instance_uid.in_(chunk)
                    )
                ):
                    uid_owner[uid_value] = acc
            done = 0
            for number, cleaned in enumerate(cleaned_rows, start=1):
                uid = cleaned.get("study_instance_uid")
                if uid and uid in uid_owner and uid_owner[uid] != cleaned.get("accession_number"):
                    raise ValidationError(
                        {"study_instance_uid": "is already used by another booking"}, row=number
                    )
                current = existing.get(cleaned.get("accession_number", ""))
                try:
                    if current is None:
                        self._create(session, lookups, cleaned, actor)
                        created += 1
                    else:
                        self._apply(session, lookups, current, cleaned, actor)
                        updated += 1
                except (ValidationError, TransitionError) as exc:
                    errors = (
                        exc.errors
                        if isinstance(exc, ValidationError)
                        else {"accession_number": str(exc)}
                    )
                    raise ValidationError(errors, row=number) from None
                done += 1
                if progress and done % 1000 == 0:
                    progress(1000)
            if progress and done % 1000:
                progress(done % 1000)
            self._finish_creates(session)
        return ImportResult(created=created, updated=updated)

    # -- internals -------------------------------------------------------------------

    def _check_uid_free(
        self, session: Session, cleaned: Mapping[str, Any], own_id: int | None
    ) -> None:
        uid = cleaned.get("study_instance_uid")
        if uid:
            owner = session.scalar(select(Procedure.id).where(Procedure.study_instance_uid == uid))
            if owner is not None and owner != own_id:
                raise ValidationError({"study_instance_uid": "is already used by another booking"})

    def _patient_for(
        self, session: Session, lookups: _Lookups, cleaned: Mapping[str, Any], actor: str
    ) -> Patient:
        pid = cleaned["patient_id"]
        patient = lookups.patient(pid)
        if patient is None:
            if "patient_name" not in cleaned:  # an update naming a patient not yet known
                raise ValidationError({"patient_name": "is required for a new patient"})
            fold, ascii_ = name_keys(cleaned["patient_name"])
            patient = Patient(
                patient_id=pid,
                name=cleaned["patient_name"],
                name_fold=fold,
                name_ascii=ascii_,
                birth_date=cleaned.get("patient_birth_date"),
                sex=cleaned.get("patient_sex", ""),
            )
            session.add(patient)
            lookups.patients[pid] = patient
            audit(session, actor, "create", "patient", pid, _patient_fields(patient))
            return patient
        self._update_patient(session, patient, cleaned, actor)
        return patient

    def _update_patient(
        self, session: Session, patient: Patient, cleaned: Mapping[str, Any], actor: str
    ) -> None:
        changes: dict[str, list[Any]] = {}
        if "patient_name" in cleaned and cleaned["patient_name"] != patient.name:
            changes["patient_name"] = [patient.name, cleaned["patient_name"]]
            patient.name = cleaned["patient_name"]
            patient.name_fold, patient.name_ascii = name_keys(patient.name)
        if "patient_birth_date" in cleaned and cleaned["patient_birth_date"] != patient.birth_date:
            changes["patient_birth_date"] = [patient.birth_date, cleaned["patient_birth_date"]]
            patient.birth_date = cleaned["patient_birth_date"]
        if "patient_sex" in cleaned and cleaned["patient_sex"] != patient.sex:
            changes["patient_sex"] = [patient.sex, cleaned["patient_sex"]]
            patient.sex = cleaned["patient_sex"]
        if changes:
            audit(session, actor, "update", "patient", patient.patient_id, changes)

    def _create(
        self, session: Session, lookups: _Lookups, cleaned: dict[str, Any], actor: str
    ) -> Procedure:
        station = cleaned.get("station_ae_title") or lookups.station_for(cleaned["modality"])
        if not station:
            raise ValidationError(
                {"station_ae_title": "is required (no single station does this modality)"}
            )
        lookups.ensure_station(station, cleaned["modality"], actor)
        patient = self._patient_for(session, lookups, cleaned, actor)
        start: dt.datetime = cleaned["scheduled_start"]
        proc = Procedure(
            patient=patient,
            accession_number=cleaned.get("accession_number")
            or self._new_accession(session, start.date()),
            requested_procedure_id=cleaned.get("requested_procedure_id")
            or identifiers.new_requested_procedure_id(),
            step_id=cleaned.get("step_id") or identifiers.new_step_id(),
            study_instance_uid=cleaned.get("study_instance_uid")
            or identifiers.new_study_instance_uid(self.uid_root),
            modality=cleaned["modality"],
            station_ae_title=station,
            scheduled_start=start,
            scheduled_seconds=start.hour * 3600 + start.minute * 60 + start.second,
            procedure_description=cleaned.get("procedure_description", ""),
            priority=cleaned.get("priority", ""),
            notes=cleaned.get("notes", ""),
            placer_order_number=cleaned.get("placer_order_number", ""),
            filler_order_number=cleaned.get("filler_order_number", ""),
            status=ProcedureStatus.SCHEDULED.value,
        )
        _set_physicians(proc, cleaned)
        set_codes(proc, codes_from_catalog(session, cleaned))
        session.add(proc)
        # The id is known only after a flush: _finish_creates audits the creation.
        pending: list[tuple[Procedure, str]] = session.info.setdefault("pending_creates", [])
        pending.append((proc, actor))
        return proc

    def _new_accession(self, session: Session, day: dt.date) -> str:
        drawn: set[str] = session.info.setdefault("drawn_accessions", set())
        while True:
            accession = identifiers.new_accession_number(day)
            if accession not in drawn:
                drawn.add(accession)
                return accession

    def _finish_creates(self, session: Session) -> None:
        """Redraw generated accession numbers the store already has, flush, audit creations."""
        pending: list[tuple[Procedure, str]] = session.info.pop("pending_creates", [])
        drawn: set[str] = session.info.pop("drawn_accessions", set())
        with session.no_autoflush:
            for chunk in _chunks(sorted(drawn)):
                taken = set(
                    session.scalars(
                        select(Procedure.accession_number).where(
                            Procedure.accession_number.in_(chunk)
                        )
                    )
                )
                for proc, _ in pending:
                    while proc.accession_number in taken:
                        proc.accession_number = self._new_accession(
                            session, proc.scheduled_start.date()
                        )
        session.flush()
        for proc, actor in pending:
            audit(session, actor, "create", "procedure", proc.id, _procedure_fields(proc))

    def _apply(
        self,
        session: Session,
        lookups: _Lookups,
        proc: Procedure,
        cleaned: Mapping[str, Any],
        actor: str,
    ) -> None:
        if proc.status not in (ProcedureStatus.SCHEDULED, ProcedureStatus.IN_PROGRESS):
            raise TransitionError(f"the booking is {proc.status} and can no longer change")
        before = _procedure_fields(proc)
        if "patient_id" in cleaned and cleaned["patient_id"] != proc.patient.patient_id:
            proc.patient = self._patient_for(session, lookups, cleaned, actor)
        else:
            self._update_patient(session, proc.patient, cleaned, actor)
        if "modality" in cleaned:
            proc.modality = cleaned["modality"]
        if "station_ae_title" in cleaned:
            lookups.ensure_station(cleaned["station_ae_title"], proc.modality, actor)
            proc.station_ae_title = cleaned["station_ae_title"]
        if "scheduled_start" in cleaned:
            start = cleaned["scheduled_start"]
            proc.scheduled_start = start
            proc.scheduled_seconds = start.hour * 3600 + start.minute * 60 + start.second
        for key in (
            "accession_number",
            "requested_procedure_id",
            "step_id",
            "study_instance_uid",
            "procedure_description",
            "priority",
            "notes",
            "placer_order_number",
            "filler_order_number",
        ):
            if key in cleaned:
                setattr(proc, key, cleaned[key])
        _set_physicians(proc, cleaned)
        set_codes(proc, cleaned)
        after = _procedure_fields(proc)
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if changes:
            audit(session, actor, "update", "procedure", proc.id, changes)


def _set_physicians(proc: Procedure, cleaned: Mapping[str, Any]) -> None:
    if "referring_physician" in cleaned:
        proc.referring_physician = cleaned["referring_physician"]
        proc.referring_fold, proc.referring_ascii = name_keys(proc.referring_physician)
    if "performing_physician" in cleaned:
        proc.performing_physician = cleaned["performing_physician"]
        proc.performing_fold, proc.performing_ascii = name_keys(proc.performing_physician)


def _patient_fields(patient: Patient) -> dict[str, Any]:
    return {
        "patient_name": patient.name,
        "patient_birth_date": patient.birth_date,
        "patient_sex": patient.sex,
    }


def _procedure_fields(proc: Procedure) -> dict[str, Any]:
    return {
        "patient_id": proc.patient.patient_id,
        "accession_number": proc.accession_number,
        "requested_procedure_id": proc.requested_procedure_id,
        "step_id": proc.step_id,
        "study_instance_uid": proc.study_instance_uid,
        "modality": proc.modality,
        "station_ae_title": proc.station_ae_title,
        "scheduled_start": proc.scheduled_start,
        "procedure_description": proc.procedure_description,
        "referring_physician": proc.referring_physician,
        "performing_physician": proc.performing_physician,
        "priority": proc.priority,
        "notes": proc.notes,
        "placer_order_number": proc.placer_order_number,
        "filler_order_number": proc.filler_order_number,
        "procedure_code": [
            proc.procedure_code_value,
            proc.procedure_code_scheme,
            proc.procedure_code_meaning,
        ],
        "protocol_code": [
            proc.protocol_code_value,
            proc.protocol_code_scheme,
            proc.protocol_code_meaning,
        ],
        "status": proc.status,
    }
