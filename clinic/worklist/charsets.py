"""The character sets worklist answers are written in (PS3.3 C.12.1.1.2, PS3.5 6.1).

An answer is given in the Specific Character Set the query used, when clinic can write
every one of its terms; else in the calling station's set, else the service default.
Text the set cannot hold is transliterated character by character (``Dvořák`` in
Latin-1 is ``Dvorák``, in Cyrillic ``Dvorak``), never dropped.

The single-byte sets, UTF-8, GB18030 and GBK are written by the worklist's own encoder;
the ISO 2022 sets with code extensions (Japanese, Korean, Chinese GB 2312) by pydicom,
which writes the escape sequences of PS3.5 6.1.2.5.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache

from pydicom.charset import python_encoding
from unidecode import unidecode

from clinic.dicom.decoding import fix_character_sets

fix_character_sets()

UTF8 = "ISO_IR 192"
LATIN1 = "ISO_IR 100"

#: Single-valued sets the answer plan writes itself: defined term -> Python codec.
SIMPLE_CODECS: dict[str, str] = {
    UTF8: "utf-8",
    LATIN1: "latin-1",
    "ISO_IR 101": "iso8859_2",  # Latin-2: Polish, Czech, Hungarian...
    "ISO_IR 109": "iso8859_3",  # Latin-3
    "ISO_IR 110": "iso8859_4",  # Latin-4
    "ISO_IR 144": "iso8859_5",  # Cyrillic
    "ISO_IR 127": "iso8859_6",  # Arabic
    "ISO_IR 126": "iso8859_7",  # Greek
    "ISO_IR 138": "iso8859_8",  # Hebrew
    "ISO_IR 148": "iso8859_9",  # Latin-5, Turkish
    "ISO_IR 203": "iso8859_15",  # Latin-9
    "ISO_IR 166": "tis_620",  # Thai
    "GB18030": "gb18030",
    "GBK": "gbk",
}

#: What a station (or the service default) may be set to, and the terms it answers with.
STATION_SETS: dict[str, tuple[str, ...]] = {
    **{term: (term,) for term in SIMPLE_CODECS},
    # Japanese: romaji and kanji/kana (JIS X 0208), PS3.5 H.3.1.
    "ISO 2022 IR 87": ("ISO 2022 IR 6", "ISO 2022 IR 87"),
    # Japanese: half-width katakana (JIS X 0201) and kanji/kana, PS3.5 H.3.2.
    "ISO 2022 IR 13": ("ISO 2022 IR 13", "ISO 2022 IR 87"),
    # Korean: KS X 1001, PS3.5 I.2.
    "ISO 2022 IR 149": ("ISO 2022 IR 6", "ISO 2022 IR 149"),
    # Simplified Chinese: GB 2312 with code extensions, PS3.5 K.
    "ISO 2022 IR 58": ("ISO 2022 IR 6", "ISO 2022 IR 58"),
}

#: Every term an answer may carry: the single-byte sets, with and without code extensions.
_ISO_2022_TERMS = {
    "ISO 2022 IR 6",
    "ISO 2022 IR 13",
    "ISO 2022 IR 87",
    "ISO 2022 IR 149",
    "ISO 2022 IR 58",
    "ISO 2022 IR 159",
    *(f"ISO 2022 IR {t.removeprefix('ISO_IR ')}" for t in SIMPLE_CODECS if t.startswith("ISO_IR")),
}
ANSWER_TERMS = frozenset(SIMPLE_CODECS) | _ISO_2022_TERMS | {"ISO_IR 13"}
#: Terms that only name the default repertoire (ASCII): no set asked for.
_DEFAULT_TERMS = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6"})

#: Python codecs of the ISO 2022 and Japanese terms, for telling what a set can hold.
_SPECIAL_CODECS = {
    "": "ascii",
    "ISO_IR 6": "ascii",
    "ISO 2022 IR 6": "ascii",
    "ISO_IR 13": "jis_x_0201",
    "ISO 2022 IR 13": "jis_x_0201",
    "ISO 2022 IR 87": "iso2022_jp",
    "ISO 2022 IR 159": "iso2022_jp_2",
    "ISO 2022 IR 149": "euc_kr",
    "ISO 2022 IR 58": "gb2312",
}


def split_terms(value: str) -> tuple[str, ...]:
    """``"A\\B"`` -> ``("A", "B")``, spaces trimmed."""
    return tuple(term.strip() for term in value.split("\\"))


def answer_set(requested: Iterable[object]) -> str | None:
    """The answer's Specific Character Set for a query's, or ``None`` to use the default.

    Parameters
    ----------
    requested : iterable
        The values of the query's Specific Character Set (any VR a peer sent).

    Returns
    -------
    str or None
        The query's own terms (``\\``-joined) when every one is a set clinic writes;
        ``None`` when the query names none (default repertoire only) or one clinic
        cannot write.
    """
    terms = [str(v).strip() for v in requested if isinstance(v, str)]
    if not terms or all(t in _DEFAULT_TERMS for t in terms):
        return None
    if UTF8 in terms:
        return UTF8
    others = [t for t in terms if t not in _DEFAULT_TERMS]
    if len(others) == 1 and others[0].startswith("ISO 2022 IR "):
        # ASCII plus one single-byte set: no escape sequence is ever needed, so the
        # bytes are those of its ISO_IR twin (\\ISO 2022 IR 100 is written ISO_IR 100).
        twin = others[0].replace("ISO 2022 IR ", "ISO_IR ")
        if twin in SIMPLE_CODECS:
            return twin
    if len(terms) == 1:
        term = terms[0]
        if term in SIMPLE_CODECS or term == "ISO_IR 13":
            return term
        # One ISO 2022 term: without a second set no escape sequence can occur, so the
        # bytes are those of its ISO_IR twin (ISO 2022 IR 100 is written as ISO_IR 100).
        twin = term.replace("ISO 2022 IR ", "ISO_IR ")
        if twin in SIMPLE_CODECS:
            return twin
        return station_terms(term) if term in STATION_SETS else None
    if not all(t in ANSWER_TERMS or t == "" for t in terms):
        return None
    # ISO 2022 code extensions: the first value may be empty (ISO 2022 IR 6).
    return "\\".join(terms)


def station_terms(name: str) -> str:
    """The Specific Character Set value a station set to ``name`` is answered in."""
    return "\\".join(STATION_SETS.get(name, (name,)))


def _jis_x_0201(char: str) -> bool:
    return char.isascii() or "\uff61" <= char <= "\uff9f"


def _holder(codec: str) -> Callable[[str], bool]:
    if codec == "jis_x_0201":
        return _jis_x_0201

    def holds(char: str) -> bool:
        try:
            char.encode(codec)
        except UnicodeError:
            return False
        return True

    return holds


@lru_cache(maxsize=64)
def transliterator(character_set: str) -> Callable[[str], str]:
    """The text transform of answers in ``character_set`` (a ``\\``-joined value).

    Characters the set holds are kept; any other becomes its letter without accents
    when the set holds that, else its ASCII transliteration (``unidecode``), else
    ``?``. UTF-8 and GB18030 hold every character: the transform is then ``str``.
    """
    terms = list(split_terms(character_set))
    if terms in ([UTF8], ["GB18030"]):
        return str
    holders = []
    for term in terms:
        codec = SIMPLE_CODECS.get(term) or _SPECIAL_CODECS.get(term) or python_encoding.get(term)
        holders.append(_holder(codec or "ascii"))

    @lru_cache(maxsize=4096)
    def holds(char: str) -> bool:
        return any(h(char) for h in holders)

    single = SIMPLE_CODECS.get(terms[0]) if len(terms) == 1 else None

    def fits(text: str) -> bool:
        if single is not None:  # one codec: let it check the whole text at C speed
            try:
                text.encode(single)
            except UnicodeError:
                return False
            return True
        return all(holds(c) for c in text)

    def transform(text: str) -> str:
        if fits(text):
            return text
        out = []
        for char in unicodedata.normalize("NFC", text):
            if holds(char):
                out.append(char)
            elif unicodedata.combining(char):
                continue
            else:
                base = "".join(
                    c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)
                )
                if base and all(holds(c) for c in base):
                    out.append(base)
                else:
                    ascii_ = unidecode(char)
                    out.append("".join(c for c in ascii_ if holds(c)) or "?")
        return "".join(out)

    return transform
