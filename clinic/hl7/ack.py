"""HL7 acknowledgements: an ACK with MSA, and one ERR segment per problem.

Built with python-hl7's containers, so separators inside values are escaped the
way every HL7 reader expects.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import hl7

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
        MSA-1: ``AA`` accepted, ``AE`` error, ``AR`` rejected.
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
    _put(msg, msh, "ACK", 9, 1)
    _put(msg, msh, head.trigger_event, 9, 2)
    _put(msg, msh, "ACK", 9, 3)
    _put(msg, msh, uuid.uuid4().hex[:20].upper(), 10)
    _put(msg, msh, head.processing_id or "P", 11)
    _put(msg, msh, head.version or _DEFAULT_VERSION, 12)
    _put(msg, msh, head.character_set, 18)

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
    return str(msg)
