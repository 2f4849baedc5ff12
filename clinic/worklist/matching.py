"""C-FIND worklist identifier -> SQL query, and matched rows -> response identifiers.

The matching rules are those of PS3.4 C.2.2.2: single value, ``*``/``?`` wildcards,
inclusive date, time and combined date-time ranges (open-ended too), lists of UIDs,
universal matching, and sequence matching inside the Scheduled Procedure Step
Sequence. Everything is matched in SQL on indexed columns; names are matched on
folded copies stored beside them (case-insensitive, optionally accent-insensitive).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from sqlalchemy import ColumnElement, Select, and_, false, or_, select
from sqlalchemy.orm import InstrumentedAttribute, contains_eager

from clinic.dicom.decoding import first_undecodable
from clinic.dicom.status import IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS, DimseFailure
from clinic.domain.codes import Code, code_of
from clinic.domain.names import fold, fold_ascii, trim_name
from clinic.store.models import ACTIVE_STATUSES, Patient, Procedure, ProcedureStatus, Station

SPS_SEQUENCE = "ScheduledProcedureStepSequence"
SPS_DATE = "ScheduledProcedureStepStartDate"
SPS_TIME = "ScheduledProcedureStepStartTime"
SPS_STATUS = "ScheduledProcedureStepStatus"


@dataclass(frozen=True)
class Row:
    """One matched booking: the procedure, its patient and its station (if known)."""

    procedure: Procedure
    station: Station | None

    @property
    def patient(self) -> Patient:
        """The booking's patient."""
        return self.procedure.patient


# -- value parsing ---------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TIME = re.compile(r"^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$")


def parse_da(text: str, keyword: str) -> dt.date:
    """Parse a DICOM DA value (``YYYYMMDD``).

    Raises
    ------
    DimseFailure
        With status 0xC000 when the text is not a real date.
    """
    match = _DATE.match(text.strip())
    if match:
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    raise DimseFailure(UNABLE_TO_PROCESS, f"{keyword}: not a valid date or date range")


def parse_tm(text: str, keyword: str, *, upper: bool) -> dt.time:
    """Parse a DICOM TM value, extended to its precision.

    ``upper`` picks the last instant the value covers (``1030`` -> 10:30:59.999999),
    which makes ranges inclusive at the precision the modality wrote.

    Raises
    ------
    DimseFailure
        With status 0xC000 when the text is not a valid time.
    """
    match = _TIME.match(text.strip().replace(":", ""))
    if match:
        hour = int(match[1])
        minute = int(match[2]) if match[2] else (59 if upper else 0)
        second = int(match[3]) if match[3] else (59 if upper else 0)
        if second == 60:  # leap second, allowed by TM
            second = 59
        if match[4]:
            digits = match[4]
            micro = int(digits.ljust(6, "9" if upper else "0"))
        else:
            micro = 999999 if upper else 0
        try:
            return dt.time(hour, minute, second, micro)
        except ValueError:
            pass
    raise DimseFailure(UNABLE_TO_PROCESS, f"{keyword}: not a valid time or time range")


def _split_range(text: str, keyword: str) -> tuple[str, str, bool]:
    """Split ``A-B`` into its ends; the bool tells whether it was a range at all."""
    if "-" not in text:
        return text, text, False
    if text.count("-") > 1:
        raise DimseFailure(UNABLE_TO_PROCESS, f"{keyword}: malformed range")
    low, high = text.split("-")
    if not low.strip() and not high.strip():
        raise DimseFailure(UNABLE_TO_PROCESS, f"{keyword}: range without ends")
    return low.strip(), high.strip(), True


def date_bounds(text: str, keyword: str) -> tuple[dt.date | None, dt.date | None]:
    """Return the inclusive (low, high) dates of a DA single value or range."""
    low, high, _ = _split_range(text, keyword)
    low_d = parse_da(low, keyword) if low else None
    high_d = parse_da(high, keyword) if high else None
    if low_d and high_d and low_d > high_d:
        raise DimseFailure(UNABLE_TO_PROCESS, f"{keyword}: range ends before it starts")
    return low_d, high_d


def time_bounds(text: str, keyword: str) -> tuple[dt.time | None, dt.time | None]:
    """Return the inclusive (low, high) times of a TM single value or range."""
    low, high, _ = _split_range(text, keyword)
    low_t = parse_tm(low, keyword, upper=False) if low else None
    high_t = parse_tm(high, keyword, upper=True) if high else None
    return low_t, high_t


def datetime_bounds(
    date_text: str, time_text: str
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Combine SPS Start Date and Time keys into one inclusive date-time window.

    PS3.4 C.2.2.2.5.1: when both keys are given they are matched as one combined
    date-time range, e.g. ``20261126-20261127`` with ``2200-0600`` covers the night
    between the two days. A date without a time covers whole days.
    """
    low_d, high_d = date_bounds(date_text, SPS_DATE)
    low_t, high_t = time_bounds(time_text, SPS_TIME) if time_text else (None, None)
    low = dt.datetime.combine(low_d, low_t or dt.time.min) if low_d else None
    high = dt.datetime.combine(high_d, high_t or dt.time.max) if high_d else None
    if low and high and low > high:
        raise DimseFailure(UNABLE_TO_PROCESS, "SPS start: range ends before it starts")
    return low, high


# -- conditions ------------------------------------------------------------------------

_LIKE_ESCAPE = "\\"


def has_wildcards(value: str) -> bool:
    """Return True when ``value`` uses DICOM wildcards ``*`` or ``?``."""
    return "*" in value or "?" in value


def like_pattern(value: str) -> str:
    """Translate DICOM wildcards into a LIKE pattern, escaping LIKE's own ``%`` and ``_``."""
    out = []
    for char in value:
        if char in ("%", "_", _LIKE_ESCAPE):
            out.append(_LIKE_ESCAPE + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def literal_prefix(value: str) -> str:
    """The part of a wildcard value before its first wildcard."""
    cut = len(value)
    for wildcard in ("*", "?"):
        pos = value.find(wildcard)
        if pos != -1:
            cut = min(cut, pos)
    return value[:cut]


def string_condition(
    column: InstrumentedAttribute[str], value: str, *, prefix_range: bool = True
) -> ColumnElement[bool] | None:
    """Single value or wildcard match of a string column; ``None`` means universal.

    A literal prefix before the first wildcard also becomes a range condition, so
    a name-prefix query walks an index instead of scanning the table.
    """
    if value == "" or set(value) == {"*"}:
        return None
    if not has_wildcards(value):
        return column == value
    condition: ColumnElement[bool] = column.like(like_pattern(value), escape=_LIKE_ESCAPE)
    prefix = literal_prefix(value)
    if prefix and prefix_range:
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        condition = and_(column >= prefix, column < upper, condition)
    return condition


@dataclass
class MatchOptions:
    """How names are compared."""

    accent_insensitive: bool = True
    #: Range conditions on prefixes: exact on byte-ordered collations (SQLite).
    prefix_range: bool = True


def name_condition(
    fold_column: InstrumentedAttribute[str],
    ascii_column: InstrumentedAttribute[str],
    value: str,
    options: MatchOptions,
) -> ColumnElement[bool] | None:
    """Case- (and optionally accent-) insensitive PN match on the stored folded keys."""
    text = value if has_wildcards(value) else trim_name(value)
    if options.accent_insensitive:
        return string_condition(ascii_column, fold_ascii(text), prefix_range=options.prefix_range)
    return string_condition(fold_column, fold(text), prefix_range=options.prefix_range)


# -- the attribute table ---------------------------------------------------------------

Getter = Callable[[Row], Any]


@dataclass(frozen=True)
class Key:
    """One supported attribute: how to match on it and how to return it.

    ``kind`` is one of ``str`` (single value / wildcard), ``pn`` (person name),
    ``uid`` (single UID or list), ``date`` (single date or range), ``return``
    (returned, not matched), ``code`` (a code sequence: ``get`` returns a
    :class:`Code` or ``None``, ``column`` maps each item keyword to its column), or
    ``special`` (handled by name).
    """

    kind: str
    get: Getter
    column: Any = None
    ascii_column: Any = None
    required_value: bool = False  # Type 1 in the response


def _description(row: Row) -> str:
    # Requested Procedure / SPS Description are 1C: required while no code sequence
    # is returned, so an empty booking description falls back to the modality.
    return row.procedure.procedure_description or f"{row.procedure.modality} examination"


#: Booking status -> Scheduled Procedure Step Status (0040,0020) answered.
_SPS_STATUS_OF = {
    ProcedureStatus.SCHEDULED.value: "SCHEDULED",
    ProcedureStatus.ARRIVED.value: "ARRIVED",
    ProcedureStatus.IN_PROGRESS.value: "STARTED",
}


def _sps_status(row: Row) -> str:
    return _SPS_STATUS_OF.get(row.procedure.status, "SCHEDULED")


def _da(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _timezone_offset(row: Row) -> str:
    """Timezone Offset From UTC of the booking's local start (``+HHMM``), DST included."""
    return row.procedure.scheduled_start.astimezone().strftime("%z") or "+0000"


def _procedure_code(row: Row) -> Code | None:
    proc = row.procedure
    return code_of(
        proc.procedure_code_value, proc.procedure_code_scheme, proc.procedure_code_meaning
    )


def _protocol_code(row: Row) -> Code | None:
    proc = row.procedure
    return code_of(proc.protocol_code_value, proc.protocol_code_scheme, proc.protocol_code_meaning)


#: Attributes of a code sequence item (PS3.3 Table 8.8-1) -> the part of a :class:`Code`.
CODE_ITEM_PARTS: dict[str, str] = {
    "CodeValue": "value",
    "CodingSchemeDesignator": "scheme",
    "CodeMeaning": "meaning",
}


def code_part(code: Code | None, keyword: str) -> str:
    """The value of one code item attribute (``CodeValue``...) of ``code``."""
    part = CODE_ITEM_PARTS.get(keyword)
    if code is None or part is None:
        return ""
    return str(getattr(code, part))


TOP_KEYS: dict[str, Key] = {
    "PatientName": Key("pn", lambda r: r.patient.name, Patient.name_fold, Patient.name_ascii, True),
    "PatientID": Key("str", lambda r: r.patient.patient_id, Patient.patient_id, None, True),
    "PatientBirthDate": Key("date", lambda r: _da(r.patient.birth_date), Patient.birth_date),
    "PatientSex": Key("str", lambda r: r.patient.sex, Patient.sex),
    "AccessionNumber": Key(
        "str", lambda r: r.procedure.accession_number, Procedure.accession_number
    ),
    "RequestedProcedureID": Key(
        "str",
        lambda r: r.procedure.requested_procedure_id,
        Procedure.requested_procedure_id,
        None,
        True,
    ),
    "StudyInstanceUID": Key(
        "uid", lambda r: r.procedure.study_instance_uid, Procedure.study_instance_uid, None, True
    ),
    "RequestedProcedureDescription": Key("return", _description, None, None, True),
    "ReferringPhysicianName": Key(
        "pn",
        lambda r: r.procedure.referring_physician,
        Procedure.referring_fold,
        Procedure.referring_ascii,
    ),
    "RequestedProcedurePriority": Key("str", lambda r: r.procedure.priority, Procedure.priority),
    "RequestedProcedureCodeSequence": Key(
        "code",
        _procedure_code,
        {
            "CodeValue": Procedure.procedure_code_value,
            "CodingSchemeDesignator": Procedure.procedure_code_scheme,
            "CodeMeaning": Procedure.procedure_code_meaning,
        },
    ),
    # PS3.4 K.4.1.1.3.2: never zero-length when requested. Not a matching key.
    "TimezoneOffsetFromUTC": Key("return", _timezone_offset, None, None, True),
}

SPS_KEYS: dict[str, Key] = {
    "ScheduledStationAETitle": Key(
        "str", lambda r: r.procedure.station_ae_title, Procedure.station_ae_title, None, True
    ),
    SPS_DATE: Key(
        "special", lambda r: r.procedure.scheduled_start.strftime("%Y%m%d"), None, None, True
    ),
    SPS_TIME: Key(
        "special", lambda r: r.procedure.scheduled_start.strftime("%H%M%S"), None, None, True
    ),
    "Modality": Key("str", lambda r: r.procedure.modality, Procedure.modality, None, True),
    "ScheduledPerformingPhysicianName": Key(
        "pn",
        lambda r: r.procedure.performing_physician,
        Procedure.performing_fold,
        Procedure.performing_ascii,
    ),
    "ScheduledProcedureStepDescription": Key("return", _description, None, None, True),
    "ScheduledStationName": Key("str", lambda r: r.station.name if r.station else "", Station.name),
    "ScheduledProcedureStepLocation": Key(
        "str", lambda r: r.station.location if r.station else "", Station.location
    ),
    "ScheduledProcedureStepID": Key(
        "str", lambda r: r.procedure.step_id, Procedure.step_id, None, True
    ),
    SPS_STATUS: Key("special", _sps_status),
    "ScheduledProtocolCodeSequence": Key(
        "code",
        _protocol_code,
        {
            "CodeValue": Procedure.protocol_code_value,
            "CodingSchemeDesignator": Procedure.protocol_code_scheme,
            "CodeMeaning": Procedure.protocol_code_meaning,
        },
    ),
    "CommentsOnTheScheduledProcedureStep": Key("return", lambda r: r.procedure.notes),
}

#: Returned when the SPS sequence is requested with no item or an empty item.
DEFAULT_SPS_RETURN = [k for k in SPS_KEYS if k != "CommentsOnTheScheduledProcedureStep"]

# Specific Character Set is never matched on; group lengths are not attributes.
_IGNORED = {"SpecificCharacterSet"}
#: The answer carries its own Specific Character Set; every other requested key is answered.
ANSWERED_APART = {"SpecificCharacterSet"}
#: Patient columns with an index a condition can walk.
_PATIENT_INDEXED = {"patient_id", "name_fold", "name_ascii", "birth_date"}
_SPS_STATUS_VALUES = {
    "SCHEDULED": ProcedureStatus.SCHEDULED,
    "ARRIVED": ProcedureStatus.ARRIVED,
    "STARTED": ProcedureStatus.IN_PROGRESS,
}


# -- identifier -> query ---------------------------------------------------------------


@dataclass
class WorklistQuery:
    """A parsed worklist identifier: SQL conditions plus the shape of the answer."""

    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    matching_keys: list[str] = field(default_factory=list)
    return_keys: list[str] = field(default_factory=list)
    #: Attributes the SCP does not know sent with a value (answered empty; status FF01).
    unsupported: list[str] = field(default_factory=list)
    request: Dataset = field(default_factory=Dataset)
    #: A condition on an indexed patient column (name, ID, birth date) can drive the query.
    patient_index: bool = False
    #: The request's SPS item (or None when the sequence asks for everything).
    sps_item: Dataset | None = None
    sps_requested: bool = False


def _check_vr(elem: DataElement, keyword: str) -> None:
    """Refuse an element whose VR is not the dictionary's (a sequence for a value...)."""
    try:
        expected = dictionary_VR(elem.tag)
    except KeyError:
        return  # private or unknown: answered empty, never matched
    allowed = set(expected.split(" or "))
    if elem.VR not in allowed and not (elem.VR in ("UN", "OB") and "SQ" not in allowed):
        raise DimseFailure(
            IDENTIFIER_MISMATCH,
            f"{keyword}: VR {elem.VR} instead of {expected}",
        )


def _has_value(elem: DataElement) -> bool:
    """Whether an element carries a value to match on.

    For a sequence: an item holding a key with a value. A zero-length sequence, an
    empty item and an item of empty keys all ask only for the attribute to be returned
    (universal matching, PS3.4 C.2.2.2.6 and K.2.2.1.2 Note 4), like an empty key.
    """
    if elem.VR == "SQ":
        return any(_has_value(sub) for item in elem.value or () for sub in item)
    return elem.VM > 0


def _text_value(elem: DataElement, keyword: str) -> str:
    """The element's single value as text ('' for universal matching)."""
    value = elem.value
    if value is None or value == "" or value == b"":
        return ""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise DimseFailure(UNABLE_TO_PROCESS, f"{keyword}: value cannot be decoded") from None
    if elem.VM > 1 and elem.VR != "UI":
        raise DimseFailure(UNABLE_TO_PROCESS, f"{keyword}: multiple values are not a matching key")
    if elem.VR == "UI" and elem.VM > 1:
        return "\\".join(str(v) for v in value)
    text = str(value).strip()
    # A value of only "*" is universal for every key, dates, times and UIDs included.
    return "" if set(text) == {"*"} else text


def parse_identifier(identifier: Dataset, options: MatchOptions) -> WorklistQuery:
    """Turn a C-FIND Modality Worklist identifier into a :class:`WorklistQuery`.

    Parameters
    ----------
    identifier : Dataset
        The request identifier as decoded by pydicom.
    options : MatchOptions
        How names are compared.

    Returns
    -------
    WorklistQuery
        The conditions (all must hold) and the requested return keys.

    Raises
    ------
    DimseFailure
        0xA900 for structural problems (wrong VR, a sequence where a value belongs,
        more than one SPS item), 0xC000 for values that cannot be parsed.
    """
    undecodable = first_undecodable(identifier)
    if undecodable is not None:
        raise DimseFailure(UNABLE_TO_PROCESS, f"{undecodable}: value cannot be decoded")
    query = WorklistQuery(request=identifier)
    for elem in identifier:
        if elem.tag.is_private or elem.tag.element == 0:
            if elem.tag.is_private and _has_value(elem):
                query.unsupported.append(str(elem.tag))
            continue
        keyword = elem.keyword or str(elem.tag)
        if keyword in _IGNORED:
            continue
        _check_vr(elem, keyword)
        if keyword == SPS_SEQUENCE:
            _parse_sps(elem, query, options)
            continue
        query.return_keys.append(keyword)
        spec = TOP_KEYS.get(keyword)
        if spec is None:
            # Not supported: answered empty, its value (if any) neither parsed nor matched.
            if _has_value(elem):
                query.unsupported.append(keyword)
            continue
        if spec.kind == "code":
            _parse_code_sequence(elem, keyword, spec, query, options)
            continue
        if elem.VR == "SQ":
            raise DimseFailure(IDENTIFIER_MISMATCH, f"{keyword}: unexpected sequence")
        _add_condition(query, keyword, spec, _text_value(elem, keyword), options)
    return query


def sequence_item(elem: DataElement) -> Dataset | None:
    """The one item of a requested sequence, or ``None`` when it has none or it is empty."""
    items = list(elem.value or []) if elem.VR == "SQ" else []
    return items[0] if items and len(items[0]) else None


def _parse_code_sequence(
    elem: DataElement, keyword: str, spec: Key, query: WorklistQuery, options: MatchOptions
) -> None:
    """Sequence matching on a code (PS3.4 C.2.2.2.6): each valued item key must match."""
    if elem.VR != "SQ":
        raise DimseFailure(IDENTIFIER_MISMATCH, f"{keyword}: must be a sequence")
    if len(elem.value or []) > 1:
        raise DimseFailure(IDENTIFIER_MISMATCH, f"{keyword}: more than one item")
    item = sequence_item(elem)
    if item is None:
        return
    for sub in item:
        if sub.tag.element == 0:
            continue
        sub_keyword = sub.keyword or str(sub.tag)
        column = spec.column.get(sub_keyword) if not sub.tag.is_private else None
        if column is None:
            if _has_value(sub):
                query.unsupported.append(f"{keyword}.{sub_keyword}")
            continue
        _check_vr(sub, sub_keyword)
        value = _text_value(sub, sub_keyword)
        condition = string_condition(column, value, prefix_range=options.prefix_range)
        if condition is not None:
            query.conditions.append(condition)
            query.matching_keys.append(f"{keyword}.{sub_keyword}")


def _parse_sps(elem: DataElement, query: WorklistQuery, options: MatchOptions) -> None:
    if elem.VR != "SQ":
        raise DimseFailure(IDENTIFIER_MISMATCH, f"{SPS_SEQUENCE}: must be a sequence")
    query.sps_requested = True
    items = list(elem.value or [])
    if len(items) > 1:
        raise DimseFailure(IDENTIFIER_MISMATCH, f"{SPS_SEQUENCE}: more than one item")
    if not items or len(items[0]) == 0:
        query.sps_item = None
        return
    item: Dataset = items[0]
    query.sps_item = item
    date_text = time_text = ""
    for sub in item:
        if sub.tag.element == 0:
            continue
        keyword = sub.keyword or str(sub.tag)
        if keyword in _IGNORED:
            continue
        if sub.tag.is_private:
            if _has_value(sub):
                query.unsupported.append(keyword)
            continue
        _check_vr(sub, keyword)
        spec = SPS_KEYS.get(keyword)
        if spec is None:
            if _has_value(sub):
                query.unsupported.append(keyword)
            continue
        if spec.kind == "code":
            _parse_code_sequence(sub, keyword, spec, query, options)
            continue
        if sub.VR == "SQ":
            raise DimseFailure(IDENTIFIER_MISMATCH, f"{keyword}: unexpected sequence")
        value = _text_value(sub, keyword)
        if keyword == SPS_DATE:
            date_text = value
        elif keyword == SPS_TIME:
            time_text = value
        elif keyword == SPS_STATUS:
            _add_status_condition(query, value)
        else:
            _add_condition(query, keyword, spec, value, options)
    _add_schedule_condition(query, date_text, time_text)


def _add_condition(
    query: WorklistQuery, keyword: str, spec: Key, value: str, options: MatchOptions
) -> None:
    if value == "" or spec.kind == "return":
        return
    condition: ColumnElement[bool] | None
    if spec.kind == "pn":
        condition = name_condition(spec.column, spec.ascii_column, value, options)
    elif spec.kind == "str":
        if keyword == "ScheduledStationAETitle":
            value = value.strip()
        condition = string_condition(spec.column, value, prefix_range=options.prefix_range)
    elif spec.kind == "uid":
        condition = _uid_condition(spec.column, value, keyword)
    elif spec.kind == "date":
        low, high = date_bounds(value, keyword)
        parts = []
        if low:
            parts.append(spec.column >= low)
        if high:
            parts.append(spec.column <= high)
        condition = and_(*parts)
    else:  # pragma: no cover - every kind is handled above
        raise AssertionError(spec.kind)
    if condition is not None:
        query.conditions.append(condition)
        query.matching_keys.append(keyword)
        column = spec.column
        if (
            column is not None
            and column.class_ is Patient
            and column.key in _PATIENT_INDEXED
            and (spec.kind == "date" or literal_prefix(value))
        ):
            query.patient_index = True


def _uid_condition(
    column: InstrumentedAttribute[str], value: str, keyword: str
) -> ColumnElement[bool]:
    uids = [u.strip().rstrip("\x00") for u in value.split("\\") if u.strip()]
    if any(has_wildcards(u) for u in uids):
        raise DimseFailure(UNABLE_TO_PROCESS, f"{keyword}: wildcards are not allowed in UIDs")
    if len(uids) == 1:
        return column == uids[0]
    return column.in_(uids)


def _add_status_condition(query: WorklistQuery, value: str) -> None:
    """SPS Status: a single value or a wildcard over the DICOM names of the statuses."""
    value = value.strip()
    if value == "" or set(value) == {"*"}:
        return
    pattern = re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    )
    statuses = [s.value for name, s in _SPS_STATUS_VALUES.items() if pattern.fullmatch(name)]
    query.conditions.append(Procedure.status.in_(statuses) if statuses else false())
    query.matching_keys.append(SPS_STATUS)


def _add_schedule_condition(query: WorklistQuery, date_text: str, time_text: str) -> None:
    if date_text:
        low, high = datetime_bounds(date_text, time_text)
        if low:
            query.conditions.append(Procedure.scheduled_start >= low)
        if high:
            query.conditions.append(Procedure.scheduled_start <= high)
        query.matching_keys.append(SPS_DATE)
        if time_text:
            query.matching_keys.append(SPS_TIME)
    elif time_text:
        # Time of day alone: every day at that time (or within that range).
        low_t, high_t = time_bounds(time_text, SPS_TIME)
        if low_t and high_t and low_t > high_t:
            # PS3.4 C.2.2.2.5.2: "Range Matching crossing midnight is not supported";
            # a night window is written with dates (a combined date-time range).
            raise DimseFailure(UNABLE_TO_PROCESS, f"{SPS_TIME}: range crossing midnight")
        seconds = Procedure.scheduled_seconds
        if low_t:
            query.conditions.append(seconds >= _seconds(low_t))
        if high_t:
            query.conditions.append(seconds <= _seconds(high_t))
        query.matching_keys.append(SPS_TIME)


def _seconds(value: dt.time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


def build_select(
    query: WorklistQuery, stale_before: dt.datetime | None = None
) -> Select[Procedure, Station]:
    """The SQL statement for a query: active bookings meeting every condition, by start.

    Parameters
    ----------
    query : WorklistQuery
        The parsed identifier.
    stale_before : datetime, optional
        A booking still ``SCHEDULED`` that starts before this instant is no longer
        served (an exam nobody performed, on a station that does not report MPPS);
        bookings in progress are served whatever their day. ``None`` serves them all.

    Notes
    -----
    When a patient key can walk an index and no start date narrows the bookings, the
    status test is written so that no index applies to it (``status || ''``): without
    table statistics SQLite would otherwise walk every active booking by status and
    look each patient up, rather than find the few patients by name first. With a start
    date, the status and start index holds just that window and stays the better path;
    the cut-off of stale bookings is a range on that same index.
    """
    drive_by_patient = query.patient_index and SPS_DATE not in query.matching_keys
    status = Procedure.status.concat("") if drive_by_patient else Procedure.status
    served: ColumnElement[bool] = status.in_(ACTIVE_STATUSES)
    if stale_before is not None:
        scheduled = ProcedureStatus.SCHEDULED.value
        others = [s for s in ACTIVE_STATUSES if s != scheduled]
        served = or_(
            and_(status == scheduled, Procedure.scheduled_start >= stale_before),
            status.in_(others),
        )
    return (
        select(Procedure, Station)
        .join(Procedure.patient)
        .outerjoin(Station, Station.ae_title == Procedure.station_ae_title)
        .options(contains_eager(Procedure.patient))
        .where(served, *query.conditions)
        .order_by(Procedure.scheduled_start, Procedure.id)
    )


# -- rows -> response identifiers ------------------------------------------------------


def _empty_like(elem: DataElement) -> DataElement:
    if elem.VR == "SQ":
        return DataElement(elem.tag, "SQ", DicomSequence([]))
    return DataElement(elem.tag, elem.VR, None)


def _value_element(spec: Key, row: Row, transform: Callable[[str], str]) -> Any:
    value = spec.get(row)
    if isinstance(value, str):
        value = transform(value)
    return value


#: Returned in a code item when the request's sequence has no item or an empty one.
DEFAULT_CODE_RETURN = tuple(CODE_ITEM_PARTS)


def code_item_tags(request: Dataset | None) -> list[tuple[BaseTag, str]]:
    """(tag, VR) of each attribute a code item answers, in the order requested."""
    if request is None:
        return [(Tag(k), dictionary_VR(Tag(k))) for k in DEFAULT_CODE_RETURN]
    return [
        (elem.tag, elem.VR)
        for elem in request
        if elem.tag.element != 0 and elem.keyword not in ANSWERED_APART
    ]


def _code_sequence(
    elem: DataElement, spec: Key, row: Row, transform: Callable[[str], str]
) -> DataElement:
    """A code sequence answer: one item with the requested attributes, none without code."""
    code = spec.get(row)
    if code is None:
        return DataElement(elem.tag, "SQ", DicomSequence([]))
    item = Dataset()
    for tag, vr in code_item_tags(sequence_item(elem)):
        keyword = keyword_for_tag(tag)
        if keyword in CODE_ITEM_PARTS and vr != "SQ":
            item.add(DataElement(tag, vr, transform(code_part(code, keyword))))
        else:
            item.add(DataElement(tag, vr, DicomSequence([]) if vr == "SQ" else None))
    return DataElement(elem.tag, "SQ", DicomSequence([item]))


def build_response(
    query: WorklistQuery,
    row: Row,
    character_set: str,
    transform: Callable[[str], str] = lambda s: s,
) -> Dataset:
    """Return the response identifier for one matched booking.

    It carries exactly the requested attributes (plus Specific Character Set), Type 1
    attributes always valued, unknown ones empty.

    Parameters
    ----------
    query : WorklistQuery
        The parsed request.
    row : Row
        The matched booking.
    character_set : str
        The Specific Character Set of the answer.
    transform : callable
        Applied to every text value (transliteration for Latin-1 answers).
    """
    response = Dataset()
    response.SpecificCharacterSet = character_set
    for elem in query.request:
        keyword = elem.keyword
        if keyword in ANSWERED_APART or elem.tag.element == 0:
            continue
        if keyword == SPS_SEQUENCE:
            response.ScheduledProcedureStepSequence = DicomSequence(
                [_sps_item(query.sps_item, row, transform)]
            )
            continue
        spec = TOP_KEYS.get(keyword)
        if spec is not None and spec.kind == "code":
            response.add(_code_sequence(elem, spec, row, transform))
            continue
        if spec is None or elem.VR == "SQ":
            response.add(_empty_like(elem))
            continue
        response.add(DataElement(elem.tag, elem.VR, _value_element(spec, row, transform)))
    return response


def _sps_item(request_item: Dataset | None, row: Row, transform: Callable[[str], str]) -> Dataset:
    item = Dataset()
    if request_item is None:
        for keyword in DEFAULT_SPS_RETURN:
            tag = Tag(keyword)
            default = SPS_KEYS[keyword]
            if default.kind == "code":
                empty = DataElement(tag, "SQ", DicomSequence([]))
                item.add(_code_sequence(empty, default, row, transform))
                continue
            value = _value_element(default, row, transform)
            item.add(DataElement(tag, dictionary_VR(tag), value))
        return item
    for elem in request_item:
        if elem.tag.element == 0 or elem.keyword in ANSWERED_APART:
            continue
        spec = SPS_KEYS.get(elem.keyword)
        if spec is not None and spec.kind == "code":
            item.add(_code_sequence(elem, spec, row, transform))
            continue
        if spec is None or elem.VR == "SQ":
            item.add(_empty_like(elem))
            continue
        value = _value_element(spec, row, transform)
        item.add(DataElement(elem.tag, elem.VR, value))
    return item
