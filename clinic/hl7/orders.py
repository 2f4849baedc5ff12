"""Reading HL7 v2 order messages (ORM^O01, OMI^O23) into booking fields.

Parsing is python-hl7's; this module decides how the bytes become text (MSH-18),
which fields mean what (as IHE Scheduled Workflow maps them onto the worklist) and
which field is behind every problem, so an acknowledgement can name it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import hl7
import hl7.util

from clinic.domain.codes import LOCAL_SCHEME, scheme_from_hl7

# python-hl7 logs the raw value of a field it cannot unescape: that is patient data.
logging.getLogger(hl7.util.__file__).setLevel(logging.CRITICAL + 1)

#: MSH-18 character set names and the codecs that decode them. Empty means ASCII.
CHARSETS: dict[str, str] = {
    "": "ascii",
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
}

#: Message type and trigger event -> the HL7 versions accepted for it.
ORDER_MESSAGES: dict[tuple[str, str], tuple[str, ...]] = {
    ("ORM", "O01"): ("2.3", "2.3.1", "2.4", "2.5", "2.5.1"),
    ("OMI", "O23"): ("2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"),
}

#: Order control codes (ORC-1) acted on: new order, change, cancel.
ORDER_CONTROLS = ("NW", "XO", "CA")

# HL7 table 0357, message error condition codes.
REQUIRED_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
SEGMENT_SEQUENCE_ERROR = "100"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT = "201"
UNSUPPORTED_VERSION = "203"
UNKNOWN_KEY = "204"
DUPLICATE_KEY = "205"
INTERNAL_ERROR = "207"

ERROR_TEXTS: dict[str, str] = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT: "Unsupported event code",
    UNSUPPORTED_VERSION: "Unsupported version id",
    UNKNOWN_KEY: "Unknown key identifier",
    DUPLICATE_KEY: "Duplicate key identifier",
    INTERNAL_ERROR: "Application internal error",
}

# HL7 administrative sex (table 0001) -> DICOM Patient's Sex; unknown stays empty.
_SEXES = {"M": "M", "F": "F", "O": "O", "A": "O", "N": "O", "U": ""}
# Priority (TQ1-9 / TQ component 6) -> the booking's priority.
_PRIORITIES = {"S": "STAT", "A": "HIGH", "T": "HIGH", "P": "HIGH", "R": "ROUTINE"}
_HL7_NULL = '""'  # HL7's explicit "delete this value"
_DATE = re.compile(r"^(\d{8})(?:\d{2,6}(?:\.\d{1,4})?)?(?:[+-]\d{4})?$")
_DATETIME = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d{1,4})?(?:([+-])(\d{2})(\d{2}))?$"
)


@dataclass(frozen=True)
class Location:
    """Where a value sits in a message: segment, its sequence, field and component.

    ``field`` 0 means the segment as a whole; ``component`` 0 the field as a whole.
    """

    segment: str
    field: int = 0
    component: int = 0
    sequence: int = 1

    def __str__(self) -> str:
        text = self.segment
        if self.field:
            text += f"-{self.field}"
            if self.component:
                text += f".{self.component}"
        return text


@dataclass(frozen=True)
class Problem:
    """One reason a message was not accepted, for one ERR segment.

    Parameters
    ----------
    location : Location or None
        The offending field, when there is one.
    code : str
        HL7 table 0357 error code (e.g. ``101`` required field missing).
    text : str
        A readable explanation, free of patient data.
    """

    location: Location | None
    code: str
    text: str


class MessageError(Exception):
    """The message cannot be acted on.

    Parameters
    ----------
    ack_code : str
        ``AR`` (rejected: not a message this service takes) or ``AE`` (an error in
        its content).
    problems : sequence of Problem
        Each becomes an ERR segment.
    """

    def __init__(self, ack_code: str, problems: list[Problem]) -> None:
        self.ack_code = ack_code
        self.problems = problems
        super().__init__("; ".join(p.text for p in problems))


def reject(location: Location | None, code: str, text: str) -> MessageError:
    """Return an AR :class:`MessageError` with one problem."""
    return MessageError("AR", [Problem(location, code, text)])


def error(location: Location | None, code: str, text: str) -> MessageError:
    """Return an AE :class:`MessageError` with one problem."""
    return MessageError("AE", [Problem(location, code, text)])


@dataclass(frozen=True)
class Header:
    """What the MSH segment says about a message and its sender.

    Hierarchic designators (MSH-3 to MSH-6) keep their first three components.
    """

    sending_application: tuple[str, ...] = ()
    sending_facility: tuple[str, ...] = ()
    receiving_application: tuple[str, ...] = ()
    receiving_facility: tuple[str, ...] = ()
    control_id: str = ""
    message_type: str = ""
    trigger_event: str = ""
    processing_id: str = ""
    version: str = ""
    character_set: str = ""
    #: MSH-15 and MSH-16: ``AL``, ``NE``, ``ER``, ``SU``; either set means enhanced mode.
    accept_ack_type: str = ""
    application_ack_type: str = ""

    @property
    def enhanced(self) -> bool:
        """Whether the sender asks for enhanced acknowledgement (MSH-15 or MSH-16 valued)."""
        return bool(self.accept_ack_type or self.application_ack_type)

    @property
    def sender(self) -> str:
        """The sending application's name (MSH-3.1), for the audit log."""
        return self.sending_application[0] if self.sending_application else ""

    @property
    def type_name(self) -> str:
        """``ORM^O01`` and the like, for log lines."""
        if self.trigger_event:
            return f"{self.message_type}^{self.trigger_event}"
        return self.message_type


@dataclass(frozen=True)
class ParsedMessage:
    """A decoded, parsed message whose header names a supported order message."""

    header: Header
    message: Any  # hl7.Message


class CatalogInfo(Protocol):
    """What the mapping needs of a procedure catalog entry."""

    code: str
    code_scheme: str
    code_meaning: str
    description: str
    modality: str
    default_station: str


CatalogLookup = Callable[[str], CatalogInfo | None]


@dataclass(frozen=True)
class Order:
    """One order as the scheduling domain takes it.

    Attributes
    ----------
    control : str
        ORC-1: ``NW``, ``XO`` or ``CA``.
    fields : dict
        Booking fields (see :data:`clinic.domain.fields.FIELDS`) as text; only
        those the message carries. An empty value asks to clear the field (HL7 ``""``).
    locations : dict
        Booking field -> where in the message its value came from.
    """

    control: str
    placer_order_number: str
    filler_order_number: str
    accession_number: str
    fields: dict[str, str] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)
    cancel_reason: str = ""


# -- decoding -----------------------------------------------------------------------


def _normalise(raw: bytes) -> bytes:
    """Return ``raw`` with CR LF, LF and blank lines turned into single CR segment ends.

    Some senders end segments with LF; python-hl7 splits on CR only and trips over
    empty segments.
    """
    return re.sub(rb"[\r\n]+", b"\r", raw).strip(b"\r\n\t ")


def _parse(text: str) -> Any:
    try:
        return hl7.parse(text)
    except Exception as exc:  # the parser raises many types on malformed input
        raise reject(
            Location("MSH"), SEGMENT_SEQUENCE_ERROR, f"the message cannot be parsed ({exc})"[:200]
        ) from None


def _components(seg: Any, number: int, count: int = 3) -> tuple[str, ...]:
    values = [value(seg, number, c) for c in range(1, count + 1)]
    while values and not values[-1]:
        values.pop()
    return tuple(values)


def read_header(msg: Any) -> Header:
    """Return the :class:`Header` of a parsed message (whose first segment is MSH)."""
    msh = msg[0]
    return Header(
        sending_application=_components(msh, 3),
        sending_facility=_components(msh, 4),
        receiving_application=_components(msh, 5),
        receiving_facility=_components(msh, 6),
        control_id=value(msh, 10),
        message_type=value(msh, 9, 1).upper(),
        trigger_event=value(msh, 9, 2).upper(),
        processing_id=value(msh, 11),
        version=value(msh, 12),
        character_set=value(msh, 18).upper(),
        accept_ack_type=value(msh, 15).upper(),
        application_ack_type=value(msh, 16).upper(),
    )


def peek_header(raw: bytes) -> Header | None:
    """Best-effort header of something that may not be a valid message (for refusals).

    Parameters
    ----------
    raw : bytes
        The message or its first bytes.

    Returns
    -------
    Header or None
        ``None`` when the bytes do not start with an MSH segment that parses.
    """
    data = _normalise(raw)
    if not data.startswith(b"MSH") or len(data) < 8:
        return None
    # Latin-1 maps every byte to a character, and MSH fields are ASCII in every set.
    first = data.split(b"\r", 1)[0].decode("latin-1")
    try:
        return read_header(hl7.parse(first))
    except Exception:  # a refusal must be answered whatever the bytes are
        return None


def parse_message(raw: bytes) -> ParsedMessage:
    """Decode and parse one message and check that its header names an order message.

    Parameters
    ----------
    raw : bytes
        The message as received (MLLP framing removed).

    Returns
    -------
    ParsedMessage
        Header and python-hl7 message.

    Raises
    ------
    MessageError
        AR: not HL7, no MSH, an unknown character set or bytes that are not text in
        it, an unsupported message type, event or version, or no control ID.
    """
    data = _normalise(raw)
    if not data.startswith(b"MSH") or len(data) < 8 or data[3:4].isalnum():
        raise reject(
            Location("MSH"),
            SEGMENT_SEQUENCE_ERROR,
            "the message does not start with an MSH segment",
        )
    # MSH-18 decides the decoding; find it first through a lossless Latin-1 reading.
    peek = _parse(data.decode("latin-1"))
    charset = value(peek[0], 18).upper()
    codec = CHARSETS.get(charset)
    if codec is None:
        raise reject(
            Location("MSH", 18),
            TABLE_VALUE_NOT_FOUND,
            f"character set {charset[:20]!r} is not supported (use ASCII, 8859/1 or UNICODE UTF-8)",
        )
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise reject(
            Location("MSH", 18),
            DATA_TYPE_ERROR,
            f"byte {exc.start} is not valid {charset or 'ASCII'} text; "
            f"MSH-18 must name the character set the message is written in",
        ) from None
    msg = _parse(text)
    header = read_header(msg)
    key = (header.message_type, header.trigger_event)
    if header.message_type not in {t for t, _ in ORDER_MESSAGES}:
        raise reject(
            Location("MSH", 9, 1),
            UNSUPPORTED_MESSAGE_TYPE,
            f"message type {header.message_type[:10]!r} is not supported (ORM^O01 and OMI^O23 are)",
        )
    if key not in ORDER_MESSAGES:
        raise reject(
            Location("MSH", 9, 2),
            UNSUPPORTED_EVENT,
            f"trigger event {header.trigger_event[:10]!r} is not supported for "
            f"{header.message_type} (ORM^O01 and OMI^O23 are)",
        )
    if not header.control_id:
        raise reject(Location("MSH", 10), REQUIRED_MISSING, "MSH-10 message control ID is empty")
    if header.version not in ORDER_MESSAGES[key]:
        raise reject(
            Location("MSH", 12),
            UNSUPPORTED_VERSION,
            f"HL7 version {header.version[:10]!r} is not supported for {header.type_name} "
            f"({', '.join(ORDER_MESSAGES[key])})",
        )
    return ParsedMessage(header, msg)


# -- field access --------------------------------------------------------------------


def value(seg: Any, number: int, component: int = 1, sub: int = 1, repetition: int = 1) -> str:
    """Return one unescaped value of a python-hl7 segment, ``""`` when absent.

    Parameters
    ----------
    seg : hl7.Segment or None
        The segment (``None`` reads as absent).
    number : int
        Field number as HL7 counts (MSH-3 is 3).
    component, sub, repetition : int
        1-based positions within the field.
    """
    if seg is None:
        return ""
    try:
        found = seg.extract_field(1, number, repetition, component, sub)
    except (IndexError, TypeError):  # python-hl7's "not that deep": absent
        return ""
    return str(found).strip()


def repetitions(seg: Any, number: int) -> int:
    """Return how many repetitions field ``number`` of ``seg`` has (0 when absent)."""
    if seg is None or number >= len(seg):
        return 0
    found = seg[number]
    return len(found) if isinstance(found, list) else 1


def segments(msg: Any) -> list[tuple[str, Any]]:
    """Return ``(segment ID, segment)`` for every segment, in order."""
    return [(str(seg[0]).strip().upper(), seg) for seg in msg]


def _clean_component(text: str) -> str:
    # ^ and = delimit DICOM name components and groups; inside a component they would
    # shift everything after them.
    return text.replace("^", " ").replace("=", " ").strip()


def dicom_person_name(
    family: str, given: str = "", middle: str = "", prefix: str = "", suffix: str = ""
) -> str:
    """Return a DICOM PN group ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``, trailing empties dropped.

    Examples
    --------
    >>> dicom_person_name("Doe", "John", "", "Dr", "")
    'Doe^John^^Dr'
    """
    parts = [_clean_component(p) for p in (family, given, middle, prefix, suffix)]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def xpn_to_pn(seg: Any, number: int) -> str:
    """Map an XPN field (e.g. PID-5) to a DICOM person name.

    XPN orders its components family, given, further given names, suffix, prefix;
    DICOM orders them family, given, middle, prefix, suffix. The legal name (XPN-7
    ``L``) wins over other repetitions; repetitions whose XPN-8 is ``I``
    (ideographic) or ``P`` (phonetic) become the second and third PN groups.
    """
    groups = {"A": "", "I": "", "P": ""}
    count = repetitions(seg, number)
    reps = range(1, count + 1)
    legal = [r for r in reps if value(seg, number, 7, repetition=r).upper() == "L"]
    for rep in legal + [r for r in reps if r not in legal]:
        representation = value(seg, number, 8, repetition=rep).upper() or "A"
        if representation not in groups or groups[representation]:
            continue
        groups[representation] = dicom_person_name(
            value(seg, number, 1, 1, rep),
            value(seg, number, 2, repetition=rep),
            value(seg, number, 3, repetition=rep),
            value(seg, number, 5, repetition=rep),
            value(seg, number, 4, repetition=rep),
        )
    text = "=".join((groups["A"], groups["I"], groups["P"]))
    return text.rstrip("=")


def xcn_to_pn(seg: Any, number: int) -> str:
    """Map the first repetition of an XCN field (e.g. OBR-16) to a DICOM person name.

    XCN components: 1 ID, 2 family, 3 given, 4 further given, 5 suffix, 6 prefix.
    """
    return dicom_person_name(
        value(seg, number, 2, 1),
        value(seg, number, 3),
        value(seg, number, 4),
        value(seg, number, 6),
        value(seg, number, 5),
    )


def hl7_datetime(text: str) -> dt.datetime:
    """Parse an HL7 TS/DTM with at least minutes, into local time without tzinfo.

    A UTC offset, when given, is converted to this machine's local time (bookings
    are stored in local time).

    Raises
    ------
    ValueError
        When the text is not a date and time with at least minute precision.
    """
    match = _DATETIME.match(text)
    if not match:
        raise ValueError("must be a date and time written YYYYMMDDHHMM[SS]")
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    if sign:
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m))
        zone = dt.timezone(offset if sign == "+" else -offset)
        moment = moment.replace(tzinfo=zone).astimezone().replace(tzinfo=None)
    return moment


# -- mapping -------------------------------------------------------------------------


@dataclass
class _Mapped:
    fields: dict[str, str] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def put(self, key: str, text: str, where: Location) -> None:
        """Record a non-empty value (HL7 ``""`` records an explicit empty one)."""
        if text == _HL7_NULL:
            text = ""
        elif not text:
            return
        self.fields[key] = text
        self.locations[key] = where

    def first(self, key: str, *candidates: tuple[str, Location]) -> None:
        """Record the first non-empty candidate."""
        for text, where in candidates:
            if text:
                self.put(key, text, where)
                return


def _pick(segs: list[tuple[str, Any]], name: str) -> list[Any]:
    return [seg for sid, seg in segs if sid == name]


def read_order(parsed: ParsedMessage, catalog: CatalogLookup) -> Order:
    """Map the order in an ORM^O01 or OMI^O23 message onto booking fields.

    Parameters
    ----------
    parsed : ParsedMessage
        From :func:`parse_message`.
    catalog : callable
        Procedure code (OBR-4.1, upper case) -> catalog entry or ``None``.

    Returns
    -------
    Order
        The order control, the identifiers that find an existing booking and the
        fields to book or change. Values are not validated here beyond their HL7
        form; :func:`clinic.domain.bookings.clean_procedure` does that.

    Raises
    ------
    MessageError
        A missing segment, more than one order, an unsupported order control or a
        value in the wrong HL7 form.
    """
    segs = segments(parsed.message)
    orcs, obrs = _pick(segs, "ORC"), _pick(segs, "OBR")
    if not orcs:
        raise error(Location("ORC"), SEGMENT_SEQUENCE_ERROR, "the ORC segment is missing")
    if len(orcs) > 1 or len(obrs) > 1:
        where = Location("ORC", sequence=2) if len(orcs) > 1 else Location("OBR", sequence=2)
        raise error(where, SEGMENT_SEQUENCE_ERROR, "only one order per message is supported")
    orc = orcs[0]
    obr = obrs[0] if obrs else None
    pid = next(iter(_pick(segs, "PID")), None)
    tq1 = next(iter(_pick(segs, "TQ1")), None)
    zds = next(iter(_pick(segs, "ZDS")), None)
    ipc = next(iter(_pick(segs, "IPC")), None)
    pv1 = next(iter(_pick(segs, "PV1")), None)

    control = value(orc, 1).upper()
    if control not in ORDER_CONTROLS:
        raise reject(
            Location("ORC", 1),
            TABLE_VALUE_NOT_FOUND,
            f"order control {control[:4]!r} is not supported (NW, XO and CA are)",
        )
    if control in ("NW", "XO") and obr is None:
        raise error(Location("OBR"), SEGMENT_SEQUENCE_ERROR, "the OBR segment is missing")
    if control == "NW" and pid is None:
        raise error(Location("PID"), SEGMENT_SEQUENCE_ERROR, "the PID segment is missing")

    out = _Mapped()
    out.first(
        "placer_order_number",
        (value(orc, 2), Location("ORC", 2)),
        (value(obr, 2), Location("OBR", 2)),
    )
    out.first(
        "filler_order_number",
        (value(orc, 3), Location("ORC", 3)),
        (value(obr, 3), Location("OBR", 3)),
    )
    out.first(
        "accession_number",
        (value(ipc, 1), Location("IPC", 1)),
        (value(obr, 18), Location("OBR", 18)),
    )
    identifiers = (
        out.fields.get("placer_order_number", ""),
        out.fields.get("filler_order_number", ""),
        out.fields.get("accession_number", ""),
    )
    if control == "CA":
        reason = value(orc, 16, 2) or value(orc, 16, 1)
        return Order(control, *identifiers, out.fields, out.locations, cancel_reason=reason)

    if pid is not None:
        _map_patient(pid, out)
    _map_procedure(obr, ipc, zds, out, catalog)
    out.first(
        "referring_physician",
        (xcn_to_pn(obr, 16), Location("OBR", 16)),
        (xcn_to_pn(orc, 12), Location("ORC", 12)),
        (xcn_to_pn(pv1, 8), Location("PV1", 8)),
    )
    _map_timing(orc, obr, tq1, out)
    if out.problems:
        raise MessageError("AE", out.problems)
    return Order(control, *identifiers, out.fields, out.locations)


def _map_patient(pid: Any, out: _Mapped) -> None:
    out.put("patient_id", value(pid, 3), Location("PID", 3))
    out.put("patient_name", xpn_to_pn(pid, 5), Location("PID", 5))
    birth = value(pid, 7)
    if birth and birth != _HL7_NULL:
        match = _DATE.match(birth)
        if match is None:
            out.problems.append(
                Problem(Location("PID", 7), DATA_TYPE_ERROR, "PID-7 birth date must be YYYYMMDD")
            )
        else:
            out.put("patient_birth_date", match.group(1), Location("PID", 7))
    else:
        out.put("patient_birth_date", birth, Location("PID", 7))
    sex = value(pid, 8).upper()
    if sex and sex != _HL7_NULL:
        if sex not in _SEXES:
            out.problems.append(
                Problem(
                    Location("PID", 8),
                    TABLE_VALUE_NOT_FOUND,
                    "PID-8 sex must be one of M, F, O, U, A, N",
                )
            )
        else:
            out.put("patient_sex", _SEXES[sex] or _HL7_NULL, Location("PID", 8))
    else:
        out.put("patient_sex", sex, Location("PID", 8))


def coded_element(seg: Any, number: int, repetition: int = 1) -> tuple[str, str, str]:
    """Read a CE/CWE field as (value, DICOM coding scheme designator, meaning).

    The primary triplet (components 1-3) wins; without a value, the alternate one
    (components 4-6). Coding systems map as :func:`clinic.domain.codes.scheme_from_hl7`
    says: a local code gets the clinic's private designator. An empty value gives
    ``("", "", "")``.
    """
    for first in (1, 4):
        code = value(seg, number, first, repetition=repetition)
        if code:
            meaning = value(seg, number, first + 1, repetition=repetition)
            system = value(seg, number, first + 2, repetition=repetition)
            return code, scheme_from_hl7(system), meaning
    return "", "", ""


def _code_text(code: str, scheme: str, meaning: str) -> str:
    """A code as booking field text (the JSON object :func:`parse_code` reads)."""
    if code == _HL7_NULL:
        return _HL7_NULL
    return json.dumps({"value": code, "scheme": scheme, "meaning": (meaning or code)[:64]})


def _map_procedure(obr: Any, ipc: Any, zds: Any, out: _Mapped, catalog: CatalogLookup) -> None:
    code = value(obr, 4, 1).upper()
    entry = catalog(code) if code else None
    text = value(obr, 4, 2) or value(obr, 4, 5)
    description = entry.description if entry is not None else text
    # LO holds 64 characters; a longer free text is cut rather than refusing the order.
    out.put("procedure_description", description[:64], Location("OBR", 4))
    # The requested procedure's code: OBR-44 (procedure code) when sent, else OBR-4.
    where = Location("OBR", 44)
    code_value, scheme, meaning = coded_element(obr, 44)
    if not code_value:
        where = Location("OBR", 4)
        code_value, scheme, meaning = coded_element(obr, 4)
        if entry is not None:  # a catalog code: the catalog names scheme and meaning
            code_value = entry.code or code_value
            scheme = entry.code_scheme or LOCAL_SCHEME
            meaning = entry.code_meaning or entry.description
    if code_value:
        out.put("procedure_code", _code_text(code_value, scheme, meaning or text), where)
    protocol = coded_element(ipc, 6)
    if protocol[0]:
        out.put("protocol_code", _code_text(*protocol), Location("IPC", 6))
    out.first(
        "modality",
        (value(ipc, 5), Location("IPC", 5)),
        (value(obr, 24), Location("OBR", 24)),
        (entry.modality if entry is not None else "", Location("OBR", 4)),
    )
    out.first(
        "station_ae_title",
        (value(ipc, 9), Location("IPC", 9)),
        (value(obr, 21), Location("OBR", 21)),
        (entry.default_station if entry is not None else "", Location("OBR", 4)),
    )
    out.first(
        "requested_procedure_id",
        (value(ipc, 2), Location("IPC", 2)),
        (value(obr, 19), Location("OBR", 19)),
    )
    out.first("step_id", (value(ipc, 4), Location("IPC", 4)), (value(obr, 20), Location("OBR", 20)))
    out.first(
        "study_instance_uid",
        (value(ipc, 3), Location("IPC", 3)),
        (value(zds, 1), Location("ZDS", 1)),
    )


def _map_timing(orc: Any, obr: Any, tq1: Any, out: _Mapped) -> None:
    candidates = (
        (value(tq1, 7), Location("TQ1", 7)),
        (value(obr, 27, 4), Location("OBR", 27, 4)),
        (value(orc, 7, 4), Location("ORC", 7, 4)),
    )
    for text, where in candidates:
        if text:
            try:
                start = hl7_datetime(text)
            except ValueError as exc:
                out.problems.append(Problem(where, DATA_TYPE_ERROR, f"{where} start time {exc}"))
            else:
                out.put("scheduled_start", start.strftime("%Y-%m-%dT%H:%M:%S"), where)
            break
    priority = value(tq1, 9) or value(obr, 27, 6) or value(orc, 7, 6)
    if priority.upper() in _PRIORITIES:
        out.put("priority", _PRIORITIES[priority.upper()], Location("TQ1", 9))


# -- domain errors -> locations ------------------------------------------------------

#: Where a booking field lives when the message did not carry it.
DEFAULT_LOCATIONS: dict[str, Location] = {
    "patient_id": Location("PID", 3),
    "patient_name": Location("PID", 5),
    "patient_birth_date": Location("PID", 7),
    "patient_sex": Location("PID", 8),
    "placer_order_number": Location("ORC", 2),
    "filler_order_number": Location("ORC", 3),
    "procedure_description": Location("OBR", 4),
    "procedure_code": Location("OBR", 4),
    "protocol_code": Location("IPC", 6),
    "referring_physician": Location("OBR", 16),
    "accession_number": Location("OBR", 18),
    "requested_procedure_id": Location("OBR", 19),
    "step_id": Location("OBR", 20),
    "station_ae_title": Location("OBR", 21),
    "modality": Location("OBR", 24),
    "scheduled_start": Location("OBR", 27, 4),
    "study_instance_uid": Location("ZDS", 1),
    "priority": Location("TQ1", 9),
}

_LABELS: dict[str, str] = {
    "patient_id": "patient ID",
    "patient_name": "patient name",
    "patient_birth_date": "birth date",
    "patient_sex": "sex",
    "placer_order_number": "placer order number",
    "filler_order_number": "filler order number",
    "procedure_description": "procedure",
    "procedure_code": "procedure code",
    "protocol_code": "protocol code",
    "referring_physician": "referring physician",
    "accession_number": "accession number",
    "requested_procedure_id": "requested procedure ID",
    "step_id": "scheduled procedure step ID",
    "station_ae_title": "station AE title",
    "modality": "modality",
    "scheduled_start": "start time",
    "study_instance_uid": "Study Instance UID",
    "priority": "priority",
}


def problems_for(errors: Mapping[str, str], locations: Mapping[str, Location]) -> list[Problem]:
    """Turn the domain's per-field validation errors into problems naming HL7 fields.

    Parameters
    ----------
    errors : Mapping
        :attr:`clinic.domain.bookings.ValidationError.errors`.
    locations : Mapping
        :attr:`Order.locations`: where each value came from.
    """
    problems = []
    for key, message in errors.items():
        where = locations.get(key) or DEFAULT_LOCATIONS.get(key)
        code = REQUIRED_MISSING if message.startswith("is required") else DATA_TYPE_ERROR
        if "already" in message:
            code = DUPLICATE_KEY
        label = _LABELS.get(key, key)
        prefix = f"{where} {label}" if where else label
        problems.append(Problem(where, code, f"{prefix} {message}"))
    return problems
