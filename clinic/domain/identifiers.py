"""Generated identifiers: accession numbers, procedure and step IDs, Study Instance UIDs."""

from __future__ import annotations

import datetime as dt
import secrets

from pydicom.uid import generate_uid

# Crockford's base 32: no I, L, O, U, so an ID read over the phone is not misheard.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _random_part(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_accession_number(today: dt.date | None = None) -> str:
    """Return a new accession number: ``A`` + ``YYMMDD`` + 9 random characters (16 in all).

    The random part gives 3.5e13 values per day; the caller still checks the
    store and draws again on the improbable collision.
    """
    day = today or dt.date.today()
    return f"A{day:%y%m%d}{_random_part(9)}"


def new_requested_procedure_id() -> str:
    """Return a new Requested Procedure ID (SH, 12 characters)."""
    return f"RP{_random_part(10)}"


def new_step_id() -> str:
    """Return a new Scheduled Procedure Step ID (SH, 12 characters)."""
    return f"SPS{_random_part(9)}"


def new_study_instance_uid(root: str = "") -> str:
    """Return a new Study Instance UID under ``root`` (or the 2.25 UUID root).

    Parameters
    ----------
    root : str
        The organisation's UID root, without a trailing dot; empty for ``2.25``.
    """
    if root:
        return str(generate_uid(prefix=f"{root}."))
    return str(generate_uid(prefix=None))
