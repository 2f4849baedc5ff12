"""The store's tables, as SQLAlchemy 2 typed models.

A booking is a :class:`Procedure`: one Requested Procedure with its one Scheduled
Procedure Step, for one :class:`Patient`, at one :class:`Station`. Names are kept as
entered (Unicode) plus two folded copies that the worklist matches on in SQL, so a
query never has to scan rows in Python. :class:`AuditEntry` rows are append-only.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

PN_LENGTH = 200  # three 64-character groups and their separators


def utcnow() -> dt.datetime:
    """Return the current UTC time without tzinfo (how timestamps are stored)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every model."""


class ProcedureStatus(enum.StrEnum):
    """Life cycle of a booking (the Scheduled Procedure Step's status)."""

    SCHEDULED = "SCHEDULED"
    ARRIVED = "ARRIVED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"
    CANCELLED = "CANCELLED"


#: Statuses a modality still has work for: the worklist serves only these, and only
#: these occupy their station's time.
ACTIVE_STATUSES = (
    ProcedureStatus.SCHEDULED.value,
    ProcedureStatus.ARRIVED.value,
    ProcedureStatus.IN_PROGRESS.value,
)


class Patient(Base):
    """A patient, identified by the clinic's Patient ID."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(PN_LENGTH))
    name_fold: Mapped[str] = mapped_column(String(PN_LENGTH), index=True)
    name_ascii: Mapped[str] = mapped_column(String(PN_LENGTH), index=True)
    birth_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    sex: Mapped[str] = mapped_column(String(1), default="")
    # Contact details, optional; kept for the front desk, never sent to a modality.
    phone: Mapped[str] = mapped_column(String(32), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    procedures: Mapped[list[Procedure]] = relationship(back_populates="patient")


class Station(Base):
    """A modality's station: where a step is scheduled, addressed by its AE title."""

    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    modality: Mapped[str] = mapped_column(String(16), default="")
    name: Mapped[str] = mapped_column(String(16), default="")
    location: Mapped[str] = mapped_column(String(16), default="")
    # Empty: the service default; else "ISO_IR 192" or "ISO_IR 100".
    character_set: Mapped[str] = mapped_column(String(16), default="")
    # Opening hours of this station as JSON {"mon": "08:00-17:00", ...}; empty: the
    # clinic's [scheduling] hours. Closed dates: JSON list of "YYYY-MM-DD".
    opening_hours: Mapped[str] = mapped_column(Text, default="")
    closed_dates: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Procedure(Base):
    """A booking: a Requested Procedure and its Scheduled Procedure Step."""

    __tablename__ = "procedures"
    __table_args__ = (
        Index("ix_procedures_station_start", "station_ae_title", "scheduled_start"),
        Index("ix_procedures_modality_start", "modality", "scheduled_start"),
        Index("ix_procedures_status_start", "status", "scheduled_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    accession_number: Mapped[str] = mapped_column(String(16), unique=True)
    requested_procedure_id: Mapped[str] = mapped_column(String(16), index=True)
    step_id: Mapped[str] = mapped_column(String(16), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str] = mapped_column(String(16))
    station_ae_title: Mapped[str] = mapped_column(String(16))
    scheduled_start: Mapped[dt.datetime] = mapped_column(DateTime)
    # Seconds since midnight of scheduled_start: lets a time-only key match in SQL.
    scheduled_seconds: Mapped[int] = mapped_column(Integer)
    # How long the booking occupies its station from scheduled_start.
    duration_minutes: Mapped[int] = mapped_column(Integer, default=15)
    procedure_description: Mapped[str] = mapped_column(String(64), default="")
    referring_physician: Mapped[str] = mapped_column(String(PN_LENGTH), default="")
    referring_fold: Mapped[str] = mapped_column(String(PN_LENGTH), default="")
    referring_ascii: Mapped[str] = mapped_column(String(PN_LENGTH), default="")
    performing_physician: Mapped[str] = mapped_column(String(PN_LENGTH), default="")
    performing_fold: Mapped[str] = mapped_column(String(PN_LENGTH), default="")
    performing_ascii: Mapped[str] = mapped_column(String(PN_LENGTH), default="")
    priority: Mapped[str] = mapped_column(String(16), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=ProcedureStatus.SCHEDULED.value)
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    # How an ordering system (HL7 ORC-2 / ORC-3) names this booking; empty when booked here.
    placer_order_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    filler_order_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    # Requested Procedure Code (0032,1064) and Scheduled Protocol Code (0040,0008): value,
    # coding scheme designator and meaning; an empty value means no code.
    procedure_code_value: Mapped[str] = mapped_column(String(16), default="", index=True)
    procedure_code_scheme: Mapped[str] = mapped_column(String(16), default="")
    procedure_code_meaning: Mapped[str] = mapped_column(String(64), default="")
    protocol_code_value: Mapped[str] = mapped_column(String(16), default="")
    protocol_code_scheme: Mapped[str] = mapped_column(String(16), default="")
    protocol_code_meaning: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="procedures", lazy="joined")


class AuditEntry(Base):
    """One change, who made it and when. Never updated or deleted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    # JSON text: the fields changed, old and new values.
    detail: Mapped[str] = mapped_column(Text, default="{}")


class WorklistQueryLog(Base):
    """The last worklist query of each calling AE title (keys only, never values)."""

    __tablename__ = "worklist_query_log"

    calling_ae_title: Mapped[str] = mapped_column(String(16), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    peer: Mapped[str] = mapped_column(String(64), default="")
    matching_keys: Mapped[str] = mapped_column(Text, default="")
    return_keys: Mapped[str] = mapped_column(Text, default="")
    matches: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[int] = mapped_column(Integer, default=0)
    character_set: Mapped[str] = mapped_column(String(16), default="")


class AuditLogIsAppendOnly(Exception):
    """Raised when code tries to change or remove an audit row."""


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_audit_change(*_args: object) -> None:
    raise AuditLogIsAppendOnly("audit entries cannot be changed or deleted")


# -- accounts and the procedure catalog (front desk) ---------------------------------


class UserRole(enum.StrEnum):
    """What a member of staff may do: front desk work, or that and administration."""

    FRONTDESK = "frontdesk"
    ADMIN = "admin"


class User(Base):
    """A member of staff who signs in to the front desk or owns API tokens."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default=UserRole.FRONTDESK.value)
    # Werkzeug's "scrypt:n:r:p$salt$hash" form; never the password itself.
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    # Set by ``clinic users unlock``: failed sign-ins counted before it no longer block.
    unlocked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)


class ApiToken(Base):
    """A bearer token of the REST API; only its SHA-256 digest is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, to tell tokens apart in lists.
    prefix: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    user: Mapped[User] = relationship(lazy="joined")


class WebSession(Base):
    """A signed-in browser session: the cookie carries a random id, only its digest is here.

    Deleting the rows of a user signs that user out everywhere at once (sign-out, a
    password change, an administrator's "sign out everywhere").
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # The session ends this long after its last use (kept to the minute).
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class CatalogEntry(Base):
    """A procedure the clinic offers: what the front desk picks when booking."""

    __tablename__ = "procedure_catalog"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    description: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16))
    default_station: Mapped[str] = mapped_column(String(16), default="")
    duration_minutes: Mapped[int] = mapped_column(Integer, default=15)
    active: Mapped[bool] = mapped_column(default=True)
    # ``code`` is the procedure's Code Value; its scheme defaults to the clinic's private
    # designator and its meaning to the description. The protocol code is optional.
    code_scheme: Mapped[str] = mapped_column(String(16), default="")
    code_meaning: Mapped[str] = mapped_column(String(64), default="")
    protocol_code_value: Mapped[str] = mapped_column(String(16), default="")
    protocol_code_scheme: Mapped[str] = mapped_column(String(16), default="")
    protocol_code_meaning: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # What the patient is to do before the exam; printed on the appointment slip.
    preparation: Mapped[str] = mapped_column(Text, default="", server_default="")


class PrintJobStatus(enum.StrEnum):
    """Life cycle of a print job: queued until the worker has rendered and dispatched it."""

    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"


class PrintJob(Base):
    """One print request (a film box or a film session N-ACTION) in the durable spool.

    The films' pixels live in ``spool_dir`` (a server-made folder name under the data
    directory); the row is committed before the modality hears success.
    """

    __tablename__ = "print_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The Print Job SOP Instance UID the modality may N-GET.
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=PrintJobStatus.QUEUED.value, index=True)
    calling_ae_title: Mapped[str] = mapped_column(String(16))
    printer_ae_title: Mapped[str] = mapped_column(String(16), index=True)
    films: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    copies: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[str] = mapped_column(String(16), default="MED")
    spool_dir: Mapped[str] = mapped_column(String(255))
    pdf_path: Mapped[str] = mapped_column(String(1024), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    printed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The booking (and so the patient) the films belong to; see clinic.domain.print_links.
    procedure_id: Mapped[int | None] = mapped_column(
        ForeignKey("procedures.id"), nullable=True, index=True, default=None
    )

    procedure: Mapped[Procedure | None] = relationship(lazy="joined")
    # Hold queue: a held job waits at the front desk until it is released or discarded.
    held: Mapped[bool] = mapped_column(default=False)
    # Archive to a PACS (clinic.printing.archive): empty when the printer does not archive,
    # else ArchiveStatus; the destination (AE@host:port) is fixed when the job is spooled.
    archive_status: Mapped[str] = mapped_column(String(16), default="", index=True)
    archive_to: Mapped[str] = mapped_column(String(200), default="")
    archive_error: Mapped[str] = mapped_column(Text, default="")
    archive_attempts: Mapped[int] = mapped_column(Integer, default=0)
    archive_next_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    archive_pending_since: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    archive_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The booking the instances last sent are filed under (a later relink sends a correction).
    archive_procedure_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ArchiveStatus(enum.StrEnum):
    """Where a printed job's copy in the PACS stands."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class PrintArchiveSend(Base):
    """One set of instances that reached the PACS for a job (kept: corrections name it)."""

    __tablename__ = "print_archive_sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key: the history outlives a job removed by retention.
    job_id: Mapped[int] = mapped_column(Integer, index=True)
    procedure_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    destination: Mapped[str] = mapped_column(String(200))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    # JSON list of SOP Instance UIDs.
    sop_instance_uids: Mapped[str] = mapped_column(Text)
    # The earlier send this one replaces (the job was moved to another booking).
    corrects_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PerformedStepStatus(enum.StrEnum):
    """Performed Procedure Step Status (0040,0252) as the modality reports it."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


class PerformedStep(Base):
    """A Modality Performed Procedure Step: what a modality reports it did (MPPS).

    Linked to the bookings it performed through :class:`PerformedStepLink`; a step that
    matches no booking (an unscheduled exam) is kept unlinked for the front desk.
    """

    __tablename__ = "performed_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    calling_ae_title: Mapped[str] = mapped_column(String(16))
    station_ae_title: Mapped[str] = mapped_column(String(16), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    pps_id: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(64), default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(PN_LENGTH), default="")
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="")
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    # JSON list of {"series_instance_uid", "modality", "images"}.
    performed_series: Mapped[str] = mapped_column(Text, default="[]")
    # The whole instance as DICOM JSON (PS3.18 F.2), to answer what the modality sent.
    dataset_json: Mapped[str] = mapped_column(Text, default="{}")
    # Why a DISCONTINUED step stopped ("110514 (DCM) Incorrect worklist entry selected").
    discontinuation_reason: Mapped[str] = mapped_column(String(255), default="")
    # Discontinued because the wrong worklist entry was picked: its bookings went back
    # to SCHEDULED; it stays linked to them for the record, moving nothing.
    wrong_entry: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    links: Mapped[list[PerformedStepLink]] = relationship(
        back_populates="performed_step", cascade="all, delete-orphan"
    )


class PerformedStepLink(Base):
    """A booking that a performed step carried out (one step may do several: grouping)."""

    __tablename__ = "performed_step_links"

    performed_step_id: Mapped[int] = mapped_column(
        ForeignKey("performed_steps.id"), primary_key=True
    )
    procedure_id: Mapped[int] = mapped_column(
        ForeignKey("procedures.id"), primary_key=True, index=True
    )
    # The booking's status when the step was linked ("" for links made before it was
    # kept): where a step taken on the wrong worklist entry returns it (SCHEDULED, ARRIVED).
    status_before: Mapped[str] = mapped_column(String(16), default="")

    performed_step: Mapped[PerformedStep] = relationship(back_populates="links")
    procedure: Mapped[Procedure] = relationship()


class Hl7Message(Base):
    """An HL7 order message that was accepted, kept so a retransmission is not applied twice.

    A sender that missed the acknowledgement sends the same message again with the same
    MSH-10; it gets the stored ``ack`` back instead of a second booking. ``digest`` tells
    a retransmission (same content) from a control ID the sender used again for another
    message; rows stored before digests were kept have none and answer every message
    with their control ID.
    """

    __tablename__ = "hl7_messages"
    __table_args__ = (
        Index(
            "uq_hl7_messages_sender_control_digest",
            "sending_application",
            "sending_facility",
            "control_id",
            "digest",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sending_application: Mapped[str] = mapped_column(String(255))
    sending_facility: Mapped[str] = mapped_column(String(255))
    control_id: Mapped[str] = mapped_column(String(200))
    message_type: Mapped[str] = mapped_column(String(16))
    order_control: Mapped[str] = mapped_column(String(2), default="")
    procedure_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # SHA-256 (hex) of the message without MSH-7, segment ends normalised; None: older row.
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)
    # The acknowledgement as sent (HL7 text, no MLLP framing).
    ack: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
