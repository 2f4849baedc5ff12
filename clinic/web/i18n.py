"""Languages: the page's language from the browser's Accept-Language, dates and times
in that language's format, and local time for timestamps the store keeps in UTC.

English, German, French and Spanish are offered; the catalogs are compiled ``.mo``
files shipped in ``clinic/translations``.
"""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources
from typing import Any

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale

#: The languages pages are offered in, the first the default.
LANGUAGES = ("en", "de", "fr", "es")
DEFAULT_LANGUAGE = LANGUAGES[0]


def translations_folder() -> str:
    """Where the compiled catalogs are (``clinic/translations/<lang>/LC_MESSAGES``)."""
    return str(resources.files("clinic") / "translations")


def select_language() -> str:
    """The best of :data:`LANGUAGES` for the browser's ``Accept-Language`` header."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def current_locale() -> Locale:
    """The locale dates are written in for the current request (English outside one).

    The page's language, in the region the browser names first for it: ``en-GB``
    writes ``31/12/1970``, ``en-US`` ``12/31/1970``, as the browser's own date
    fields do; a bare ``en`` follows CLDR's default region.
    """
    if not has_request_context():
        return Locale.parse(DEFAULT_LANGUAGE)
    cached = getattr(g, "clinic_date_locale", None)
    if isinstance(cached, Locale):
        return cached
    language = get_locale() or Locale.parse(DEFAULT_LANGUAGE)
    locale = language
    for tag, _quality in request.accept_languages:
        parts = tag.replace("-", "_").split("_")
        if parts[0].lower() != language.language or len(parts) < 2:
            continue
        try:
            locale = Locale.parse(f"{parts[0].lower()}_{parts[1].upper()}")
        except (ValueError, UnknownLocaleError):
            continue
        break
    g.clinic_date_locale = locale
    return locale


def date_pattern(locale: Locale) -> str:
    """The locale's short date pattern with a four-digit year (``dd.MM.yyyy``).

    One pattern per language for tables, hints and slips; it is the order a browser
    in that language shows in its date inputs.
    """
    pattern = str(locale.date_formats["short"].pattern)
    if "yyyy" not in pattern:
        pattern = pattern.replace("yy", "yyyy") if "yy" in pattern else pattern.replace("y", "yyyy")
    return pattern


def parse_day(text: str, locale: Locale | None = None) -> dt.date | None:
    """Read a date typed in the locale's one format (``31.12.1970``); ``None`` if it is not."""
    pattern = date_pattern(locale or current_locale())
    fmt = re.sub(r"d+", "%d", pattern)
    fmt = re.sub(r"M+", "%m", fmt)
    fmt = re.sub(r"y+", "%Y", fmt)
    try:
        return dt.datetime.strptime(text.strip(), fmt).date()
    except ValueError:
        return None


def format_day(value: dt.date | dt.datetime | None, locale: Locale | None = None) -> str:
    """A date in the locale's one format (``01.12.2026``, ``12/1/2026``); ``""`` for none."""
    if value is None:
        return ""
    locale = locale or current_locale()
    day = value.date() if isinstance(value, dt.datetime) else value
    return str(babel_dates.format_date(day, date_pattern(locale), locale=locale))


def format_clock(value: dt.datetime | dt.time | None, locale: Locale | None = None) -> str:
    """A time of day on the 24-hour clock (``09:30``, ``14:05``)."""
    if value is None:
        return ""
    locale = locale or current_locale()
    clock = value.time() if isinstance(value, dt.datetime) else value
    # The 24-hour clock in every language: a clinic's day, worklist and slips use it.
    return str(babel_dates.format_time(clock, "HH:mm", locale=locale))


def format_moment(value: dt.datetime | None, locale: Locale | None = None) -> str:
    """A date and time of day, both in the locale's format."""
    if value is None:
        return ""
    return f"{format_day(value, locale)} {format_clock(value, locale)}"


def format_long_day(value: dt.date | dt.datetime | None, locale: Locale | None = None) -> str:
    """A date with its weekday written out (``Dienstag, 1. Dezember 2026``)."""
    if value is None:
        return ""
    locale = locale or current_locale()
    day = value.date() if isinstance(value, dt.datetime) else value
    return str(babel_dates.format_date(day, "full", locale=locale))


def format_short_day(value: dt.date | None, locale: Locale | None = None) -> str:
    """A weekday and day of month for buttons (``Tue 1 Dec``, ``Di., 1. Dez.``)."""
    if value is None:
        return ""
    locale = locale or current_locale()
    return str(babel_dates.format_skeleton("MMMEd", value, locale=locale))


_WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekday_name(key: str, locale: Locale | None = None) -> str:
    """A weekday key of the opening hours (``mon``) as the locale writes it (``Mo.``)."""
    locale = locale or current_locale()
    try:
        index = _WEEKDAY_KEYS.index(key.lower())
    except ValueError:
        return key
    return str(locale.days["format"]["abbreviated"][index])


def local_time(value: dt.datetime | None) -> dt.datetime | None:
    """A naive UTC timestamp from the store as naive local time (the clinic's clock).

    Bookings are kept in local time already; audit entries, users, tokens and print
    jobs are stamped in UTC and shown through this.
    """
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC).astimezone().replace(tzinfo=None)


def format_utc_moment(value: dt.datetime | None) -> str:
    """A UTC timestamp from the store shown as local date and time in the locale's format."""
    return format_moment(local_time(value))


def init_app(app: Flask) -> Babel:
    """Attach Flask-Babel and the date filters to ``app``."""
    babel = Babel(
        app,
        locale_selector=select_language,
        default_translation_directories=translations_folder(),
    )
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    filters: dict[str, Any] = {
        "day": format_day,
        "clock": format_clock,
        "moment": format_moment,
        "longday": format_long_day,
        "shortday": format_short_day,
        "utcmoment": format_utc_moment,
        "weekday": weekday_name,
    }
    app.jinja_env.filters.update(filters)
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["page_language"] = lambda: str(get_locale() or DEFAULT_LANGUAGE)
    app.jinja_env.globals["date_example"] = lambda: format_day(dt.date(1970, 12, 31))
    return babel
