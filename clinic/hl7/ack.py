"""HL7 acknowledgements: an ACK (or an order response) with MSA, one ERR segment per problem.

Built with python-hl7's containers, so separators inside values are escaped the
way every HL7 reader expects.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hl7

from clinic.domain.codes import LOCAL_SCHEME
from clinic.hl7.orders import ERROR_TEXTS, Header, Problem

#: MSH-3 of every acknowledgement: this service.
APPLICATION = "CLINIC"
_SEPARATORS = "\r|~^&"
_DEFAULT_VERSION = "2.5.1"


def _new_segment(msg: Any, name: str) -> Any:
    seg = msg.create_segment([msg.create_field([name])])
    msg.append(seg)
    return seg


def _put(
    msg: Any, seg: Any, text: str, number: int, component: int | None = None, sub: int | None = None
) -> None:
    if not text:
        return
    escaped = msg.escape(text)
    if component is None:
        seg.assign_field(escaped, number)
    else:
        seg.assign_field(escaped, number, 1, component, sub)


def _put_hd(msg: Any, seg: Any, parts: Sequence[str], number: int) -> None:
    for index, part in enumerate(parts, start=1):
        _put(msg, seg, part, number, index)


#: Order control of the response (HL7 table 0119): accepted, and unable to, per request.
_DONE = {"NW": "OK", "XO": "XR", "CA": "CR"}
_UNABLE = {"NW": "UA", "XO": "UX", "CA": "UC"}
#: Booking status -> ORC-5 order status (HL7 table 0038).
_ORDER_STATUS = {
    "SCHEDULED": "SC",
    "ARRIVED": "SC",
    "IN_PROGRESS": "IP",
    "COMPLETED": "CM",
    "DISCONTINUED": "DC",
    "CANCELLED": "CA",
}
#: The response to each order message: message type, trigger event, structure.
RESPONSES = {"ORM": ("ORR", "O02", "ORR_O02"), "OMI": ("ORI", "O24", "ORI_O24")}


@dataclass(frozen=True)
class OrderState:
    """What an order response tells of the order: the request and the booking's keys.

    Parameters
    ----------
    control : str
        The request's ORC-1 (``NW``, ``XO``, ``CA``).
    placer_order_number : str
        ORC-2 as the placer sent it (or as stored).
    accession_number : str
        The booking's accession number: the filler order number (ORC-3); empty when
        nothing was booked.
    status : str
        The booking's status, for ORC-5.
    requested_procedure_id, step_id, study_instance_uid, modality, station_ae_title : str
        The booking's worklist keys, for the IPC segment of an ORI^O24.
    code : tuple of str
        The booking's procedure code (value, scheme, meaning), for OBR-4.
    """

    control: str
    placer_order_number: str = ""
    accession_number: str = ""
    status: str = ""
    requested_procedure_id: str = ""
    step_id: str = ""
    study_instance_uid: str = ""
    modality: str = ""
    station_ae_title: str = ""
    code: tuple[str, str, str] = ("", "", "")


def _start(head: Header, kind: tuple[str, str, str], now: dt.datetime | None) -> Any:
    """A message with its MSH: addressed back to the sender, ``kind`` = type, event, structure."""
    msg = hl7.Message(separators=_SEPARATORS)
    msh = msg.create_segment(
        [msg.create_field(["MSH"]), msg.create_field(["|"]), msg.create_field(["^~\\&"])]
    )
    msg.append(msh)
    _put(msg, msh, APPLICATION, 3)
    _put_hd(msg, msh, head.receiving_facility, 4)
    _put_hd(msg, msh, head.sending_application, 5)
    _put_hd(msg, msh, head.sending_facility, 6)
    _put(msg, msh, (now or dt.datetime.now()).strftime("%Y%m%d%H%M%S"), 7)
    for index, part in enumerate(kind, start=1):
        _put(msg, msh, part, 9, index)
    _put(msg, msh, uuid.uuid4().hex[:20].upper(), 10)
    _put(msg, msh, head.processing_id or "P", 11)
    _put(msg, msh, head.version or _DEFAULT_VERSION, 12)
    # An answer never asks for acknowledgements of its own (MSH-15/16 NE in enhanced mode).
    if head.enhanced:
        _put(msg, msh, "NE", 15)
        _put(msg, msh, "NE", 16)
    _put(msg, msh, head.character_set, 18)
    return msg


def _acknowledge(msg: Any, code: str, head: Header, problems: Sequence[Problem]) -> None:
    """Append MSA and one ERR per problem."""
    msa = _new_segment(msg, "MSA")
    _put(msg, msa, code, 1)
    # MSA-2 is a required field: present even when the control ID is unknown.
    msa.assign_field(msg.escape(head.control_id), 2)
    if problems:
        _put(msg, msa, problems[0].text[:80], 3)

    for problem in problems:
        err = _new_segment(msg, "ERR")
        where = problem.location
        code_text = ERROR_TEXTS.get(problem.code, "")
        # ERR-1 (ELD): segment^sequence^field^code&text&table, for v2.3/2.4 readers.
        if where is not None:
            _put(msg, err, where.segment, 1, 1)
            _put(msg, err, str(where.sequence), 1, 2)
            if where.field:
                _put(msg, err, str(where.field), 1, 3)
        _put(msg, err, problem.code, 1, 4, 1)
        _put(msg, err, code_text, 1, 4, 2)
        _put(msg, err, "HL70357", 1, 4, 3)
        # ERR-2 (ERL): segment^sequence^field^repetition^component.
        if where is not None:
            _put(msg, err, where.segment, 2, 1)
            _put(msg, err, str(where.sequence), 2, 2)
            if where.field:
                _put(msg, err, str(where.field), 2, 3)
                _put(msg, err, "1", 2, 4)
                if where.component:
                    _put(msg, err, str(where.component), 2, 5)
        _put(msg, err, problem.code, 3, 1)
        _put(msg, err, code_text, 3, 2)
        _put(msg, err, "HL70357", 3, 3)
        _put(msg, err, "E", 4)
        _put(msg, err, problem.text, 8)


def build_ack(
    code: str,
    header: Header | None,
    problems: Sequence[Problem] = (),
    *,
    now: dt.datetime | None = None,
) -> str:
    """Return an acknowledgement (HL7 text, segments ending in CR, no MLLP framing).

    Parameters
    ----------
    code : str
        MSA-1: ``AA`` accepted, ``AE`` error, ``AR`` rejected; in enhanced mode the
        commit acknowledgements ``CA``, ``CE``, ``CR``.
    header : Header or None
        The acknowledged message's header; ``None`` when it had none that could be
        read (MSA-2 is then empty).
    problems : sequence of Problem
        One ERR segment each: ERR-1 (v2.3/2.4 readers) and ERR-2/3/4/8 (v2.5 on).
    now : datetime, optional
        MSH-7; defaults to the current local time.

    Returns
    -------
    str
        ``MSH ... MSA ... [ERR ...]``, ASCII only (other characters are escaped).
    """
    head = header or Header()
    msg = _start(head, ("ACK", head.trigger_event, "ACK"), now)
    _acknowledge(msg, code, head, problems)
    return str(msg)


def build_order_response(
    code: str,
    header: Header,
    state: OrderState,
    problems: Sequence[Problem] = (),
    *,
    now: dt.datetime | None = None,
) -> str:
    """Return the order response of HL7 v2.5 chapter 4: ORR^O02 (to ORM) or ORI^O24 (to OMI).

    MSA and ERR as in :func:`build_ack`, then the order: ORC (order control ``OK``,
    ``XR`` or ``CR`` when done, ``UA``, ``UX`` or ``UC`` when not; the placer order
    number; the accession number as filler order number; the order status) and OBR
    (the same numbers and the procedure code); an ORI also carries IPC with the
    worklist keys (accession, requested procedure, study, step, modality, station).

    Parameters
    ----------
    code : str
        MSA-1: ``AA``, ``AE`` or ``AR``.
    header : Header
        The order message's header (MSH-9.1 ``ORM`` or ``OMI``).
    state : OrderState
        The request and the booking it made or changed.
    problems : sequence of Problem
        One ERR segment each.
    now : datetime, optional
        MSH-7.
    """
    kind = RESPONSES.get(header.message_type, RESPONSES["ORM"])
    msg = _start(header, kind, now)
    _acknowledge(msg, code, header, problems)
    done = code == "AA"
    orc = _new_segment(msg, "ORC")
    _put(msg, orc, (_DONE if done else _UNABLE).get(state.control, "UA" if not done else "OK"), 1)
    _put(msg, orc, state.placer_order_number, 2)
    _put(msg, orc, state.accession_number, 3)
    _put(msg, orc, _ORDER_STATUS.get(state.status, ""), 5)
    obr = _new_segment(msg, "OBR")
    _put(msg, obr, "1", 1)
    _put(msg, obr, state.placer_order_number, 2)
    _put(msg, obr, state.accession_number, 3)
    value, scheme, meaning = state.code
    if value:
        _put(msg, obr, value, 4, 1)
        _put(msg, obr, meaning, 4, 2)
        _put(msg, obr, "L" if scheme == LOCAL_SCHEME else scheme, 4, 3)
    if kind[0] == "ORI":
        # ORI_O24 requires IPC in its order group.
        ipc = _new_segment(msg, "IPC")
        _put(msg, ipc, state.accession_number, 1)
        _put(msg, ipc, state.requested_procedure_id, 2)
        _put(msg, ipc, state.study_instance_uid, 3)
        _put(msg, ipc, state.step_id, 4)
        _put(msg, ipc, state.modality, 5)
        _put(msg, ipc, state.station_ae_title, 9)
    return str(msg)
