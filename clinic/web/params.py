"""What the web door accepts in paths, query strings and forms, checked before any use.

Ids become a 404 when no row can have them, dates outside the calendar the clinic
works in become a 400: no value a browser can send reaches the store in a form
it cannot hold.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from werkzeug.routing import (
    IntegerConverter,
    Map,
    PathConverter,
    UnicodeConverter,
    ValidationError,
)

from clinic.domain.vr import check_day, parse_date

#: The largest id the store holds: its id columns are INTEGER, 32 bits on PostgreSQL.
MAX_ID = 2**31 - 1
#: The highest page number a paged list takes.
MAX_PAGE = 1_000_000


class IdConverter(IntegerConverter):
    """``<int:...>`` in a route: 0 to :data:`MAX_ID`; a larger number matches no route (404).

    Werkzeug's own converter takes any number of digits, and a number past what the
    id column holds (64 bits on SQLite, 32 on PostgreSQL) made the database fail (a
    500) instead of finding nothing.
    """

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)

    def to_python(self, value: str) -> Any:
        """Return the id; a value past the bounds matches no route."""
        return super().to_python(value)


def _printable(value: str) -> str:
    """``value`` itself; a control character in it matches no route (``ValidationError``)."""
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise ValidationError()
    return value


class TextConverter(UnicodeConverter):
    """``<name>`` in a route (a patient ID): text without control characters, else 404.

    No stored identifier holds a control character, and a NUL would make
    PostgreSQL refuse the query instead of finding nothing.
    """

    def to_python(self, value: str) -> Any:
        """Return the text; one with a control character matches no route."""
        return super().to_python(_printable(value))


class TextPathConverter(PathConverter):
    """``<path:name>`` (a patient ID that may hold ``/``): no control characters, else 404."""

    def to_python(self, value: str) -> Any:
        """Return the text; one with a control character matches no route."""
        return super().to_python(_printable(value))


def parse_id(text: str | None) -> int | None:
    """Return the id written in ``text`` (ASCII digits, 1 to :data:`MAX_ID`), else ``None``."""
    text = (text or "").strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def parse_day(text: str) -> dt.date:
    """Parse a day (``YYYY-MM-DD``) the pages and API work with.

    Raises
    ------
    ValueError
        With a message for the user when the text is no date, or one outside
        :data:`clinic.domain.vr.FIRST_DAY` to :data:`clinic.domain.vr.LAST_DAY`.
    """
    day = parse_date(text)
    check_day(day)
    return day


def page_number(text: str | None) -> int:
    """A page number from a query string: 1 when absent or no number, at most :data:`MAX_PAGE`."""
    value = parse_id(text)
    return min(value, MAX_PAGE) if value is not None else 1


def local_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site (safe to redirect to), else ``None``.

    Refused: anything with a scheme or host, ``//`` or ``/\\`` (other hosts to a
    browser), backslashes, spaces and control characters (a CR/LF would write a
    header of its own), and very long values.
    """
    if (
        target
        and len(target) <= 2048
        and target.startswith("/")
        and not target.startswith("//")
        and all(" " < ch != "\x7f" and ch != "\\" for ch in target)
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return None
