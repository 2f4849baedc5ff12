"""Worklist answers encoded straight to bytes and handed to the association as P-DATA.

pynetdicom answers a C-FIND one pending response at a time: the handler's dataset is
written by pydicom, a command set is built and written twice (once to measure its
group length), and the message is cut into PDUs, each on its own trip through the
DUL state machine. For a query with thousands of matches that is nearly all of the
time spent. Every answer of one query has the same shape, though: the same elements
in the same order, in one transfer syntax, and one command set serves them all (same
message ID, same pending status). So the shape is compiled once
per query into an :class:`AnswerPlan` that turns a matched row into the identifier's
bytes, and a :class:`PendingStream` frames each one with the prepared command set as a
single P-DATA-TF PDU (two PDVs: command, then data set; PS3.8 9.3.5 and Annex E)
whenever the peer's maximum PDU length allows.

The plan is checked byte for byte against pydicom's encoding of the reference
response (``build_response``) by the tests; a row it cannot encode (a value that does
not fit its VR's character repertoire or length field) is encoded by pydicom instead.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import evt
from pynetdicom.dsutils import encode as pydicom_encode
from pynetdicom.pdu_primitives import P_DATA

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
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
#: VRs with a value the plan can write (text); any VR can be written empty.
_TEXT_VRS = _CHARSET_VRS | {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"}
#: Explicit VR elements with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
#: pydicom writes text in the default repertoire with this codec.
_DEFAULT_CODEC = "latin-1"

#: (implicit VR, little endian, deflated) per transfer syntax the worklist accepts.
SYNTAXES: dict[str, tuple[bool, bool, bool]] = {
    ImplicitVRLittleEndian: (True, True, False),
    ExplicitVRLittleEndian: (False, True, False),
    DeflatedExplicitVRLittleEndian: (False, True, True),
    ExplicitVRBigEndian: (False, False, False),
}

_ITEM = (0xFFFE, 0xE000)  # Item tag: group, element
_CFIND_RSP = 0x8020
_DATASET_PRESENT = 0x0001
#: P-DATA waiting for the DUL beyond this many: wait for the peer to read.
_QUEUE_HIGH_WATER = 256
#: DUL states (PS3.8 9.2) in which no answer will reach the peer any more: idle, and
#: waiting for the transport to close.
_ENDED_STATES = frozenset({"Sta1", "Sta13"})


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
        get_code = spec.get
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


# -- framing ---------------------------------------------------------------------------


def find_response_command(sop_class_uid: str, message_id: int, status: int) -> bytes:
    """A C-FIND-RSP command set with a data set (Implicit VR Little Endian, PS3.7 9.3.2.2).

    Byte for byte what pynetdicom writes for the same response.
    """
    uid = sop_class_uid.encode("ascii")
    if len(uid) % 2:
        uid += b"\x00"

    def us(element: int, value: int) -> bytes:
        return struct.pack("<HHIH", 0x0000, element, 2, value)

    body = (
        struct.pack("<HHI", 0x0000, 0x0002, len(uid))
        + uid
        + us(0x0100, _CFIND_RSP)
        + us(0x0120, message_id)
        + us(0x0800, _DATASET_PRESENT)
        + us(0x0900, status)
    )
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(body)) + body


def frame_message(
    context_id: int, command: bytes, dataset: bytes, max_pdu_length: int
) -> list[list[list[Any]]]:
    """Cut one DIMSE message into the PDV lists of its P-DATA-TF PDUs (PS3.8 Annex E).

    Command and data set travel in one PDU when both fit under the peer's maximum PDU
    length (0: unlimited); otherwise each is fragmented as pynetdicom does, one PDV per
    PDU. The first byte of each PDV is its message control header.
    """
    if max_pdu_length == 0 or 12 + len(command) + len(dataset) <= max_pdu_length:
        return [[[context_id, b"\x03" + command], [context_id, b"\x02" + dataset]]]
    size = max_pdu_length - 6
    pdus: list[list[list[Any]]] = []
    for payload, more, last in ((command, b"\x01", b"\x03"), (dataset, b"\x00", b"\x02")):
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        for index, chunk in enumerate(chunks):
            control = last if index == len(chunks) - 1 else more
            pdus.append([[context_id, control + chunk]])
    return pdus


class PendingStream:
    """Sends one query's pending C-FIND responses straight to the association's DUL.

    They share the DUL's queue with what pynetdicom sends itself, so the final
    response the service class sends after the handler finishes always comes last.

    Parameters
    ----------
    event : pynetdicom.events.Event
        The EVT_C_FIND event being answered.
    status : int
        The pending status of every answer (0xFF00, or 0xFF01).
    """

    def __init__(self, event: evt.Event, status: int) -> None:
        self.assoc = event.assoc
        self.context_id = event.context.context_id
        self.command = find_response_command(
            str(event.request.AffectedSOPClassUID), cast(int, event.request.MessageID), status
        )
        self.max_pdu_length = int(self.assoc.dimse.maximum_pdu_size or 0)

    def send(self, identifier: bytes) -> bool:
        """Queue one pending response; ``False`` once the association has ended."""
        dul = self.assoc.dul
        while dul.to_provider_queue.qsize() > _QUEUE_HIGH_WATER:
            # The peer reads slower than rows are encoded: keep memory bounded.
            if not self._open():
                return False
            time.sleep(0.001)
        if not self._open():
            return False
        for pdvs in frame_message(self.context_id, self.command, identifier, self.max_pdu_length):
            primitive = P_DATA()
            primitive.presentation_data_value_list = pdvs  # type: ignore[assignment]
            dul.send_pdu(primitive)
        return True

    def _open(self) -> bool:
        """Whether answers can still reach the peer.

        The association's own flag is cleared by its reactor, which is the thread
        sending these answers; a transport that failed under the DUL (a peer that stopped
        reading, cut at the idle deadline) shows in the DUL's state instead.
        """
        dul = self.assoc.dul
        return (
            self.assoc.is_established
            and dul.is_alive()
            and dul.state_machine.current_state not in _ENDED_STATES
        )
