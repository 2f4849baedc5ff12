"""Checks of text values against DICOM value representations (PS3.5 6.2).

Pure functions with no DICOM library underneath, so the domain, the configuration
and every door can share one set of rules. Each check returns ``None`` when the
value is acceptable and otherwise a short message in plain words.
"""

from __future__ import annotations

import datetime as dt
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CS = re.compile(r"^[A-Z0-9_ ]*$")
_DICOM_DATE = re.compile(r"^\d{8}$")
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def check_ae(value: str) -> str | None:
    """Check an Application Entity title (AE: 16 characters, no backslash or control).

    Parameters
    ----------
    value : str
        The AE title as typed; leading and trailing spaces are not significant.

    Returns
    -------
    str or None
        A message describing the problem, or ``None`` when the title is valid.
    """
    stripped = value.strip(" ")
    if not stripped:
        return "must not be empty"
    if len(stripped) > 16:
        return "must be at most 16 characters"
    if "\\" in stripped or _CONTROL.search(stripped):
        return "must not contain a backslash or control characters"
    if not stripped.isascii():
        return "must use plain ASCII characters"
    return None


def check_cs(value: str) -> str | None:
    """Check a Code String (CS: 16 characters of ``A-Z 0-9 _`` and space)."""
    if len(value) > 16:
        return "must be at most 16 characters"
    if not _CS.match(value):
        return "may only contain capital letters, digits, underscore and space"
    return None


def _check_text(value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"must be at most {limit} characters"
    if "\\" in value or _CONTROL.search(value):
        return "must not contain a backslash or control characters"
    return None


def check_sh(value: str) -> str | None:
    """Check a Short String (SH: 16 characters, no backslash or control)."""
    return _check_text(value, 16)


def check_lo(value: str) -> str | None:
    """Check a Long String (LO: 64 characters, no backslash or control)."""
    return _check_text(value, 64)


def check_pn(value: str) -> str | None:
    """Check a Person Name (PN: up to three groups of 64 characters, five components).

    Parameters
    ----------
    value : str
        ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``, optionally with ``=``-separated
        ideographic and phonetic groups.
    """
    if "\\" in value or _CONTROL.search(value):
        return "must not contain a backslash or control characters"
    groups = value.split("=")
    if len(groups) > 3:
        return "may have at most three '='-separated groups"
    for group in groups:
        if len(group) > 64:
            return "each name group must be at most 64 characters"
        if group.count("^") > 4:
            return "may have at most five '^'-separated components"
    return None


def check_uid(value: str) -> str | None:
    """Check a Unique Identifier (UI: 64 characters of digits and dots, no leading zeros)."""
    if not value:
        return "must not be empty"
    if len(value) > 64:
        return "must be at most 64 characters"
    if not _UID.match(value):
        return "must be digits separated by dots, without leading zeros"
    return None


def parse_date(value: str) -> dt.date:
    """Parse a calendar date given as ``YYYY-MM-DD`` or DICOM ``YYYYMMDD``.

    Raises
    ------
    ValueError
        When the text is not a real calendar date.
    """
    text = value.strip()
    # The DICOM form must have all eight digits: strptime alone would read the
    # ambiguous 1980115 as 1980-11-05.
    fmt = "%Y%m%d" if _DICOM_DATE.match(text) else "%Y-%m-%d"
    try:
        return dt.datetime.strptime(text, fmt).date()
    except ValueError:
        raise ValueError("must be a real date written YYYY-MM-DD") from None


#: Days a booking, a page or a query may name: past them, date arithmetic (a booking's
#: end, the next day, a week) would leave the calendar Python can count in.
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)


def check_day(day: dt.date) -> None:
    """Refuse a day outside :data:`FIRST_DAY` to :data:`LAST_DAY`.

    Raises
    ------
    ValueError
        With the message for the user.
    """
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}")


def parse_scheduled_start(value: str) -> dt.datetime:
    """Parse a booking's start (``YYYY-MM-DDTHH:MM``) on a day from 1900 to 2999.

    Raises
    ------
    ValueError
        When the text is not a real date and time, or names a day out of range.
    """
    start = parse_local_datetime(value)
    check_day(start.date())
    return start


def parse_local_datetime(value: str) -> dt.datetime:
    """Parse a local date and time given as ``YYYY-MM-DDTHH:MM`` (seconds optional).

    Raises
    ------
    ValueError
        When the text is not a real date and time.
    """
    text = value.strip().replace(" ", "T", 1)
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError("must be a real date and time written YYYY-MM-DDTHH:MM")
