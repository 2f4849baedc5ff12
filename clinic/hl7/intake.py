"""Order intake: one HL7 message in, the booking changed through the domain, one ACK out.

Every write to bookings goes through :class:`clinic.domain.bookings.Scheduler` with the
actor ``hl7:<sending application>``; a message that is not accepted writes nothing.
Accepted messages are remembered by sender, MSH-10 and a digest of their content, with
their acknowledgement: a retransmission (same sender, control ID and content) gets the
same answer and is not applied twice; a control ID the sender uses again for another
message (a counter that restarted) is processed as the new message it is.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading

from sqlalchemy import case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.domain.errors import TransitionError, ValidationError
from clinic.hl7 import orders as orm
from clinic.hl7.ack import RESPONSES, OrderState, build_ack, build_order_response
from clinic.hl7.orders import Header, Location, MessageError, Order, Problem
from clinic.store.db import transaction
from clinic.store.models import ACTIVE_STATUSES, Hl7Message, Procedure, ProcedureStatus

log = logging.getLogger(__name__)


class OrderIntake:
    """Turns HL7 order messages into bookings and answers each with an acknowledgement.

    Parameters
    ----------
    scheduler : Scheduler
        The domain every booking change goes through.
    catalog : Catalog
        The procedure catalog (OBR-4 codes -> description, modality, default station).
    order_response : str
        ``ack``: a general acknowledgement; ``orr``: the order response, ORR^O02 to
        ORM^O01 and ORI^O24 to OMI^O23 (:func:`clinic.hl7.ack.build_order_response`).
    """

    def __init__(self, scheduler: Scheduler, catalog: Catalog, order_response: str = "ack") -> None:
        self.scheduler = scheduler
        self.catalog = catalog
        self.order_response = order_response
        self.session_factory: sessionmaker[Session] = scheduler.session_factory
        # One message at a time: the retransmission check and the write it guards
        # must not interleave with a copy of the same message on another connection.
        self._lock = threading.Lock()

    def handle(self, raw: bytes) -> bytes:
        """Process one message and return its acknowledgement; never raises.

        Parameters
        ----------
        raw : bytes
            The message as received, without MLLP framing.

        Returns
        -------
        bytes
            The ACK: ``AA`` when the order was applied (or had been already), ``AR``
            for a message this service does not take, ``AE`` for an order that cannot
            be applied; ``AR``/``AE`` carry ERR segments naming the fields.
        """
        if b"\x00" in raw:  # never part of HL7 text, and PostgreSQL text cannot hold it
            log.warning("HL7 message refused: it contains NUL bytes")
            problem = Problem(Location("MSH"), orm.DATA_TYPE_ERROR, "the message has NUL bytes")
            return self._encode(self._answer("AR", orm.peek_header(raw), [problem]))
        try:
            parsed = orm.parse_message(raw)
        except MessageError as exc:
            header = orm.peek_header(raw)
            log.warning(
                "HL7 message %s refused (%s)",
                header.control_id[:40] if header else "without control ID",
                exc.ack_code,
            )
            return self._encode(self._answer(exc.ack_code, header, exc.problems))
        except Exception as exc:  # third-party parsing: whatever arrives still gets an answer
            log.error("HL7 message could not be read (%s)", type(exc).__name__)
            problem = Problem(Location("MSH"), orm.INTERNAL_ERROR, "the message cannot be read")
            return self._encode(self._answer("AR", orm.peek_header(raw), [problem]))
        header = parsed.header
        digest = content_digest(raw)
        with self._lock:
            stored = self._stored_acks(header)
            replay = next((ack for seen, ack in stored if seen in (None, digest)), None)
            if replay is not None:
                log.info(
                    "HL7 %s %s: retransmission, answered as before",
                    header.type_name,
                    header.control_id[:40],
                )
                return self._encode(replay)
            if stored:
                log.warning(
                    "HL7 %s %s: control ID reused by %s with different content; "
                    "processed as a new message",
                    header.type_name,
                    header.control_id[:40],
                    (header.sender or "an unnamed sender")[:40],
                )
            code, problems, order, procedure_id = self._process(parsed)
            ack = self._answer(code, header, problems, order, procedure_id)
            if code == "AA" and order is not None:
                self._remember(header, order, procedure_id, ack, digest)
        log.info(
            "HL7 %s %s %s: %s",
            header.type_name,
            order.control if order else "",
            header.control_id[:40],
            code,
        )
        return self._encode(ack)

    def refuse(self, prefix: bytes, reason: str) -> bytes:
        """Answer AR to something that is not taken before it is read (too big, unframed).

        Parameters
        ----------
        prefix : bytes
            The first bytes received, to echo the control ID when there is one.
        reason : str
            Why, in plain words (no patient data).
        """
        header = orm.peek_header(prefix)
        log.warning(
            "HL7 message %s refused: %s",
            header.control_id[:40] if header else "without control ID",
            reason,
        )
        problem = Problem(None, orm.INTERNAL_ERROR, reason)
        return self._encode(self._answer("AR", header, [problem]))

    # -- internals -------------------------------------------------------------------

    def _answer(
        self,
        code: str,
        header: Header | None,
        problems: list[Problem],
        order: Order | None = None,
        procedure_id: int | None = None,
    ) -> str:
        """The answer to a message: commit ACK, ACK or order response, or nothing.

        Original mode (MSH-15 and MSH-16 empty): the application acknowledgement, an ACK
        or (``order_response = "orr"``) the order response. Enhanced mode: the commit
        acknowledgement (CA applied, CE not applied for an error in it, CR rejected)
        when MSH-15 asks for one in this case; else the application acknowledgement
        when MSH-16 asks for one; else nothing (an empty answer is not sent).
        """
        if header is not None and header.enhanced:
            if _wanted(header.accept_ack_type, code):
                return build_ack(_COMMIT[code], header, problems)
            if not _wanted(header.application_ack_type, code):
                return ""
        if (
            self.order_response == "orr"
            and header is not None
            and header.message_type in RESPONSES
            and order is not None
        ):
            return build_order_response(code, header, self._state(order, procedure_id), problems)
        return build_ack(code, header, problems)

    def _state(self, order: Order, procedure_id: int | None) -> OrderState:
        """What the order response says: the request, and the booking when there is one."""
        proc = None
        if procedure_id is not None:
            with self.session_factory() as session:
                proc = session.get(Procedure, procedure_id)
        if proc is None:
            return OrderState(order.control, order.placer_order_number)
        return OrderState(
            order.control,
            proc.placer_order_number or order.placer_order_number,
            proc.accession_number,
            proc.status,
            proc.requested_procedure_id,
            proc.step_id,
            proc.study_instance_uid,
            proc.modality,
            proc.station_ae_title,
            (proc.procedure_code_value, proc.procedure_code_scheme, proc.procedure_code_meaning),
        )

    @staticmethod
    def _encode(ack: str) -> bytes:
        # build_ack escapes every non-ASCII character.
        return ack.encode("ascii", errors="replace")

    def _process(
        self, parsed: orm.ParsedMessage
    ) -> tuple[str, list[Problem], Order | None, int | None]:
        """Apply the order; return the ACK code, problems, the order and the booking id."""
        order: Order | None = None
        try:
            order = orm.read_order(parsed, self._catalog_entry)
            return "AA", [], order, self._apply(order, parsed.header)
        except MessageError as exc:
            return exc.ack_code, exc.problems, order, None
        except ValidationError as exc:
            locations = order.locations if order is not None else {}
            return "AE", orm.problems_for(exc.errors, locations), order, None
        except TransitionError as exc:
            where = Location("ORC", 1)
            return "AE", [Problem(where, orm.INTERNAL_ERROR, f"ORC-1 {exc}")], order, None
        except Exception as exc:  # the sender must get an answer whatever went wrong
            log.error(
                "HL7 %s %s: internal error (%s)",
                parsed.header.type_name,
                parsed.header.control_id[:40],
                type(exc).__name__,
            )
            problem = Problem(None, orm.INTERNAL_ERROR, "internal error; see the service log")
            return "AE", [problem], order, None

    def _catalog_entry(self, code: str) -> orm.CatalogInfo | None:
        return self.catalog.entry(code)

    def _apply(self, order: Order, header: Header) -> int | None:
        actor = f"hl7:{header.sender or 'unknown'}"
        existing = self._find(order)
        if order.control == "NW":
            if existing is not None and existing.status in ACTIVE_STATUSES:
                where, number = _identifier(order)
                raise orm.error(
                    where, orm.DUPLICATE_KEY, f"{where} order {number[:20]} is already booked"
                )
            fields = {k: v for k, v in order.fields.items() if v}
            return self.scheduler.book(fields, actor, update_patient=True).id
        if existing is None:
            where, number = _identifier(order)
            if not number:
                raise orm.error(
                    Location("ORC", 2),
                    orm.REQUIRED_MISSING,
                    "ORC-2 placer order number (or ORC-3, OBR-18) is needed to find the order",
                )
            raise orm.error(where, orm.UNKNOWN_KEY, f"{where} order {number[:20]} is not known")
        if order.control == "XO":
            return self.scheduler.update(existing.id, order.fields, actor, update_patient=True).id
        # CA: cancelling a cancelled order again changes nothing and is no error.
        if existing.status != ProcedureStatus.CANCELLED:
            reason = order.cancel_reason or f"cancelled by {header.sender or 'the ordering system'}"
            self.scheduler.cancel(existing.id, reason[:1024], actor)
        return existing.id

    def _find(self, order: Order) -> Procedure | None:
        """Return the booking an order refers to: by placer, filler or accession number.

        A number may have been used again after a cancellation: the active booking wins,
        then the most recent.
        """
        active_first = case((Procedure.status.in_(ACTIVE_STATUSES), 0), else_=1)
        with self.session_factory() as session:
            for column, number in (
                (Procedure.placer_order_number, order.placer_order_number),
                (Procedure.filler_order_number, order.filler_order_number),
                (Procedure.accession_number, order.accession_number),
            ):
                if not number:
                    continue
                found = session.scalars(
                    select(Procedure)
                    .where(column == number)
                    .order_by(active_first, Procedure.id.desc())
                    .limit(1)
                ).first()
                if found is not None:
                    return found
        return None

    def _stored_acks(self, header: Header) -> list[tuple[str | None, str]]:
        """The ``(digest, ack)`` of each accepted message with this sender and control ID."""
        with self.session_factory() as session:
            rows = session.execute(
                select(Hl7Message.digest, Hl7Message.ack)
                .where(
                    Hl7Message.sending_application == _hd(header.sending_application),
                    Hl7Message.sending_facility == _hd(header.sending_facility),
                    Hl7Message.control_id == header.control_id[:200],
                )
                .order_by(Hl7Message.id)
            )
            return [(digest, ack) for digest, ack in rows]

    def _remember(
        self, header: Header, order: Order, procedure_id: int | None, ack: str, digest: str
    ) -> None:
        try:
            with transaction(self.session_factory) as session:
                session.add(
                    Hl7Message(
                        sending_application=_hd(header.sending_application),
                        sending_facility=_hd(header.sending_facility),
                        control_id=header.control_id[:200],
                        message_type=header.type_name[:16],
                        order_control=order.control,
                        procedure_id=procedure_id,
                        digest=digest,
                        ack=ack,
                    )
                )
        except IntegrityError:
            # Another process took the same message at the same moment; its record stands.
            log.warning("HL7 %s: control ID recorded twice", header.control_id[:40])


_SEGMENT_ENDS = re.compile(rb"[\r\n]+")
#: MSH-7 (date/time of message) as an index into the MSH segment split on its field
#: separator: ``MSH``, MSH-2 (encoding characters), MSH-3, ... MSH-7.
_MSH_7 = 6


def content_digest(raw: bytes) -> str:
    """Return the SHA-256 (hex) of a message's content, the part a resend keeps.

    A sender that repeats a message after a lost acknowledgement may renew its MSH-7
    (date/time of message) and end segments with CR, LF or CR LF: both are left out,
    so only a different message gets a different digest.

    Parameters
    ----------
    raw : bytes
        The message as received, without MLLP framing.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    data = _SEGMENT_ENDS.sub(b"\r", raw).strip(b"\r\n\t ")
    first, end, rest = data.partition(b"\r")
    if first.startswith(b"MSH") and len(first) > 3:
        separator = first[3:4]
        fields = first.split(separator)
        if len(fields) > _MSH_7:
            fields[_MSH_7] = b""
        first = separator.join(fields)
    return hashlib.sha256(first + end + rest).hexdigest()


#: Application acknowledgement code -> commit acknowledgement code (enhanced mode).
_COMMIT = {"AA": "CA", "AE": "CE", "AR": "CR"}


def _wanted(condition: str, code: str) -> bool:
    """Whether an MSH-15/16 condition (AL, NE, ER, SU; empty: never) asks for an answer."""
    if condition == "AL":
        return True
    if condition == "ER":
        return code != "AA"
    if condition == "SU":
        return code == "AA"
    return False


def _hd(parts: tuple[str, ...]) -> str:
    return "^".join(parts)[:255]


def _identifier(order: Order) -> tuple[Location, str]:
    """Return where the order's first identifying number is and the number itself."""
    for key, number in (
        ("placer_order_number", order.placer_order_number),
        ("filler_order_number", order.filler_order_number),
        ("accession_number", order.accession_number),
    ):
        if number:
            return order.locations.get(key, orm.DEFAULT_LOCATIONS[key]), number
    return Location("ORC", 2), ""
