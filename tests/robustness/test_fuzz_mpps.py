"""Fuzzing MPPS N-CREATE and N-SET: each request is stored whole or refused, changing nothing.

Requests start as a modality sends them and are mutated (attributes dropped, VRs
swapped, garbage dates and times, nested sequences, traversal UIDs); the real
handlers run against a real SQLite store, which must not change on a refusal.
"""

from __future__ import annotations

import struct
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]
from sqlalchemy import func, select

from clinic.domain.bookings import Scheduler
from clinic.domain.performed import PerformedSteps
from clinic.store.models import AuditEntry, PerformedStep, Procedure
from clinic.worklist.mpps import MppsService
from tests.robustness.dicom_bytes import (
    VRS,
    decode_le,
    element,
    fuzz_settings,
    nested,
    sequence,
    tags,
    values,
)

FUZZ = fuzz_settings(120)
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SSAS = tags("ScheduledStepAttributesSequence")[0]
SERIES = tags("PerformedSeriesSequence")[0]
REFUSALS = (0x0106, 0x0110, 0x0111, 0x0112, 0x0117, 0x0120, 0x0121)


class _Event:
    """What the MPPS handlers read of a pynetdicom event; decoding is lazy, as there."""

    def __init__(self, data: bytes, uid: str | None, creating: bool) -> None:
        self.data = data
        if creating:
            self.request = SimpleNamespace(
                AffectedSOPClassUID=ModalityPerformedProcedureStep, AffectedSOPInstanceUID=uid
            )
        else:
            self.request = SimpleNamespace(
                RequestedSOPClassUID=ModalityPerformedProcedureStep, RequestedSOPInstanceUID=uid
            )
        self.assoc = SimpleNamespace(requestor=SimpleNamespace(ae_title="XRAY1"))

    @property
    def attribute_list(self) -> Dataset:
        return decode_le(self.data)

    modification_list = attribute_list


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


def store_state(scheduler: Scheduler) -> tuple[Any, ...]:
    """What a refused request must leave unchanged."""
    with scheduler.session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(PerformedStep)),
            session.scalar(select(func.count()).select_from(AuditEntry)),
            tuple(session.scalars(select(Procedure.status).order_by(Procedure.id))),
            tuple(session.execute(select(PerformedStep.status, PerformedStep.dataset_json))),
        )


def status_of(answer: Any) -> int:
    """The status a handler answered (an int or a status dataset)."""
    status = answer[0]
    return int(status) if isinstance(status, int) else int(status.Status)


@pytest.fixture
def mpps(scheduler: Scheduler) -> tuple[Scheduler, MppsService]:
    """The MPPS handlers on a store holding one booking."""
    scheduler.book(
        {
            "patient_id": "P1",
            "patient_name": "DOE^JANE",
            "modality": "CR",
            "station_ae_title": "XRAY1",
            "scheduled_start": "2026-11-26T09:30",
            "study_instance_uid": STUDY_UID,
            "accession_number": "ACC1",
        },
        actor="test",
    )
    return scheduler, MppsService(PerformedSteps(scheduler.session_factory))


def run(service: MppsService, data: bytes, uid: str | None, creating: bool) -> int:
    """Call the real handler; no exception may escape it."""
    event = _Event(data, uid, creating)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if creating:
            return status_of(service.handle_n_create(event))  # type: ignore[arg-type]
        return status_of(service.handle_n_set(event))  # type: ignore[arg-type]


@FUZZ
@given(request=create_requests())
@example(request=(encode(create_attrs(), reference()), "../../etc/passwd"))
@example(request=(encode(create_attrs(), nested(SSAS, 60)), None))
# Regression: a value of the wrong length for its VR escaped the handler (now 0x0106).
@example(request=(encode({**create_attrs(), "Modality": ("FD", b"CR")}, reference()), None))
@example(
    request=(
        encode({**create_attrs(), "PerformedProcedureStepStartTime": ("TM", b"2599")}, reference()),
        None,
    )
)
def test_n_create(mpps: tuple[Scheduler, MppsService], request: tuple[bytes, str | None]) -> None:
    scheduler, service = mpps
    data, uid = request
    before = store_state(scheduler)
    status = run(service, data, uid, creating=True)
    if status == 0:
        assert store_state(scheduler)[0] == before[0] + 1
    else:
        assert status in REFUSALS, hex(status)
        assert store_state(scheduler) == before


def set_attrs() -> dict[str, tuple[str, bytes]]:
    """An N-SET that completes a step."""
    return {
        "PerformedProcedureStepStatus": ("CS", b"COMPLETED "),
        "PerformedProcedureStepEndDate": ("DA", b"20261126"),
        "PerformedProcedureStepEndTime": ("TM", b"094500"),
        "PerformedProcedureStepDescription": ("LO", b"CHEST"),
    }


SERIES_ITEM = b"".join(
    element(t, vr, v)
    for t, vr, v in sorted(
        [
            (tags("SeriesInstanceUID")[0], "UI", b"1.2.3.4"),
            (tags("SeriesDescription")[0], "LO", b"PA"),
        ]
    )
)


@FUZZ
@given(
    attrs=mutated(set_attrs()),
    series=st.sampled_from(
        [sequence(SERIES, [SERIES_ITEM]), sequence(SERIES, []), nested(SERIES, 40), b""]
    ),
    uid=st.sampled_from(["own", "../../etc/passwd", ""]),
)
@example(
    attrs={**set_attrs(), "PerformedProcedureStepEndTime": ("FL", b"12")}, series=b"", uid="own"
)
@example(
    attrs={**set_attrs(), "PerformedProcedureStepEndDate": ("DA", b"20261399")},
    series=b"",
    uid="own",
)
def test_n_set(
    mpps: tuple[Scheduler, MppsService],
    attrs: dict[str, tuple[str, bytes]],
    series: bytes,
    uid: str,
) -> None:
    scheduler, service = mpps
    own = str(generate_uid())
    assert run(service, encode(create_attrs(), reference()), own, creating=True) == 0
    before = store_state(scheduler)
    status = run(service, encode(attrs, series), own if uid == "own" else uid, creating=False)
    if status != 0:
        assert status in REFUSALS, hex(status)
        assert store_state(scheduler) == before
