"""Basic Print Image Box N-SET requests, valid in shape and mutated in their details."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from tests.support.dicom_bytes import VRS, element, sequence, tags, values

GRAY_SEQ = tags("BasicGrayscaleImageSequence")[0]
COLOR_SEQ = tags("BasicColorImageSequence")[0]


def us(value: int) -> bytes:
    """An unsigned short value (wrapped into range)."""
    return struct.pack("<H", value & 0xFFFF)


def valid_item(rows: int, columns: int, color: bool) -> dict[str, tuple[str, bytes]]:
    """A good image item, keyword -> (VR, encoded value)."""
    samples = 3 if color else 1
    return {
        "SamplesPerPixel": ("US", us(samples)),
        "PhotometricInterpretation": ("CS", b"RGB" if color else b"MONOCHROME2 "),
        "PlanarConfiguration": ("US", us(0)),
        "Rows": ("US", us(rows)),
        "Columns": ("US", us(columns)),
        "PixelAspectRatio": ("IS", b"1\\1 "),
        "BitsAllocated": ("US", us(8)),
        "BitsStored": ("US", us(8)),
        "HighBit": ("US", us(7)),
        "PixelRepresentation": ("US", us(0)),
        "PixelData": ("OB", bytes(rows * columns * samples)),
    }


def encode(attrs: dict[str, tuple[str, bytes]]) -> bytes:
    """Encode keyword -> (VR, value) in tag order."""
    out = sorted((tags(k)[0], vr, v) for k, (vr, v) in attrs.items())
    return b"".join(element(t, vr, v) for t, vr, v in out)


@st.composite
def image_box_requests(draw: st.DrawFn, color: bool = False) -> bytes:
    """An Image Box N-SET modification list, valid in shape, mutated in its details."""
    rows = draw(st.integers(1, 40))
    columns = draw(st.integers(1, 40))
    item = valid_item(rows, columns, color)
    for _ in range(draw(st.integers(0, 4))):
        keyword = draw(st.sampled_from(sorted(item)))
        how = draw(st.sampled_from(["drop", "vr", "value", "number", "pixels"]))
        vr, value = item[keyword]
        if how == "drop":
            del item[keyword]
        elif how == "vr":
            item[keyword] = (draw(st.sampled_from([v for v in VRS if v != "SQ"])), value)
        elif how == "value":
            item[keyword] = (vr, draw(values()))
        elif how == "number" and vr == "US":
            item[keyword] = (vr, us(draw(st.sampled_from([0, 1, 3, 7, 8, 11, 12, 16, 65535]))))
        elif how == "pixels":
            size = draw(st.sampled_from([0, 1, rows * columns - 1, rows * columns * 2 + 1]))
            item[keyword] = (draw(st.sampled_from(["OB", "OW", "UN"])), bytes(size))
    top: dict[str, tuple[str, bytes]] = {"ImageBoxPosition": ("US", us(1))}
    if draw(st.booleans()):
        top["Polarity"] = ("CS", draw(st.sampled_from([b"NORMAL", b"REVERSE", b"x"])))
    if draw(st.booleans()):
        top["RequestedImageSize"] = ("DS", draw(st.sampled_from([b"50", b"-1", b"NaN", b"1e999"])))
    if draw(st.booleans()):
        top["RequestedDecimateCropBehavior"] = ("CS", draw(st.sampled_from([b"CROP", b"FAIL"])))
    if draw(st.booleans()):
        key = draw(st.sampled_from(["MinDensity", "MaxDensity", "MagnificationType"]))
        top[key] = (draw(st.sampled_from(["US", "CS", "DS"])), draw(values()))
    own = COLOR_SEQ if color else GRAY_SEQ
    count = draw(st.sampled_from([1, 1, 1, 0, 2]))
    return encode(top) + sequence(own, [encode(item)] * count)


# Regression: a value whose length does not fit its VR (Columns as a 2-byte UV) made
# pydicom raise inside the validation (0x0110); it is an invalid value (0x0106).
BAD_LENGTH = encode({"ImageBoxPosition": ("US", us(1))}) + sequence(
    GRAY_SEQ, [encode({**valid_item(4, 4, False), "Columns": ("UV", us(4))})]
)
