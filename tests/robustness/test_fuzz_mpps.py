"""Fuzzing MPPS N-CREATE and N-SET: each request is stored whole or refused, changing nothing.

Requests start as a modality sends them and are mutated (attributes dropped, VRs
swapped, garbage dates and times, nested sequences, traversal UIDs); the real
handlers run against a real SQLite store, which must not change on a refusal.
"""

from __future__ import annotations

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
from tests.support.dicom_bytes import (
    decode_le,
    element,
    fuzz_settings,
    nested,
    sequence,
    tags,
)
from tests.support.mpps_bytes import (
    REFUSALS,
    SERIES,
    SSAS,
    STUDY_UID,
    create_attrs,
    create_requests,
    encode,
    mutated,
    reference,
)

FUZZ = fuzz_settings(120)


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
