"""MPPS N-CREATE requests as a modality sends them, and hostile mutations of them."""

from __future__ import annotations

import struct

from hypothesis import strategies as st
from pydicom.uid import generate_uid

from tests.support.dicom_bytes import VRS, element, nested, sequence, tags, values

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SSAS = tags("ScheduledStepAttributesSequence")[0]
SERIES = tags("PerformedSeriesSequence")[0]
REFUSALS = (0x0106, 0x0110, 0x0111, 0x0112, 0x0117, 0x0120, 0x0121)


def create_attrs() -> dict[str, tuple[str, bytes]]:
    """An N-CREATE as a modality sends it (without its sequences)."""
    return {
        "PerformedProcedureStepStatus": ("CS", b"IN PROGRESS "),
        "PerformedStationAETitle": ("AE", b"XRAY1 "),
        "PerformedProcedureStepStartDate": ("DA", b"20261126"),
        "PerformedProcedureStepStartTime": ("TM", b"093000"),
        "PerformedProcedureStepEndDate": ("DA", b""),
        "PerformedProcedureStepEndTime": ("TM", b""),
        "PerformedProcedureStepID": ("SH", b"PPS1"),
        "Modality": ("CS", b"CR"),
        "PatientID": ("LO", b"P1"),
        "PatientName": ("PN", b"DOE^JANE"),
    }


def encode(attrs: dict[str, tuple[str, bytes]], extra: bytes = b"") -> bytes:
    """Encode keyword -> (VR, value) plus already encoded elements, in tag order."""
    parts = [(tags(k)[0], element(tags(k)[0], vr, v)) for k, (vr, v) in attrs.items()]
    if extra:
        group, number = struct.unpack("<HH", extra[:4])
        parts.append((group << 16 | number, extra))
    return b"".join(p for _, p in sorted(parts))


def reference(study_uid: bytes = STUDY_UID.encode()) -> bytes:
    """A Scheduled Step Attributes Sequence naming the booking."""
    item = b"".join(
        element(t, vr, v)
        for t, vr, v in sorted(
            [
                (tags("StudyInstanceUID")[0], "UI", study_uid),
                (tags("AccessionNumber")[0], "SH", b"ACC1"),
            ]
        )
    )
    return sequence(SSAS, [item])


@st.composite
def mutated(draw: st.DrawFn, attrs: dict[str, tuple[str, bytes]]) -> dict[str, tuple[str, bytes]]:
    """``attrs`` with a few attributes dropped, given another VR or a garbage value."""
    attrs = dict(attrs)
    for _ in range(draw(st.integers(0, 3))):
        keyword = draw(st.sampled_from(sorted(attrs)))
        how = draw(st.sampled_from(["drop", "vr", "value"]))
        vr, value = attrs[keyword]
        if how == "drop":
            del attrs[keyword]
        elif how == "vr":
            attrs[keyword] = (draw(st.sampled_from([v for v in VRS if v != "SQ"])), value)
        else:
            attrs[keyword] = (vr, draw(values()))
    return attrs


@st.composite
def create_requests(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """An N-CREATE attribute list and the instance UID the SCU chose (or None)."""
    attrs = draw(mutated(create_attrs()))
    ssas = draw(
        st.one_of(
            st.just(reference()),
            st.builds(reference, values()),
            st.just(sequence(SSAS, [])),
            st.just(nested(SSAS, 30)),
            st.just(element(SSAS, "LO", b"x")),
            st.just(b""),
        )
    )
    uid = draw(
        st.one_of(
            st.none(),
            st.just(str(generate_uid())),
            st.sampled_from(["../../etc/passwd", "1.2.3.", "1." + "9" * 70, "01.2", "abc"]),
        )
    )
    return encode(attrs, ssas), uid
