"""Worklist answers encoded straight to bytes.

pynetdicom has pydicom write each pending response's identifier; for a query with
thousands of matches that is nearly all of the time spent. Every answer of one query
has the same shape, though: the same elements in the same order, in one transfer
syntax. So the shape is compiled once per query into an :class:`AnswerPlan` that turns
a matched row into the identifier's bytes, which
:class:`clinic.dicom.pending.PendingStream` frames and hands to the association.

The plan is checked byte for byte against pydicom's encoding of the reference
response (``build_response``) by the tests; a row it cannot encode (a value that does
not fit its VR's character repertoire or length field) is encoded by pydicom instead.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID
from pydicom.valuerep import (
    CUSTOMIZABLE_CHARSET_VR,
    DEFAULT_CHARSET_VR,
    EXPLICIT_VR_LENGTH_32,
)
from pynetdicom import DEFAULT_TRANSFER_SYNTAXES
from pynetdicom.dsutils import encode as pydicom_encode

from clinic.worklist.charsets import SIMPLE_CODECS
from clinic.worklist.matching import (
    ANSWERED_APART,
    CODE_ITEM_PARTS,
    DEFAULT_SPS_RETURN,
    SPS_KEYS,
    SPS_SEQUENCE,
    TOP_KEYS,
    Key,
    Row,
    WorklistQuery,
    code_item_tags,
    code_part,
    sequence_item,
)

#: Python codecs of the character sets the plan writes (PS3.3 C.12.1.1.2); answers in
#: ISO 2022 sets with code extensions are written by pydicom.
CODECS = SIMPLE_CODECS
#: VRs whose text is in the Specific Character Set; the others are default repertoire.
_CHARSET_VRS = frozenset(CUSTOMIZABLE_CHARSET_VR)
#: VRs with a value the plan can write (text); any VR can be written empty.
_TEXT_VRS = _CHARSET_VRS | DEFAULT_CHARSET_VR
#: Explicit VR elements with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset(EXPLICIT_VR_LENGTH_32)
#: pydicom writes text in the default repertoire with this codec.
_DEFAULT_CODEC = "latin-1"

#: (implicit VR, little endian, deflated) per transfer syntax the worklist accepts.
SYNTAXES: dict[str, tuple[bool, bool, bool]] = {
    uid: (uid.is_implicit_VR, uid.is_little_endian, uid.is_deflated)
    for uid in map(UID, DEFAULT_TRANSFER_SYNTAXES)
}

_ITEM = (0xFFFE, 0xE000)  # Item tag: group, element


class _Field:
    """One element of the answer: its header bytes and how its value is found."""

    __slots__ = (
        "header",
        "short_length",
        "get",
        "codec",
        "pad",
        "items",
        "constant",
        "pn",
        "present",
    )

    def __init__(
        self,
        header: bytes,
        short_length: bool,
        *,
        get: Callable[[Row], Any] | None = None,
        codec: str = _DEFAULT_CODEC,
        pad: bytes = b" ",
        items: list[_Field] | None = None,
        constant: str | None = None,
        pn: bool = False,
        present: Callable[[Row], bool] | None = None,
    ) -> None:
        self.header = header
        self.short_length = short_length
        self.get = get
        self.codec = codec
        self.pad = pad
        self.items = items
        self.constant = constant
        self.pn = pn
        # For a sequence: whether the row has its one item (else the sequence is empty).
        self.present = present


@dataclass
class AnswerPlan:
    """The compiled shape of one query's answers: row in, encoded identifier out.

    Build it with :meth:`compile`; :meth:`encode` is then called once per match.
    """

    fields: list[_Field]
    little_endian: bool
    deflated: bool
    transform: Callable[[str], str]

    @classmethod
    def compile(
        cls,
        query: WorklistQuery,
        character_set: str,
        transfer_syntax: str,
        transform: Callable[[str], str] = str,
    ) -> AnswerPlan | None:
        """Compile the answer shape of ``query``; ``None`` when only pydicom can write it.

        Parameters
        ----------
        query : WorklistQuery
            The parsed request: its elements name the answer's elements.
        character_set : str
            The answer's Specific Character Set (a defined term).
        transfer_syntax : str
            The UID of the presentation context's transfer syntax.
        transform : callable
            Applied to every text value (transliteration for Latin-1 answers).
        """
        codec = CODECS.get(character_set)
        syntax = SYNTAXES.get(transfer_syntax)
        if codec is None or syntax is None:
            return None
        implicit, little, deflated = syntax
        builder = _Builder(implicit, little, codec)
        top: list[tuple[BaseTag, _Field]] = [
            (Tag(0x0008, 0x0005), builder.field(Tag(0x0008, 0x0005), "CS", constant=character_set))
        ]
        for elem in query.request:
            keyword = elem.keyword
            if keyword in ANSWERED_APART or elem.tag.element == 0:
                continue
            if keyword == SPS_SEQUENCE:
                items = builder.sps_item(query.sps_item)
                if items is None:
                    return None
                top.append((elem.tag, builder.field(elem.tag, "SQ", items=items)))
                continue
            built = builder.element(elem.tag, elem.VR, TOP_KEYS.get(keyword), sequence_item(elem))
            if built is None:
                return None
            top.append((elem.tag, built))
        top.sort(key=lambda pair: pair[0])
        return cls([f for _, f in top], little, deflated, transform)

    def encode(self, row: Row) -> bytes:
        """The encoded response identifier for one matched row.

        Raises
        ------
        UnicodeEncodeError, struct.error, TypeError
            When a value does not fit its VR (the caller falls back to pydicom).
        """
        data = self._encode_fields(self.fields, row)
        if self.deflated:
            compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS
            )
            data = compressor.compress(data) + compressor.flush()
            if len(data) % 2:
                data += b"\x00"
        return data

    def _encode_fields(self, fields: list[_Field], row: Row) -> bytes:
        order = "<" if self.little_endian else ">"
        out = []
        for f in fields:
            if f.items is not None:
                if f.present is not None and not f.present(row):
                    value = b""
                else:
                    item = self._encode_fields(f.items, row)
                    value = struct.pack(order + "HHI", *_ITEM, len(item)) + item
            else:
                text = f.constant if f.constant is not None else f.get(row) if f.get else None
                if text is not None and not isinstance(text, str):
                    raise TypeError("answer values are text")
                if text and f.get is not None:
                    text = self.transform(text)
                if text and f.pn:
                    # Trailing empty component groups are left out (PS3.5 6.2.1.1),
                    # as pydicom writes them.
                    text = "\\".join(v.rstrip("=") for v in text.split("\\"))
                if not text:
                    value = b""
                else:
                    value = text.encode(f.codec)
                    if len(value) % 2:
                        value += f.pad
            out.append(f.header)
            out.append(struct.pack(order + ("H" if f.short_length else "I"), len(value)))
            out.append(value)
        return b"".join(out)


class _Builder:
    """Makes the :class:`_Field` objects of one plan (one syntax, one character set)."""

    def __init__(self, implicit: bool, little_endian: bool, codec: str) -> None:
        self.implicit = implicit
        self.order = "<" if little_endian else ">"
        self.codec = codec

    def field(self, tag: BaseTag, vr: str, **kwargs: Any) -> _Field:
        header = struct.pack(self.order + "HH", tag.group, tag.element)
        short = False
        if not self.implicit:
            header += vr.encode("ascii")
            if vr in _LONG_VRS:
                header += b"\x00\x00"
            else:
                short = True
        if "codec" not in kwargs:
            kwargs["codec"] = self.codec if vr in _CHARSET_VRS else _DEFAULT_CODEC
        kwargs.setdefault("pad", b"\x00" if vr == "UI" else b" ")
        kwargs["pn"] = vr == "PN"
        return _Field(header, short, **kwargs)

    def element(
        self, tag: BaseTag, vr: str, spec: Key | None, request: Dataset | None = None
    ) -> _Field | None:
        """The field of one requested element: valued from ``spec``, else empty.

        ``request`` is the requested sequence's item, for a code sequence.
        """
        if " or " in vr:  # an ambiguous VR pydicom would resolve on writing
            return None
        if spec is not None and spec.kind == "code" and vr == "SQ":
            return self.code_sequence(tag, spec, request)
        if spec is None or vr == "SQ":
            return self.field(tag, vr)  # answered empty: unknown, or a sequence not served
        if vr not in _TEXT_VRS:
            return None
        return self.field(tag, vr, get=spec.get)

    def code_sequence(self, tag: BaseTag, spec: Key, request: Dataset | None) -> _Field | None:
        """A code sequence: one item of the requested code attributes, or none (no code)."""
        read_code = spec.get
        # The sequence and each of its attributes ask for the same row's code in turn:
        # read it once per row (a plan encodes one query's rows on one thread).
        last: list[Any] = [None, None]

        def get_code(row: Row) -> Any:
            if last[0] is not row:
                last[0], last[1] = row, read_code(row)
            return last[1]

        fields: list[tuple[BaseTag, _Field]] = []
        for item_tag, vr in code_item_tags(request):
            keyword = keyword_for_tag(item_tag)
            if keyword in CODE_ITEM_PARTS and vr != "SQ":
                if vr not in _TEXT_VRS:
                    return None

                def part(row: Row, keyword: str = keyword) -> str:
                    return code_part(get_code(row), keyword)

                fields.append((item_tag, self.field(item_tag, vr, get=part)))
            else:
                built = self.element(item_tag, vr, None)
                if built is None:
                    return None
                fields.append((item_tag, built))
        fields.sort(key=lambda pair: pair[0])

        def present(row: Row) -> bool:
            return get_code(row) is not None

        return self.field(tag, "SQ", items=[f for _, f in fields], present=present)

    def sps_item(self, request_item: Dataset | None) -> list[_Field] | None:
        """The fields of the one Scheduled Procedure Step item, in tag order."""
        fields: list[tuple[BaseTag, _Field]] = []
        if request_item is None:
            for keyword in DEFAULT_SPS_RETURN:
                tag = Tag(keyword)
                built = self.element(tag, dictionary_VR(tag), SPS_KEYS[keyword])
                if built is None:
                    return None
                fields.append((tag, built))
        else:
            for elem in request_item:
                if elem.tag.element == 0 or elem.keyword in ANSWERED_APART:
                    continue
                built = self.element(
                    elem.tag, elem.VR, SPS_KEYS.get(elem.keyword), sequence_item(elem)
                )
                if built is None:
                    return None
                fields.append((elem.tag, built))
        fields.sort(key=lambda pair: pair[0])
        return [f for _, f in fields]


def reference_encode(response: Dataset, transfer_syntax: str) -> bytes:
    """Encode ``response`` with pydicom, as pynetdicom would (for rows the plan cannot)."""
    implicit, little, deflated = SYNTAXES[transfer_syntax]
    data = pydicom_encode(response, implicit, little, deflated)
    if data is None:
        raise ValueError("the response identifier cannot be encoded")
    return data
