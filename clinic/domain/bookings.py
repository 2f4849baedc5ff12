"""The booking service: book, update, cancel and move bookings through their life cycle.

Every door (worklist, web, REST API, import, HL7) goes through :class:`Scheduler`;
it validates with the field table of :mod:`clinic.domain.fields`, generates missing
identifiers, keeps patients and stations in step with the bookings and audits every
change (:mod:`clinic.domain.audit`). It knows nothing of Flask or of the DICOM network.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain import identifiers
from clinic.domain.audit import audit, audit_row
from clinic.domain.calendar import DEFAULT_DURATION_MINUTES, clashes
from clinic.domain.catalog import code_columns, codes_for_change, codes_from_catalog, set_codes
from clinic.domain.errors import (
    NotFound,
    OverlapError,
    PatientConflict,
    TransitionError,
    ValidationError,
)
from clinic.domain.fields import clean_procedure
from clinic.domain.names import name_keys, same_name
from clinic.store.db import transaction
from clinic.store.models import (
    ACTIVE_STATUSES,
    AuditEntry,
    CatalogEntry,
    Patient,
    PerformedStepLink,
    Procedure,
    ProcedureStatus,
    Station,
    utcnow,
)

#: Allowed status transitions. ARRIVED (checked in at the front desk) moves on as
#: SCHEDULED does.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    ProcedureStatus.SCHEDULED: (
        ProcedureStatus.ARRIVED,
        ProcedureStatus.IN_PROGRESS,
        ProcedureStatus.CANCELLED,
        ProcedureStatus.DISCONTINUED,
    ),
    ProcedureStatus.ARRIVED: (
        ProcedureStatus.IN_PROGRESS,
        ProcedureStatus.CANCELLED,
        ProcedureStatus.DISCONTINUED,
    ),
    ProcedureStatus.IN_PROGRESS: (ProcedureStatus.COMPLETED, ProcedureStatus.DISCONTINUED),
    ProcedureStatus.COMPLETED: (),
    ProcedureStatus.DISCONTINUED: (),
    ProcedureStatus.CANCELLED: (),
}

#: Status moves made by hand that "Undo" takes back: (from, to) as the audit log has them.
UNDOABLE: frozenset[tuple[str, str]] = frozenset(
    {
        (ProcedureStatus.SCHEDULED, ProcedureStatus.ARRIVED),
        (ProcedureStatus.SCHEDULED, ProcedureStatus.IN_PROGRESS),
        (ProcedureStatus.ARRIVED, ProcedureStatus.IN_PROGRESS),
        (ProcedureStatus.IN_PROGRESS, ProcedureStatus.COMPLETED),
        (ProcedureStatus.IN_PROGRESS, ProcedureStatus.DISCONTINUED),
    }
)
#: How long after a status move by hand it can be undone.
UNDO_WINDOW = dt.timedelta(minutes=30)

_CHUNK = 500  # keeps IN (...) lists under every backend's parameter limit
#: Import rows written per batch: bounds the memory an import holds at once.
_IMPORT_BATCH = 2000


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
        self.durations: dict[tuple[str, str], int] | None = None

    def catalog_duration(self, description: str, modality: str) -> int | None:
        """The duration of the catalog entry with this description and modality."""
        if self.durations is None:
            self.durations = {}
            rows = self.session.execute(
                select(
                    CatalogEntry.description, CatalogEntry.modality, CatalogEntry.duration_minutes
                ).order_by(CatalogEntry.active, CatalogEntry.id)
            )
            for desc, mod, minutes in rows:  # active entries last: they win
                self.durations[(desc, mod)] = minutes
        return self.durations.get((description, modality))

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
    default_duration_minutes : int
        How long a booking occupies its station when neither the caller nor the
        catalog says (``[scheduling] default_duration_minutes``).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        uid_root: str = "",
        default_duration_minutes: int = DEFAULT_DURATION_MINUTES,
    ) -> None:
        self.session_factory = session_factory
        self.uid_root = uid_root
        self.default_duration_minutes = default_duration_minutes

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

    def book(
        self,
        raw: Mapping[str, Any],
        actor: str,
        *,
        update_patient: bool = False,
        refuse_overlaps: bool = False,
    ) -> Procedure:
        """Validate and store a new booking.

        Parameters
        ----------
        raw : Mapping
            The booking's fields (see :data:`clinic.domain.fields.FIELDS`).
        actor : str
            Who books it, for the audit log.
        update_patient : bool
            The caller says on purpose that an existing patient ID's stored name,
            birth date or sex are to change to the ones sent (audited).
        refuse_overlaps : bool
            Refuse a booking that overlaps another active booking on its station
            (the web and REST doors, unless the user confirmed); HL7 and import
            leave it false: the sender owns its schedule.

        Returns
        -------
        Procedure
            The stored booking, identifiers generated where absent.

        Raises
        ------
        ValidationError
            When a field is invalid or an identifier is already in use.
        PatientConflict
            When the patient ID exists with another name, birth date or sex and
            ``update_patient`` is false; nothing is written.
        OverlapError
            With ``refuse_overlaps``, naming the bookings it would overlap; nothing
            is written.
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
            proc = self._create(session, lookups, cleaned, actor, update_patient)
            self._finish_creates(session)
            if refuse_overlaps:
                _refuse_overlaps(session, proc)
            session.refresh(proc)
            return proc

    def update(
        self,
        procedure_id: int,
        raw: Mapping[str, Any],
        actor: str,
        *,
        update_patient: bool = False,
        refuse_overlaps: bool = False,
    ) -> Procedure:
        """Change some fields of a booking that is not finished or cancelled.

        ``update_patient`` as for :meth:`book`: without it, patient fields that differ
        from the stored patient's raise :class:`PatientConflict`. With
        ``refuse_overlaps``, a change of station, start or duration that makes the
        booking overlap another active one on its station raises
        :class:`OverlapError` and writes nothing.

        Raises
        ------
        NotFound, ValidationError, TransitionError, PatientConflict, OverlapError
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
            slot = (proc.station_ae_title, proc.scheduled_start, proc.duration_minutes)
            self._apply(session, _Lookups(session), proc, cleaned, actor, update_patient)
            session.flush()
            moved = slot != (proc.station_ae_title, proc.scheduled_start, proc.duration_minutes)
            if refuse_overlaps and moved:
                _refuse_overlaps(session, proc)
            session.refresh(proc)
            return proc

    def arrive(self, procedure_id: int, actor: str) -> Procedure:
        """Check a patient in: the booking becomes ``ARRIVED`` (still on the worklist).

        Raises
        ------
        NotFound, TransitionError
        """
        return self.set_status(procedure_id, ProcedureStatus.ARRIVED, actor)

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

    def undo_status(
        self,
        procedure_id: int,
        actor: str,
        *,
        within: dt.timedelta = UNDO_WINDOW,
        now: dt.datetime | None = None,
    ) -> Procedure | None:
        """Take back a status move made by hand a moment ago (audited as ``undo``).

        Allowed when the booking's last status change was made on the web door
        (``web:<user>``) within ``within``, and no modality has reported a performed
        step for it (MPPS owns those bookings): the booking returns to the status it
        had before ("Arrived" and "Exam started" back to booked or arrived, "Exam
        done"/"Exam stopped" back to in progress).

        Returns
        -------
        Procedure or None
            The booking moved back, or ``None`` when there is nothing to undo.

        Raises
        ------
        NotFound
            No such booking.
        """
        with transaction(self.session_factory) as session:
            proc = session.get(Procedure, procedure_id, with_for_update={"of": Procedure})
            if proc is None:
                raise NotFound(procedure_id)
            back = self._undo_target(session, proc, within, now)
            if back is None:
                return None
            audit(session, actor, "undo", "procedure", proc.id, {"status": [proc.status, back]})
            proc.status = back
            return proc

    def can_undo(self, procedure_id: int, *, within: dt.timedelta = UNDO_WINDOW) -> str | None:
        """The status an undo would return the booking to, or ``None``."""
        with self.session_factory() as session:
            proc = session.get(Procedure, procedure_id)
            return None if proc is None else self._undo_target(session, proc, within, None)

    @staticmethod
    def _undo_target(
        session: Session, proc: Procedure, within: dt.timedelta, now: dt.datetime | None
    ) -> str | None:
        linked = session.scalar(
            select(PerformedStepLink.procedure_id)
            .where(PerformedStepLink.procedure_id == proc.id)
            .limit(1)
        )
        if linked is not None:
            return None
        last = session.scalar(
            select(AuditEntry)
            .where(
                AuditEntry.entity == "procedure",
                AuditEntry.entity_id == str(proc.id),
                AuditEntry.action.in_(("status", "undo")),
            )
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
        if last is None or last.action != "status" or not last.actor.startswith("web:"):
            return None
        if (now or utcnow()) - last.at > within:
            return None
        try:
            before, after = json.loads(last.detail)["status"]
        except (ValueError, KeyError, TypeError):
            return None
        if after != proc.status or (before, after) not in UNDOABLE:
            return None
        return str(before)

    def import_procedures(
        self,
        rows: Iterable[Mapping[str, Any]],
        actor: str,
        progress: Callable[[int], None] | None = None,
        *,
        update_patients: bool = False,
    ) -> ImportResult:
        """Book or update many procedures at once: all of them, or none.

        Rows are matched to existing bookings by accession number; a row without
        one is a new booking. Rows that name one patient ID must agree on its name,
        birth date and sex.

        Rows are validated and written in batches inside one transaction, so memory
        stays bounded whatever the file's size (a consumed row can be freed by the
        caller) and an error in any row still leaves the store as it was.

        Parameters
        ----------
        rows : Iterable of Mapping
            The bookings' fields, one mapping per row.
        actor : str
            Who imports, for the audit log.
        progress : callable, optional
            Called with the number of rows just processed.
        update_patients : bool
            Rows may change the stored name, birth date or sex of an existing
            patient ID (audited); otherwise such a row is an error.

        Raises
        ------
        ValidationError
            For the first invalid row, or a row that disagrees with an earlier row
            about a patient; its ``row`` attribute is the 1-based row number.
        PatientConflict
            For the first row whose patient ID is stored with other demographics.
        """
        checks = _ImportChecks()
        created = updated = 0
        with transaction(self.session_factory) as session:
            batch: list[tuple[int, dict[str, Any]]] = []
            for number, raw in enumerate(rows, start=1):
                batch.append((number, checks.clean(raw, number)))
                if len(batch) == _IMPORT_BATCH:
                    made, changed = self._import_batch(session, batch, actor, update_patients)
                    created, updated = created + made, updated + changed
                    if progress:
                        progress(len(batch))
                    batch = []
            if batch:
                made, changed = self._import_batch(session, batch, actor, update_patients)
                created, updated = created + made, updated + changed
                if progress:
                    progress(len(batch))
        return ImportResult(created=created, updated=updated)

    def _import_batch(
        self,
        session: Session,
        batch: Sequence[tuple[int, dict[str, Any]]],
        actor: str,
        update_patients: bool,
    ) -> tuple[int, int]:
        """Write one batch of validated import rows; return (created, updated).

        New bookings go in with bulk INSERTs (their patients too); a row that updates
        a booking goes through the same code as a single update. The session is
        emptied afterwards, so its identity map never holds more than one batch.
        """
        lookups = _Lookups(session)
        lookups.preload([cleaned for _, cleaned in batch])
        accessions = [c["accession_number"] for _, c in batch if "accession_number" in c]
        existing: dict[str, Procedure] = {}
        for chunk in _chunks(accessions):
            for proc in session.scalars(
                select(Procedure).where(Procedure.accession_number.in_(chunk))
            ).unique():
                existing[proc.accession_number] = proc
        uids = [c["study_instance_uid"] for _, c in batch if "study_instance_uid" in c]
        uid_owner: dict[str, str] = {}
        for chunk in _chunks(uids):
            for uid_value, acc in session.execute(
                select(Procedure.study_instance_uid, Procedure.accession_number).where(
                    Procedure.study_instance_uid.in_(chunk)
                )
            ):
                uid_owner[uid_value] = acc
        new_rows: list[tuple[int, dict[str, Any]]] = []
        updated = 0
        for number, cleaned in batch:
            uid = cleaned.get("study_instance_uid")
            if uid and uid in uid_owner and uid_owner[uid] != cleaned.get("accession_number"):
                raise ValidationError(
                    {"study_instance_uid": "is already used by another booking"}, row=number
                )
            current = existing.get(cleaned.get("accession_number", ""))
            if current is None:
                new_rows.append((number, cleaned))
                continue
            with _row_errors(number):
                self._apply(session, lookups, current, cleaned, actor, update_patients)
            updated += 1
        if new_rows:
            self._insert_new(session, lookups, new_rows, actor, update_patients)
        session.flush()
        session.expunge_all()
        return len(new_rows), updated

    def _insert_new(
        self,
        session: Session,
        lookups: _Lookups,
        rows: Sequence[tuple[int, dict[str, Any]]],
        actor: str,
        update_patients: bool,
    ) -> None:
        """Insert the new bookings of an import batch with bulk statements."""
        # Patients first: the known ones are checked (and updated where allowed), the
        # new ones inserted together.
        fresh: dict[str, dict[str, Any]] = {}
        for number, cleaned in rows:
            pid = cleaned["patient_id"]
            stored = lookups.patient(pid)
            if stored is not None:
                with _row_errors(number):
                    self._update_patient(session, stored, cleaned, actor, update_patients)
            elif pid not in fresh:
                fresh[pid] = _patient_values(cleaned)
        if fresh:
            session.execute(insert(Patient), list(fresh.values()))
            for chunk in _chunks(sorted(fresh)):
                for patient in session.scalars(
                    select(Patient).where(Patient.patient_id.in_(chunk))
                ):
                    lookups.patients[patient.patient_id] = patient
            session.execute(
                insert(AuditEntry),
                [
                    audit_row(actor, "create", "patient", pid, _patient_fields_of(values))
                    for pid, values in fresh.items()
                ],
            )
        values: list[dict[str, Any]] = []
        for number, cleaned in rows:
            station = cleaned.get("station_ae_title") or lookups.station_for(cleaned["modality"])
            if not station:
                raise ValidationError(
                    {"station_ae_title": "is required (no single station does this modality)"},
                    row=number,
                )
            lookups.ensure_station(station, cleaned["modality"], actor)
            owner = lookups.patient(cleaned["patient_id"])
            assert owner is not None  # stored above when it was new
            duration = self._duration(lookups, cleaned)
            values.append(
                {
                    **self._procedure_values(session, cleaned, station, duration),
                    "patient_pk": owner.id,
                }
            )
        self._redraw_taken_accessions(session, values)
        inserted = session.execute(
            insert(Procedure).returning(Procedure.id, Procedure.accession_number), values
        ).all()
        ids = {accession: pk for pk, accession in inserted}
        session.execute(
            insert(AuditEntry),
            [
                audit_row(
                    actor,
                    "create",
                    "procedure",
                    ids[v["accession_number"]],
                    _procedure_fields_of(v, patient_id=cleaned["patient_id"]),
                )
                for v, (_, cleaned) in zip(values, rows, strict=True)
            ],
        )

    def _redraw_taken_accessions(self, session: Session, values: list[dict[str, Any]]) -> None:
        """Draw again the generated accession numbers that the store already has."""
        drawn: set[str] = session.info.pop("drawn_accessions", set())
        taken: set[str] = set()
        for chunk in _chunks(sorted(drawn)):
            taken.update(
                session.scalars(
                    select(Procedure.accession_number).where(Procedure.accession_number.in_(chunk))
                )
            )
        for v in values:
            while v["accession_number"] in taken:
                v["accession_number"] = self._new_accession(session, v["scheduled_start"].date())

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
        self,
        session: Session,
        lookups: _Lookups,
        cleaned: Mapping[str, Any],
        actor: str,
        update_patient: bool,
    ) -> Patient:
        pid = cleaned["patient_id"]
        patient = lookups.patient(pid)
        if patient is None:
            if "patient_name" not in cleaned:  # an update naming a patient not yet known
                raise ValidationError({"patient_name": "is required for a new patient"})
            patient, created = self._insert_patient(session, cleaned)
            lookups.patients[pid] = patient
            if created:
                audit(session, actor, "create", "patient", pid, _patient_fields(patient))
                return patient
        self._update_patient(session, patient, cleaned, actor, update_patient)
        return patient

    def _insert_patient(self, session: Session, cleaned: Mapping[str, Any]) -> tuple[Patient, bool]:
        """Insert a new patient unless a concurrent booking just did; return it and whether new.

        Several bookings for one new patient may arrive at once (REST clients, HL7 and
        the front desk): INSERT ... ON CONFLICT DO NOTHING lets the later ones find the
        first one's row, whose demographics they are then checked against, instead of
        failing on the unique patient ID.
        """
        values = _patient_values(cleaned)
        dialect = session.get_bind().dialect.name
        if dialect not in ("sqlite", "postgresql"):
            patient = Patient(**values)
            session.add(patient)
            return patient, True
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        statement = (
            insert(Patient).values(**values).on_conflict_do_nothing(index_elements=["patient_id"])
        )
        created = session.execute(statement.returning(Patient.id)).first() is not None
        patient = session.scalars(
            select(Patient).where(Patient.patient_id == cleaned["patient_id"])
        ).one()
        return patient, created

    def _update_patient(
        self,
        session: Session,
        patient: Patient,
        cleaned: Mapping[str, Any],
        actor: str,
        update_patient: bool,
    ) -> None:
        """Bring the stored patient in line with a booking's patient fields.

        A value the store lacks is filled in; a value that differs is a
        :class:`PatientConflict` unless ``update_patient`` says the change is meant.
        Every change is audited with the values before and after.
        """
        if not update_patient:
            conflicts = patient_conflicts(patient, cleaned)
            if conflicts:
                raise PatientConflict(patient.patient_id, conflicts)
        changes: dict[str, list[Any]] = {}
        name = cleaned.get("patient_name")
        if name is not None and name != patient.name and (update_patient or not patient.name):
            changes["patient_name"] = [patient.name, name]
            patient.name = name
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
        self,
        session: Session,
        lookups: _Lookups,
        cleaned: dict[str, Any],
        actor: str,
        update_patient: bool,
    ) -> Procedure:
        station = cleaned.get("station_ae_title") or lookups.station_for(cleaned["modality"])
        if not station:
            raise ValidationError(
                {"station_ae_title": "is required (no single station does this modality)"}
            )
        lookups.ensure_station(station, cleaned["modality"], actor)
        patient = self._patient_for(session, lookups, cleaned, actor, update_patient)
        duration = self._duration(lookups, cleaned)
        proc = Procedure(
            patient=patient, **self._procedure_values(session, cleaned, station, duration)
        )
        session.add(proc)
        # The id is known only after a flush: _finish_creates audits the creation.
        pending: list[tuple[Procedure, str]] = session.info.setdefault("pending_creates", [])
        pending.append((proc, actor))
        return proc

    def _duration(self, lookups: _Lookups, cleaned: Mapping[str, Any]) -> int:
        """A new booking's minutes: its own, else its catalog entry's, else the default."""
        return int(
            cleaned.get("duration_minutes")
            or lookups.catalog_duration(
                cleaned.get("procedure_description", ""), cleaned["modality"]
            )
            or self.default_duration_minutes
        )

    def _procedure_values(
        self, session: Session, cleaned: Mapping[str, Any], station: str, duration: int
    ) -> dict[str, Any]:
        """The column values of a new booking (all but its patient), identifiers drawn."""
        start: dt.datetime = cleaned["scheduled_start"]
        values: dict[str, Any] = {
            "accession_number": cleaned.get("accession_number")
            or self._new_accession(session, start.date()),
            "requested_procedure_id": cleaned.get("requested_procedure_id")
            or identifiers.new_requested_procedure_id(),
            "step_id": cleaned.get("step_id") or identifiers.new_step_id(),
            "study_instance_uid": cleaned.get("study_instance_uid")
            or identifiers.new_study_instance_uid(self.uid_root),
            "modality": cleaned["modality"],
            "station_ae_title": station,
            "scheduled_start": start,
            "scheduled_seconds": start.hour * 3600 + start.minute * 60 + start.second,
            "duration_minutes": duration,
            "procedure_description": cleaned.get("procedure_description", ""),
            "priority": cleaned.get("priority", ""),
            "notes": cleaned.get("notes", ""),
            "placer_order_number": cleaned.get("placer_order_number", ""),
            "filler_order_number": cleaned.get("filler_order_number", ""),
            "status": ProcedureStatus.SCHEDULED.value,
        }
        for role in ("referring", "performing"):
            name = cleaned.get(f"{role}_physician", "")
            values[f"{role}_physician"] = name
            values[f"{role}_fold"], values[f"{role}_ascii"] = name_keys(name)
        values.update(code_columns(codes_from_catalog(session, cleaned)))
        return values

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
        update_patient: bool,
    ) -> None:
        if proc.status not in ACTIVE_STATUSES:
            raise TransitionError(f"the booking is {proc.status} and can no longer change")
        before = _procedure_fields(proc)
        if "patient_id" in cleaned and cleaned["patient_id"] != proc.patient.patient_id:
            proc.patient = self._patient_for(session, lookups, cleaned, actor, update_patient)
        else:
            self._update_patient(session, proc.patient, cleaned, actor, update_patient)
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
            "duration_minutes",
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
        set_codes(proc, codes_for_change(session, cleaned))
        after = _procedure_fields(proc)
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if changes:
            audit(session, actor, "update", "procedure", proc.id, changes)


def _refuse_overlaps(session: Session, proc: Procedure) -> None:
    """Raise :class:`OverlapError` when ``proc`` (flushed) overlaps an active booking.

    The station's row is locked first, so two bookings of one slot at once are
    checked one after the other (PostgreSQL); SQLite writes one at a time anyway.
    """
    if proc.status not in ACTIVE_STATUSES:
        return
    session.execute(
        select(Station.id).where(Station.ae_title == proc.station_ae_title).with_for_update()
    )
    found = clashes(
        session, proc.station_ae_title, proc.scheduled_start, proc.duration_minutes, proc.id
    )
    if found:
        raise OverlapError(found)


def _api_value(value: Any) -> str:
    """A patient field as the API writes it (dates ISO, absent values empty)."""
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def patient_conflicts(patient: Patient, cleaned: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Return the patient fields of ``cleaned`` that would make ``patient`` another person.

    A field not sent, or one the store does not have yet, is no conflict; a name that
    differs only in case or in how its given names are split is the same name
    (:func:`clinic.domain.names.same_name`).

    Parameters
    ----------
    patient : Patient
        The stored patient.
    cleaned : Mapping
        A booking's validated fields (:func:`clinic.domain.fields.clean_procedure`).

    Returns
    -------
    dict
        Field name to ``{"stored": ..., "sent": ...}``; empty when nothing differs.
    """
    out: dict[str, dict[str, str]] = {}
    name = cleaned.get("patient_name")
    if name is not None and patient.name and not same_name(name, patient.name):
        out["patient_name"] = {"stored": patient.name, "sent": name}
    sent_birth = cleaned.get("patient_birth_date", patient.birth_date)
    if patient.birth_date is not None and sent_birth != patient.birth_date:
        out["patient_birth_date"] = {
            "stored": _api_value(patient.birth_date),
            "sent": _api_value(sent_birth),
        }
    if "patient_sex" in cleaned and patient.sex and cleaned["patient_sex"] != patient.sex:
        out["patient_sex"] = {"stored": patient.sex, "sent": cleaned["patient_sex"]}
    return out


_PATIENT_KEYS = ("patient_name", "patient_birth_date", "patient_sex")


def _check_same_patient(
    seen: dict[str, tuple[int, dict[str, Any]]], cleaned: Mapping[str, Any], number: int
) -> None:
    """Refuse an import row that disagrees with an earlier row about the same patient ID."""
    pid = cleaned.get("patient_id")
    if not pid:
        return
    if pid not in seen:
        seen[pid] = (number, {k: cleaned[k] for k in _PATIENT_KEYS if k in cleaned})
        return
    first_row, first = seen[pid]
    for key in _PATIENT_KEYS:
        if key in cleaned and key in first:
            same = (
                same_name(cleaned[key], first[key])
                if key == "patient_name"
                else cleaned[key] == first[key]
            )
            if not same:
                raise ValidationError(
                    {key: f"differs from row {first_row} for the same patient_id"}, row=number
                )
        elif key in cleaned:
            first[key] = cleaned[key]


def _patient_values(cleaned: Mapping[str, Any]) -> dict[str, Any]:
    """The column values of a new patient from a booking's fields."""
    fold_key, ascii_key = name_keys(cleaned["patient_name"])
    return {
        "patient_id": cleaned["patient_id"],
        "name": cleaned["patient_name"],
        "name_fold": fold_key,
        "name_ascii": ascii_key,
        "birth_date": cleaned.get("patient_birth_date"),
        "sex": cleaned.get("patient_sex", ""),
    }


class _ImportChecks:
    """What an import checks across its rows: validity, unique identifiers, one patient."""

    def __init__(self) -> None:
        self.accessions: dict[str, int] = {}
        self.uids: dict[str, int] = {}
        self.patients: dict[str, tuple[int, dict[str, Any]]] = {}

    def clean(self, raw: Mapping[str, Any], number: int) -> dict[str, Any]:
        """Validate row ``number``; raise :class:`ValidationError` naming it."""
        try:
            cleaned = clean_procedure(raw)
        except ValidationError as exc:
            raise ValidationError(exc.errors, row=number) from None
        for key, seen in (("accession_number", self.accessions), ("study_instance_uid", self.uids)):
            if key in cleaned:
                if cleaned[key] in seen:
                    raise ValidationError(
                        {key: f"repeats the value of row {seen[cleaned[key]]}"}, row=number
                    )
                seen[cleaned[key]] = number
        _check_same_patient(self.patients, cleaned, number)
        return cleaned


@contextlib.contextmanager
def _row_errors(number: int) -> Iterator[None]:
    """Name import row ``number`` in the errors raised inside the block."""
    try:
        yield
    except PatientConflict as exc:
        raise PatientConflict(exc.patient_id, exc.conflicts, row=number) from None
    except ValidationError as exc:
        raise ValidationError(exc.errors, row=number) from None
    except TransitionError as exc:
        raise ValidationError({"accession_number": str(exc)}, row=number) from None


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


def _patient_fields_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`_patient_fields` of a patient not loaded, from its column values."""
    return {
        "patient_name": values["name"],
        "patient_birth_date": values["birth_date"],
        "patient_sex": values["sex"],
    }


#: The booking columns its audit entries record.
_AUDITED = (
    "accession_number",
    "requested_procedure_id",
    "step_id",
    "study_instance_uid",
    "modality",
    "station_ae_title",
    "scheduled_start",
    "duration_minutes",
    "procedure_description",
    "referring_physician",
    "performing_physician",
    "priority",
    "notes",
    "placer_order_number",
    "filler_order_number",
    "procedure_code_value",
    "procedure_code_scheme",
    "procedure_code_meaning",
    "protocol_code_value",
    "protocol_code_scheme",
    "protocol_code_meaning",
    "status",
)


def _procedure_fields(proc: Procedure) -> dict[str, Any]:
    return {"patient_id": proc.patient.patient_id, **{k: getattr(proc, k) for k in _AUDITED}}


def _procedure_fields_of(values: Mapping[str, Any], patient_id: str) -> dict[str, Any]:
    """:func:`_procedure_fields` of a booking not loaded, from its column values."""
    return {"patient_id": patient_id, **{k: values[k] for k in _AUDITED}}
