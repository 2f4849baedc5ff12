"""A booking's fields, described once.

:data:`FIELDS` is the one table of what a caller may write to a booking: how each value
is checked and converted, whether it is required, whether an update may clear it, and
how it is described to API clients. Validation (:func:`clean_procedure`), the JSON form
of a booking (:func:`procedure_to_dict`), the web forms, the HL7 mapping and the OpenAPI
description all read it, so a new field is added here and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clinic.domain import vr
from clinic.domain.codes import PARTS as CODE_PARTS
from clinic.domain.codes import code_of, parse_code
from clinic.domain.errors import ValidationError
from clinic.store.models import Procedure, ProcedureStatus

PRIORITIES = ("STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW")
SEXES = ("M", "F", "O")
#: The longest a booking may occupy its station.
MAX_DURATION_MINUTES = 24 * 60
#: The longest free text a booking keeps (notes for the radiographer).
NOTES_MAX = 10240


@dataclass(frozen=True)
class BookingField:
    """One writable field of a booking.

    Parameters
    ----------
    name : str
        The field's name in JSON, CSV columns and the HL7 mapping.
    parse : callable
        Turns the stripped, non-empty text into the stored value; raises
        :class:`ValueError` with a message in plain words when it cannot.
    required : bool
        A new booking must have it.
    clearable : bool
        An update may set it back to empty (to :attr:`empty`).
    empty : object
        The value an emptied field is stored as.
    schema : Mapping
        Its JSON Schema for the OpenAPI description (type, limits, description).
    parts : tuple of str
        For a structured value (a JSON object): the names of its parts. ``parse`` then
        takes the object itself, or its JSON text; a CSV file may also give each part
        in its own column, ``<name>_<part>``.
    """

    name: str
    parse: Callable[[Any], Any]
    required: bool = False
    clearable: bool = False
    empty: Any = ""
    schema: Mapping[str, Any] = field(default_factory=dict)
    parts: tuple[str, ...] = ()

    @property
    def max_length(self) -> int | None:
        """The longest text the field accepts, where it has one limit."""
        limit = self.schema.get("maxLength")
        return int(limit) if limit is not None else None


def _checked(check: Callable[[str], str | None]) -> Callable[[str], str]:
    """A parser that keeps the text when ``check`` (a :mod:`vr` check) finds no problem."""

    def parse(text: str) -> str:
        problem = check(text)
        if problem:
            raise ValueError(problem)
        return text

    return parse


def _patient_name(text: str) -> str:
    text = _checked(vr.check_pn)(text)
    if not text.strip("^= "):
        raise ValueError("must not be empty")
    return text


def _ae_title(text: str) -> str:
    return _checked(vr.check_ae)(text).strip()


def _modality(text: str) -> str:
    value = _checked(vr.check_cs)(text.upper())
    if not value:
        raise ValueError("must not be empty")
    return value


def _one_of(choices: tuple[str, ...], message: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.upper()
        if value and value not in choices:
            raise ValueError(message)
        return value

    return parse


def _birth_date(text: str) -> dt.date:
    value = vr.parse_date(text)
    if value > dt.date.today():
        raise ValueError("must not be in the future")
    return value


def _duration(text: str) -> int:
    try:
        minutes = int(text)
    except ValueError:
        raise ValueError("must be a whole number of minutes") from None
    if not 1 <= minutes <= MAX_DURATION_MINUTES:
        raise ValueError(f"must be between 1 and {MAX_DURATION_MINUTES} minutes")
    return minutes


def _notes(text: str) -> str:
    if len(text) > NOTES_MAX:
        raise ValueError(f"must be at most {NOTES_MAX} characters")
    return text


_PN = {"type": "string", "description": "DICOM PN: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX"}


def _code_schema(description: str) -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "description": description,
        "properties": {
            "value": {"type": "string", "maxLength": 16, "description": "Code Value"},
            "scheme": {
                "type": "string",
                "maxLength": 16,
                "description": "Coding Scheme Designator (99CLINIC: the clinic's own codes)",
            },
            "meaning": {"type": "string", "maxLength": 64, "description": "Code Meaning"},
        },
        "required": list(CODE_PARTS),
        "additionalProperties": False,
        "examples": [{"value": "36643-5", "scheme": "LN", "meaning": "XR Chest 2V"}],
    }


#: Every field a caller may write (import files, REST API, web forms, HL7), in output order.
FIELDS: tuple[BookingField, ...] = (
    BookingField(
        "patient_id",
        _checked(vr.check_lo),
        required=True,
        schema={"type": "string", "maxLength": 64},
    ),
    BookingField(
        "patient_name",
        _patient_name,
        required=True,
        schema={**_PN, "description": "DICOM PN: FAMILY^GIVEN"},
    ),
    BookingField(
        "patient_birth_date",
        _birth_date,
        clearable=True,
        empty=None,
        schema={"type": "string", "format": "date"},
    ),
    BookingField(
        "patient_sex",
        _one_of(SEXES, "must be M, F or O"),
        clearable=True,
        schema={"type": "string", "enum": [*SEXES, ""]},
    ),
    BookingField(
        "accession_number",
        _checked(vr.check_sh),
        schema={"type": "string", "maxLength": 16, "description": "generated when absent"},
    ),
    BookingField(
        "modality",
        _modality,
        required=True,
        schema={"type": "string", "maxLength": 16, "examples": ["CR", "IO", "PX", "US"]},
    ),
    BookingField("station_ae_title", _ae_title, schema={"type": "string", "maxLength": 16}),
    BookingField(
        "scheduled_start",
        vr.parse_scheduled_start,
        required=True,
        schema={
            "type": "string",
            "description": "local time, YYYY-MM-DDTHH:MM",
            "examples": ["2026-11-26T09:30"],
        },
    ),
    BookingField(
        "duration_minutes",
        _duration,
        schema={
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_DURATION_MINUTES,
            "description": "how long the booking occupies its station; from the catalog "
            "entry with this description and modality, else [scheduling] "
            "default_duration_minutes (15)",
        },
    ),
    BookingField(
        "procedure_description",
        _checked(vr.check_lo),
        clearable=True,
        schema={"type": "string", "maxLength": 64},
    ),
    BookingField("referring_physician", _checked(vr.check_pn), clearable=True, schema=_PN),
    BookingField(
        "requested_procedure_id",
        _checked(vr.check_sh),
        schema={"type": "string", "maxLength": 16, "description": "generated when absent"},
    ),
    BookingField(
        "step_id",
        _checked(vr.check_sh),
        schema={
            "type": "string",
            "maxLength": 16,
            "description": "Scheduled Procedure Step ID; generated when absent",
        },
    ),
    BookingField(
        "study_instance_uid",
        _checked(vr.check_uid),
        schema={"type": "string", "maxLength": 64, "description": "generated when absent"},
    ),
    BookingField("performing_physician", _checked(vr.check_pn), clearable=True, schema=_PN),
    BookingField(
        "priority",
        _one_of(PRIORITIES, f"must be one of {', '.join(PRIORITIES)}"),
        clearable=True,
        schema={"type": "string", "enum": [*PRIORITIES, ""]},
    ),
    BookingField(
        "notes",
        _notes,
        clearable=True,
        schema={
            "type": "string",
            "maxLength": NOTES_MAX,
            "description": "sent to the modality as Comments on the Scheduled Procedure Step",
        },
    ),
    BookingField(
        "procedure_code",
        parse_code,
        clearable=True,
        empty=None,
        parts=CODE_PARTS,
        schema=_code_schema(
            "Requested Procedure Code Sequence; from the catalog (by procedure description) "
            "or HL7 OBR-4 when absent"
        ),
    ),
    BookingField(
        "protocol_code",
        parse_code,
        clearable=True,
        empty=None,
        parts=CODE_PARTS,
        schema=_code_schema(
            "Scheduled Protocol Code Sequence; from the catalog entry of the procedure code, "
            "or HL7 IPC-6, when absent"
        ),
    ),
    BookingField(
        "placer_order_number",
        _checked(vr.check_lo),
        schema={"type": "string", "maxLength": 64, "description": "the ordering system's number"},
    ),
    BookingField(
        "filler_order_number",
        _checked(vr.check_lo),
        schema={"type": "string", "maxLength": 64, "description": "the filler's order number"},
    ),
)

BY_NAME: dict[str, BookingField] = {f.name: f for f in FIELDS}
#: Fields a caller may write.
WRITABLE_FIELDS: tuple[str, ...] = tuple(BY_NAME)
#: Fields that are only ever read back; ignored when they come in.
READ_ONLY_FIELDS = ("id", "status")
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)
#: The statuses a booking can have, in the order of its life.
STATUSES: tuple[str, ...] = tuple(s.value for s in ProcedureStatus)

_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | int | float):
        return str(value)
    raise TypeError


def clean_procedure(raw: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate one booking's fields and return them in typed, normalised form.

    Parameters
    ----------
    raw : Mapping
        Field name to value, as read from JSON, CSV or a form. Empty values count
        as absent. ``id`` and ``status`` are ignored.
    partial : bool
        When true (an update), required fields may be absent and clearable
        fields may be emptied.

    Returns
    -------
    dict
        Only the fields present, converted: dates to :class:`datetime.date`,
        ``scheduled_start`` to :class:`datetime.datetime`, codes upper-cased.

    Raises
    ------
    ValidationError
        Naming every offending field.
    """
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for key, value in _joined_parts(raw, errors).items():
        if key in READ_ONLY_FIELDS:
            continue
        spec = BY_NAME.get(key)
        if spec is None:
            errors[str(key)] = "is not a known field"
            continue
        if spec.parts and value is not None and not isinstance(value, str):
            try:
                cleaned[key] = spec.parse(value)
            except ValueError as exc:
                errors[key] = str(exc)
            continue
        try:
            text = _text(value)
        except TypeError:
            errors[key] = "must be text"
            continue
        if _SURROGATE.search(text):  # a JSON "\ud800" escape: no store can encode it
            errors[key] = "is not valid Unicode text"
            continue
        if "\x00" in text:  # PostgreSQL text cannot hold it, and no field needs it
            errors[key] = "must not contain the NUL control character"
            continue
        if text == "":
            if partial and spec.clearable:
                cleaned[key] = spec.empty
            continue
        try:
            cleaned[key] = spec.parse(text)
        except ValueError as exc:
            errors[key] = str(exc)
    if not partial:
        for key in REQUIRED_FIELDS:
            if key not in cleaned and key not in errors:
                errors[key] = "is required"
    if errors:
        raise ValidationError(errors)
    return cleaned


def _joined_parts(raw: Mapping[str, Any], errors: dict[str, str]) -> Mapping[str, Any]:
    """Gather the ``<name>_<part>`` columns of structured fields into one object each.

    A CSV file cannot hold a JSON object but in one cell; it may instead give
    ``procedure_code_value``, ``procedure_code_scheme`` and ``procedure_code_meaning``.
    All empty means absent. Giving both forms of one field is an error.
    """
    joined: dict[str, Any] | None = None
    for spec in FIELDS:
        columns = [f"{spec.name}_{part}" for part in spec.parts]
        present = [c for c in columns if c in raw]
        if not present:
            continue
        if joined is None:
            joined = dict(raw)
        values = {part: joined.pop(f"{spec.name}_{part}", None) for part in spec.parts}
        if spec.name in joined and joined[spec.name] not in (None, ""):
            errors[spec.name] = f"is given twice (also as {present[0]})"
            continue
        if all(v in (None, "") for v in values.values()):
            joined[spec.name] = ""
        else:
            joined[spec.name] = values
    return raw if joined is None else joined


def procedure_to_dict(proc: Procedure) -> dict[str, Any]:
    """Return a booking as the outside contract's JSON fields.

    Every field of :data:`FIELDS` is there, with ``id``, ``status`` and
    ``cancel_reason``; dates are ISO text and a missing birth date or sex is ``""``.
    """
    patient = proc.patient
    return {
        "id": proc.id,
        "status": proc.status,
        "patient_id": patient.patient_id,
        "patient_name": patient.name,
        "patient_birth_date": patient.birth_date.isoformat() if patient.birth_date else "",
        "patient_sex": patient.sex,
        "accession_number": proc.accession_number,
        "modality": proc.modality,
        "station_ae_title": proc.station_ae_title,
        "scheduled_start": proc.scheduled_start.strftime("%Y-%m-%dT%H:%M"),
        "duration_minutes": proc.duration_minutes,
        "procedure_description": proc.procedure_description,
        "referring_physician": proc.referring_physician,
        "requested_procedure_id": proc.requested_procedure_id,
        "step_id": proc.step_id,
        "study_instance_uid": proc.study_instance_uid,
        "performing_physician": proc.performing_physician,
        "priority": proc.priority,
        "notes": proc.notes,
        "cancel_reason": proc.cancel_reason,
        "placer_order_number": proc.placer_order_number,
        "filler_order_number": proc.filler_order_number,
        "procedure_code": _code_dict(
            proc.procedure_code_value, proc.procedure_code_scheme, proc.procedure_code_meaning
        ),
        "protocol_code": _code_dict(
            proc.protocol_code_value, proc.protocol_code_scheme, proc.protocol_code_meaning
        ),
    }


def _code_dict(value: str, scheme: str, meaning: str) -> dict[str, str] | None:
    code = code_of(value, scheme, meaning)
    return code.as_dict() if code is not None else None


def procedure_schema() -> dict[str, Any]:
    """The JSON Schema of a booking as the REST API reads and writes it (for OpenAPI)."""
    props: dict[str, Any] = {
        "id": {"type": "integer", "readOnly": True},
        "status": {"type": "string", "readOnly": True, "enum": list(STATUSES)},
    }
    for spec in FIELDS:
        props[spec.name] = dict(spec.schema)
    props["cancel_reason"] = {"type": "string", "readOnly": True}
    return {"type": "object", "properties": props}
