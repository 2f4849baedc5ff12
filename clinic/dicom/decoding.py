"""Checks on datasets as received from a peer, before any value is read.

pydicom decodes a received value on first access and raises there when the bytes do
not fit the VR (a length that is no multiple of the value size, an unknown character
set...). The doors call :func:`first_undecodable` first, so such a request is refused
with the status its service defines instead of failing somewhere inside the handler.

Text that does not decode in its character set is a different case: pydicom does not
raise but falls back to the first character set with replacement characters, leaving
escape sequences (ISO 2022) or U+FFFD in the value. Such a value is undecodable too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydicom import charset as pydicom_charset
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from clinic.dicom.status import DimseFailure

#: VRs whose values are decoded with the Specific Character Set.
_TEXT_VRS = frozenset({"PN", "SH", "LO", "ST", "LT", "UT", "UC"})
#: Left in a value only by pydicom's fallback: an undecoded ISO 2022 escape or U+FFFD.
_GARBLED = ("\x1b", "\ufffd")


def _garbled(value: Any) -> bool:
    """Whether a decoded text value shows pydicom's fallback for undecodable bytes."""
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    for item in values:
        text = str(item) if item is not None else ""
        if any(mark in text for mark in _GARBLED):
            return True
    return False


def received(read: Callable[[], Dataset], what: str, status: int) -> Dataset:
    """Decode a request's data set (``lambda: event.identifier`` and the like).

    Parameters
    ----------
    read : callable
        Returns the data set; pynetdicom decodes it on this first access.
    what : str
        Its name in the Error Comment (``identifier``, ``attribute list``).
    status : int
        The service's status for a data set that cannot be read.

    Raises
    ------
    DimseFailure
        ``status``, "<what> cannot be decoded", when pydicom cannot read it.
    """
    try:
        return read()
    except Exception:  # pydicom raises many types for bytes it cannot read
        raise DimseFailure(status, f"{what} cannot be decoded") from None


def first_undecodable(ds: Dataset) -> BaseTag | None:
    """Decode every value of ``ds``, sequence items included.

    Parameters
    ----------
    ds : Dataset
        A dataset decoded lazily from the network.

    Returns
    -------
    BaseTag or None
        The tag of the first value that cannot be decoded, or ``None``.
    """
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception:  # pydicom raises several types for malformed values
            return tag
        if elem.VR in _TEXT_VRS:
            try:
                garbled = _garbled(elem.value)
            except Exception:  # a person name decodes on first use
                return tag
            if garbled:
                return tag
        if elem.VR == "SQ":
            for item in elem.value or ():
                inner = first_undecodable(item)
                if inner is not None:
                    return inner
    return None


def fix_character_sets() -> None:
    """Correct two gaps in pydicom 3.0's character set tables (idempotent).

    - ``ISO_IR 203`` (Latin-9, PS3.3 Table C.12-2) is unknown to pydicom, which would
      read it as ASCII with replacement characters.
    - ``ISO 2022 IR 58`` (GB 2312): pydicom counts its Python codec among those that
      write their own escape sequences, which it does not; values were then written
      without ``ESC $ ) A`` and read back as Latin-1. Left out of that list, pydicom
      adds and strips the escape sequence itself (PS3.5 Annex K).
    """
    pydicom_charset.python_encoding.setdefault("ISO_IR 203", "iso8859_15")
    pydicom_charset.python_encoding.setdefault("ISO 2022 IR 203", "iso8859_15")
    if "iso_ir_58" in pydicom_charset.handled_encodings:
        kept = tuple(e for e in pydicom_charset.handled_encodings if e != "iso_ir_58")
        pydicom_charset.handled_encodings = kept  # type: ignore[assignment]
