"""Coded entries: a booking's procedure code and protocol code (PS3.3 8.1, 8.2).

A code is a triplet of Code Value, Coding Scheme Designator and Code Meaning, as the
worklist answers it in Requested Procedure Code Sequence (0032,1064) and Scheduled
Protocol Code Sequence (0040,0008). HL7 coding systems (table 0396) map onto DICOM
coding scheme designators; a code of a local system gets :data:`LOCAL_SCHEME`, a
private designator in the sense of PS3.3 8.2 (it begins with ``99``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clinic.domain import vr

#: The private coding scheme designator of codes defined by this clinic (PS3.3 8.2).
LOCAL_SCHEME = "99CLINIC"
#: The parts of a code in JSON, import files and CSV columns (``procedure_code_value``...).
PARTS = ("value", "scheme", "meaning")

#: HL7 coding system (table 0396) -> DICOM coding scheme designator (PS3.16 Table 8-1).
HL7_SCHEMES: dict[str, str] = {
    "LN": "LN",
    "SCT": "SCT",
    "SNM3": "SNM3",
    "SNM": "SNM3",
    "SRT": "SRT",
    "DCM": "DCM",
    "C4": "C4",
    "C5": "C5",
    "CPT4": "C4",
    "I10": "I10",
    "I10P": "I10P",
    "I9C": "I9C",
    "RADLEX": "RADLEX",
    "RID": "RADLEX",
    "NCIT": "NCIt",
    "UMLS": "UMLS",
}
#: HL7 names of "a local code": no coding system, HL7's ``L``, ``LOCAL``.
HL7_LOCAL_SYSTEMS = frozenset({"", "L", "LOCAL", "99LOCAL"})


@dataclass(frozen=True)
class Code:
    """One coded entry: value, coding scheme designator, meaning (all required)."""

    value: str
    scheme: str
    meaning: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form: ``{"value", "scheme", "meaning"}``."""
        return {"value": self.value, "scheme": self.scheme, "meaning": self.meaning}


_CHECKS = {"value": vr.check_sh, "scheme": vr.check_sh, "meaning": vr.check_lo}


def parse_code(raw: Any) -> Code:
    """Read a code from its JSON object, or from that object written as text (a CSV cell).

    Parameters
    ----------
    raw : Mapping or str
        ``{"value": ..., "scheme": ..., "meaning": ...}``, each non-empty text.

    Returns
    -------
    Code

    Raises
    ------
    ValueError
        Naming the part that is missing or wrong, in plain words.
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):  # nested thousands deep exhausts the decoder
            raise ValueError(
                'must be a JSON object {"value": ..., "scheme": ..., "meaning": ...}'
            ) from None
    if not isinstance(raw, Mapping):
        raise ValueError('must be an object {"value": ..., "scheme": ..., "meaning": ...}')
    unknown = sorted(str(k) for k in raw if k not in PARTS)
    if unknown:
        raise ValueError(f"has unknown part {unknown[0]!r} (value, scheme, meaning)")
    parts: dict[str, str] = {}
    for part in PARTS:
        text = raw.get(part)
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise ValueError(f"{part} must be text")
        text = text.strip()
        if not text:
            raise ValueError(f"{part} is required")
        if "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text):
            raise ValueError(f"{part} is not valid text")
        problem = _CHECKS[part](text)
        if problem:
            raise ValueError(f"{part} {problem}")
        parts[part] = text
    return Code(**parts)


def scheme_from_hl7(system: str) -> str:
    """Map an HL7 coding system name (CE/CWE component 3) to a coding scheme designator.

    Known systems map as :data:`HL7_SCHEMES` says; a local system (none, ``L``,
    ``LOCAL``) becomes :data:`LOCAL_SCHEME`; a system already private in HL7's own
    convention (``99zzz``) is kept, as is any other name that is a valid designator.

    Examples
    --------
    >>> scheme_from_hl7("LN"), scheme_from_hl7(""), scheme_from_hl7("99XRAY")
    ('LN', '99CLINIC', '99XRAY')
    """
    name = system.strip().upper()
    if name in HL7_LOCAL_SYSTEMS:
        return LOCAL_SCHEME
    if name in HL7_SCHEMES:
        return HL7_SCHEMES[name]
    if vr.check_sh(name) is None and "\\" not in name:
        return name
    return LOCAL_SCHEME


def code_of(value: str, scheme: str, meaning: str) -> Code | None:
    """A :class:`Code` from stored columns; ``None`` when the value is empty."""
    if not value:
        return None
    return Code(value, scheme or LOCAL_SCHEME, meaning or value)
