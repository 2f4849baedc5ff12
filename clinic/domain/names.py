"""Folded forms of person names, the keys the worklist matches names on.

``fold`` ignores case (Unicode-aware upper case). ``fold_ascii`` ignores accents as
well: MÜLLER, Müller and MULLER all fold to ``MULLER``. Both keep DICOM's ``^`` and
``=`` separators, so a stored key lines up with a folded query pattern character
for character wherever the pattern is literal.
"""

from __future__ import annotations

import unicodedata

from unidecode import unidecode


def fold(text: str) -> str:
    """Return ``text`` upper-cased for case-insensitive matching (accents kept)."""
    return unicodedata.normalize("NFC", text).upper()


def fold_ascii(text: str) -> str:
    """Return ``text`` upper-cased with accents and non-Latin letters transliterated.

    Wildcards ``*`` and ``?`` and the separators ``^`` ``=`` survive unchanged.
    """
    out = []
    for char in unicodedata.normalize("NFC", text):
        if char.isascii():
            out.append(char)
        else:
            out.append(unidecode(char))
    return "".join(out).upper()


def trim_name(text: str) -> str:
    """Drop empty trailing components and groups: ``DOE^JOHN^^`` is ``DOE^JOHN``."""
    groups = [g.rstrip("^ ") for g in text.split("=")]
    while len(groups) > 1 and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def name_keys(text: str) -> tuple[str, str]:
    """Return ``(fold, fold_ascii)`` of the trimmed name: the two stored match keys."""
    trimmed = trim_name(text)
    return fold(trimmed), fold_ascii(trimmed)


def same_name(first: str, second: str) -> bool:
    """Whether two person names are the same name as people write it.

    Only the alphabetic group counts (a booking form has no ideographic or phonetic
    group), case is ignored, and the given-name components are compared as words, so
    ``DOE^JANE^MARIE`` and ``Doe^Jane Marie`` are the same name.
    """

    def key(text: str) -> tuple[str, str]:
        family, _, rest = fold(text.split("=", 1)[0]).partition("^")
        return family.strip(), " ".join(rest.replace("^", " ").split())

    return key(first) == key(second)
