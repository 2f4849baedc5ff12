"""Hypothesis strategies for hostile DICOM datasets, encoded as a peer would send them.

Datasets are written byte by byte in Explicit VR Little Endian, so the fuzzers can
send what pydicom itself would refuse to build: wrong VRs, odd lengths, garbage
values, sequences nested deeper than any modality would go.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pynetdicom import association as scu_association
from pynetdicom.dsutils import decode

#: VRs with a 4-byte length field in Explicit VR (PS3.5 Table 7.1-1).
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
VRS = sorted(
    LONG_VRS
    | {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH"}
    | {"SL", "SS", "ST", "TM", "UI", "UL", "US"}
)

#: Text a peer may send: dates, times, ranges, wildcards, traversal, control bytes.
NASTY_TEXT = [
    b"",
    b"*",
    b"?",
    b"-",
    b"20261126",
    b"20261126-20261127",
    b"20261301",
    b"99999999",
    b"2026-11-26",
    b"0930-1030",
    b"2560",
    b"093000.123456789",
    b"../../etc/passwd",
    b"..\\..\\windows",
    b"%_\\*",
    b"\x00\x01\xff\xfe",
    b"\x1b%G\xc3\xa9",
    b"A" * 70,
    b"1.2.840.10008.5.1.4.31",
    b"1..2",
    b"\\\\\\",
    b"M\\F\\O",
]


def element(tag: int, vr: str, value: bytes) -> bytes:
    """One data element in Explicit VR Little Endian (value padded to even length)."""
    if len(value) % 2:
        value += b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
    if vr in LONG_VRS:
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value) & 0xFFFF) + value[:0xFFFF]


def item(body: bytes) -> bytes:
    """One sequence item of defined length."""
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


def sequence(tag: int, items: list[bytes]) -> bytes:
    """A sequence element of defined length holding ``items`` (already encoded)."""
    return element(tag, "SQ", b"".join(item(i) for i in items))


def nested(tag: int, depth: int) -> bytes:
    """``depth`` sequences, each the only element of the item above."""
    body = b""
    for _ in range(depth):
        body = sequence(tag, [body])
    return body


def decode_le(data: bytes) -> Dataset:
    """Decode as pynetdicom decodes a received dataset (Explicit VR Little Endian)."""
    return decode(BytesIO(data), False, True)


def tags(*keywords: str) -> list[int]:
    """The tags of ``keywords``."""
    found = [tag_for_keyword(k) for k in keywords]
    return [t for t in found if t is not None]


def values() -> st.SearchStrategy[bytes]:
    """Attribute values: the nasty list, random text and random bytes."""
    return st.one_of(
        st.sampled_from(NASTY_TEXT),
        st.text(max_size=24).map(lambda t: t.encode("utf-8")),
        st.binary(max_size=24),
    )


@st.composite
def datasets(
    draw: st.DrawFn,
    keys: list[int],
    sequence_keys: list[int],
    item_keys: list[int],
    max_depth: int = 3,
) -> bytes:
    """An encoded dataset over ``keys``; ``sequence_keys`` hold items over ``item_keys``.

    Each attribute gets its usual VR most of the time and a random one otherwise.
    """
    from pydicom.datadict import dictionary_VR

    chosen = draw(st.lists(st.sampled_from(keys + sequence_keys), unique=True, max_size=10))
    parts = []
    for tag in sorted(chosen):
        if tag in sequence_keys and draw(st.integers(0, 3)):
            count = draw(st.integers(0, 2))
            bodies = []
            for _ in range(count):
                if max_depth > 0 and draw(st.booleans()):
                    bodies.append(
                        draw(datasets(item_keys, sequence_keys, item_keys, max_depth - 1))
                    )
                else:
                    bodies.append(b"")
            parts.append(sequence(tag, bodies))
            continue
        usual = dictionary_VR(tag).split(" or ")[0]
        vr = draw(st.sampled_from([usual, usual, usual, *VRS]))
        if vr == "SQ":
            parts.append(sequence(tag, [b""]))
        else:
            parts.append(element(tag, vr, draw(values())))
    return b"".join(parts)


def fuzz_settings(examples: int, deadline_ms: int | None = 3000) -> settings:
    """Bounded hypothesis settings; ``CLINIC_FUZZ_SCALE=20`` runs 20 times more examples.

    CI keeps the default scale, so each fuzz test takes seconds. ``deadline_ms=None``
    (tests over sockets) leaves each example's time to the listeners' own timeouts.
    """
    scale = float(os.environ.get("CLINIC_FUZZ_SCALE", "1"))
    return settings(
        max_examples=max(1, int(examples * scale)),
        deadline=deadline_ms,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@contextlib.contextmanager
def sending_raw(data: bytes) -> Iterator[None]:
    """Make a pynetdicom SCU send ``data`` as its next datasets, byte for byte.

    pynetdicom refuses to encode what these tests need to send (values that do not fit
    their VR); the bytes go out as they are, on an Explicit VR Little Endian context.
    """

    def raw(*_args: Any, **_kwargs: Any) -> bytes:
        return data

    namespace = vars(scu_association)  # the name pynetdicom's send_* methods call
    original = namespace["encode"]
    namespace["encode"] = raw
    try:
        yield
    finally:
        namespace["encode"] = original
