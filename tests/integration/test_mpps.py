"""MPPS through a pynetdicom SCU against the real listener: the life cycle and bad requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
)
from sqlalchemy import func, select

from clinic.domain.performed import PerformedSteps
from clinic.server import ClinicServer
from clinic.store.models import AuditEntry, PerformedStep, Procedure
from tests.support.mpps import BOOKING, booking_status, create_dataset, final_dataset, n_create


@pytest.fixture
def assoc(server: ClinicServer) -> Iterator[Association]:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.add_requested_context(ModalityWorklistInformationFind)
    association = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert association.is_established
    yield association
    if association.is_established:
        association.release()


def step_count(server: ClinicServer) -> int:
    assert server.session_factory is not None
    with server.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(PerformedStep)) or 0)


def worklist_accessions(assoc: Association) -> list[str]:
    query = Dataset()
    query.AccessionNumber = ""
    item = Dataset()
    item.ScheduledStationAETitle = "XRAY1"
    item.ScheduledProcedureStepStatus = ""
    query.ScheduledProcedureStepSequence = [item]
    return [
        f"{ds.AccessionNumber}:{ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus}"
        for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind)
        if status.Status in (0xFF00, 0xFF01)
    ]


def n_set(assoc: Association, ds: Dataset, uid: str) -> int:
    status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
    return int(status.Status)


@pytest.fixture
def booked(server: ClinicServer) -> ClinicServer:
    assert server.scheduler is not None
    server.scheduler.book(BOOKING, actor="test")
    return server


def test_in_progress_then_completed(booked: ClinicServer, assoc: Association) -> None:
    assert worklist_accessions(assoc) == ["MPPSACC1:SCHEDULED"]
    uid = str(generate_uid())
    assert n_create(assoc, create_dataset(), uid) == 0x0000
    assert booking_status(booked) == "IN_PROGRESS"
    assert worklist_accessions(assoc) == ["MPPSACC1:STARTED"]

    assert n_set(assoc, final_dataset("COMPLETED"), uid) == 0x0000
    assert booking_status(booked) == "COMPLETED"
    assert worklist_accessions(assoc) == []

    assert booked.session_factory is not None
    with booked.session_factory() as session:
        step = session.scalar(select(PerformedStep).where(PerformedStep.sop_instance_uid == uid))
        assert step is not None
        assert step.status == "COMPLETED"
        assert step.ended_at is not None and step.ended_at.strftime("%H%M") == "0930"
        assert '"images": 1' in step.performed_series
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == "mpps:XRAY1")
        ).all()
    assert actions.count("status") == 2  # SCHEDULED -> IN_PROGRESS -> COMPLETED
    assert "create" in actions and "update" in actions


def test_in_progress_then_discontinued(booked: ClinicServer, assoc: Association) -> None:
    uid = str(generate_uid())
    assert n_create(assoc, create_dataset(), uid) == 0x0000
    discontinued = final_dataset("DISCONTINUED")
    del discontinued.PerformedSeriesSequence  # not required when discontinued
    assert n_set(assoc, discontinued, uid) == 0x0000
    assert booking_status(booked) == "DISCONTINUED"
    assert worklist_accessions(assoc) == []


def test_scp_assigns_the_instance_uid(booked: ClinicServer) -> None:
    seen: list[str] = []

    def on_receive(event: evt.Event) -> None:
        uid = getattr(event.message.command_set, "AffectedSOPInstanceUID", None)
        if uid:
            seen.append(str(uid))

    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate(
        "127.0.0.1",
        booked.mwl_port,
        ae_title="CLINIC",
        evt_handlers=[(evt.EVT_DIMSE_RECV, on_receive)],
    )
    status, _ = assoc.send_n_create(create_dataset(), ModalityPerformedProcedureStep, None)
    assert status.Status == 0x0000
    assert len(seen) == 1
    assert n_set(assoc, final_dataset(), seen[0]) == 0x0000
    assoc.release()
    assert booking_status(booked) == "COMPLETED"


def test_unscheduled_step_is_kept_and_can_be_attached(
    booked: ClinicServer, assoc: Association
) -> None:
    ds = create_dataset()
    ref = ds.ScheduledStepAttributesSequence[0]
    ref.StudyInstanceUID = "1.2.3.999"
    ref.AccessionNumber = ""
    ref.RequestedProcedureID = ""
    ref.ScheduledProcedureStepID = ""
    uid = str(generate_uid())
    assert n_create(assoc, ds, uid) == 0x0000
    assert booking_status(booked) == "SCHEDULED"
    assert booked.session_factory is not None
    steps = PerformedSteps(booked.session_factory)
    unlinked = steps.unlinked()
    assert [s.sop_instance_uid for s in unlinked] == [uid]
    with booked.session_factory() as session:
        proc_id = session.scalar(select(Procedure.id))
    assert proc_id is not None
    steps.attach(unlinked[0].id, proc_id, actor="frontdesk:anna")
    assert booking_status(booked) == "IN_PROGRESS"
    assert steps.unlinked() == []
    assert n_set(assoc, final_dataset(), uid) == 0x0000
    assert booking_status(booked) == "COMPLETED"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"PerformedStationAETitle": None}, 0x0120),  # Type 1 missing
        ({"PerformedProcedureStepID": None}, 0x0120),
        ({"ScheduledStepAttributesSequence": None}, 0x0120),
        ({"Modality": ""}, 0x0121),  # Type 1 without a value
        ({"ScheduledStepAttributesSequence": []}, 0x0121),
        ({"PerformedProcedureStepStatus": "STARTED"}, 0x0106),  # not a defined term
        ({"PerformedProcedureStepStatus": "COMPLETED"}, 0x0106),  # must start IN PROGRESS
        ({"PerformedProcedureStepStartDate": "2026XX01"}, 0x0106),
    ],
)
def test_bad_create_changes_nothing(
    booked: ClinicServer, assoc: Association, overrides: dict[str, Any], expected: int
) -> None:
    assert n_create(assoc, create_dataset(**overrides), str(generate_uid())) == expected
    assert booking_status(booked) == "SCHEDULED"
    assert step_count(booked) == 0


def test_duplicate_create_is_refused(booked: ClinicServer, assoc: Association) -> None:
    uid = str(generate_uid())
    assert n_create(assoc, create_dataset(), uid) == 0x0000
    assert n_create(assoc, create_dataset(), uid) == 0x0111
    assert step_count(booked) == 1


def test_bad_sets(booked: ClinicServer, assoc: Association) -> None:
    uid = str(generate_uid())
    assert n_set(assoc, final_dataset(), str(generate_uid())) == 0x0112  # unknown instance
    no_end = create_dataset(PerformedProcedureStepEndDate=None, PerformedProcedureStepEndTime=None)
    assert n_create(assoc, no_end, uid) == 0x0000
    # COMPLETED needs the end date and time, and the performed series
    assert n_set(assoc, final_dataset(PerformedProcedureStepEndTime=None), uid) == 0x0120
    assert n_set(assoc, final_dataset(PerformedProcedureStepEndDate=""), uid) == 0x0121
    assert n_set(assoc, final_dataset(PerformedSeriesSequence=[]), uid) == 0x0121
    assert n_set(assoc, final_dataset("FINISHED"), uid) == 0x0106
    assert booking_status(booked) == "IN_PROGRESS"
    assert n_set(assoc, final_dataset(), uid) == 0x0000
    # a finished step may no longer change
    assert n_set(assoc, final_dataset("DISCONTINUED"), uid) == 0x0110
    assert booking_status(booked) == "COMPLETED"


def test_cancelled_booking_is_not_reopened(booked: ClinicServer, assoc: Association) -> None:
    assert booked.scheduler is not None
    proc = booked.scheduler.list_procedures()[0]
    booked.scheduler.cancel(proc.id, "patient did not come", actor="test")
    assert n_create(assoc, create_dataset(), str(generate_uid())) == 0x0000
    assert booking_status(booked) == "CANCELLED"


# -- linking as real modalities send, and the wrong worklist entry ---------------------------


def step_row(server: ClinicServer, uid: str) -> PerformedStep:
    assert server.session_factory is not None
    with server.session_factory() as session:
        step = session.scalar(select(PerformedStep).where(PerformedStep.sop_instance_uid == uid))
    assert step is not None
    return step


def own_study(**keys: str) -> Dataset:
    """An N-CREATE from a modality that makes its own Study Instance UID."""
    ds = create_dataset()
    ref = ds.ScheduledStepAttributesSequence[0]
    ref.StudyInstanceUID = generate_uid()
    for keyword, value in keys.items():
        setattr(ref, keyword, value)
    return ds


@pytest.mark.parametrize(
    "keys",
    [
        {},  # SPS ID, Requested Procedure ID and accession as the worklist gave them
        {"RequestedProcedureID": "", "AccessionNumber": ""},  # SPS ID alone
        {"ScheduledProcedureStepID": "", "RequestedProcedureID": ""},  # accession alone
    ],
    ids=["sps-and-rp", "sps-only", "accession-only"],
)
def test_a_modality_with_its_own_study_uid_is_linked(
    booked: ClinicServer, assoc: Association, keys: dict[str, str]
) -> None:
    ds = own_study(**keys)
    own_uid = str(ds.ScheduledStepAttributesSequence[0].StudyInstanceUID)
    uid = str(generate_uid())
    assert n_create(assoc, ds, uid) == 0x0000
    assert booking_status(booked) == "IN_PROGRESS"
    assert worklist_accessions(assoc) == ["MPPSACC1:STARTED"]
    step = step_row(booked, uid)
    assert step.study_instance_uid == own_uid  # the modality's own, kept with the step
    assert booked.session_factory is not None
    with booked.session_factory() as session:
        proc_id = session.scalar(select(Procedure.id))
    assert proc_id is not None
    [linked] = PerformedSteps(booked.session_factory).for_procedure(proc_id)
    assert linked.sop_instance_uid == uid
    assert n_set(assoc, final_dataset("COMPLETED"), uid) == 0x0000
    assert booking_status(booked) == "COMPLETED"


def test_a_wrong_step_id_falls_back_to_the_accession_number(
    booked: ClinicServer, assoc: Association
) -> None:
    ds = own_study(ScheduledProcedureStepID="MODALITY7", RequestedProcedureID="")
    assert n_create(assoc, ds, str(generate_uid())) == 0x0000
    assert booking_status(booked) == "IN_PROGRESS"


def test_a_step_id_used_twice_is_settled_by_the_accession_number(
    booked: ClinicServer, assoc: Association
) -> None:
    assert booked.scheduler is not None
    other = {
        **BOOKING,
        "patient_id": "MP2",
        "patient_name": "DRUHY^PETR",
        "accession_number": "MPPSACC2",
        "study_instance_uid": "1.2.826.0.1.3680043.10.543.78",
    }
    booked.scheduler.book(other, actor="test")  # same SPS ID and Requested Procedure ID
    ds = own_study(AccessionNumber="MPPSACC2")
    assert n_create(assoc, ds, str(generate_uid())) == 0x0000
    assert booking_status(booked, "MPPSACC2") == "IN_PROGRESS"
    assert booking_status(booked, "MPPSACC1") == "SCHEDULED"
    # Neither accession nor Study UID settles it: the step stays for the front desk.
    ds = own_study(AccessionNumber="")
    uid = str(generate_uid())
    assert n_create(assoc, ds, uid) == 0x0000
    assert booking_status(booked, "MPPSACC1") == "SCHEDULED"
    assert booked.session_factory is not None
    unlinked = PerformedSteps(booked.session_factory).unlinked()
    assert [s.sop_instance_uid for s in unlinked] == [uid]


def reason(code: str, meaning: str, scheme: str = "DCM") -> Dataset:
    item = Dataset()
    item.CodeValue = code
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def test_incorrect_worklist_entry_puts_the_booking_back_on_the_worklist(
    booked: ClinicServer, assoc: Association
) -> None:
    uid = str(generate_uid())
    assert n_create(assoc, create_dataset(), uid) == 0x0000
    assert worklist_accessions(assoc) == ["MPPSACC1:STARTED"]
    discontinued = final_dataset("DISCONTINUED")
    del discontinued.PerformedSeriesSequence
    discontinued.PerformedProcedureStepDiscontinuationReasonCodeSequence = [
        reason("110514", "Incorrect worklist entry selected")
    ]
    assert n_set(assoc, discontinued, uid) == 0x0000

    assert booking_status(booked) == "SCHEDULED"
    assert worklist_accessions(assoc) == ["MPPSACC1:SCHEDULED"]  # C-FIND finds it again
    step = step_row(booked, uid)
    assert step.status == "DISCONTINUED" and step.wrong_entry
    assert step.discontinuation_reason == "110514 (DCM) Incorrect worklist entry selected"
    assert booked.session_factory is not None
    with booked.session_factory() as session:
        proc_id = session.scalar(select(Procedure.id))
        moves = [
            (a.actor, a.detail)
            for a in session.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity == "procedure", AuditEntry.action == "status"
                )
            )
        ]
    assert [actor for actor, _ in moves] == ["mpps:XRAY1", "mpps:XRAY1"]
    assert '"status": ["IN_PROGRESS", "SCHEDULED"]' in moves[-1][1]
    assert "110514" in moves[-1][1]
    # The step is kept with the booking, marked, moving nothing any more.
    assert proc_id is not None
    [kept] = PerformedSteps(booked.session_factory).for_procedure(proc_id)
    assert kept.sop_instance_uid == uid and kept.wrong_entry

    # The radiographer picks the right entry for this patient later: it runs as usual.
    again = str(generate_uid())
    assert n_create(assoc, create_dataset(), again) == 0x0000
    assert booking_status(booked) == "IN_PROGRESS"
    assert n_set(assoc, final_dataset("COMPLETED"), again) == 0x0000
    assert booking_status(booked) == "COMPLETED"


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        ("110501", "Equipment failure"),
        ("110515", "Patient condition prevented continuing"),
        ("110502", "Incorrect procedure ordered"),
    ],
)
def test_other_discontinuation_reasons_discontinue_the_booking(
    booked: ClinicServer, assoc: Association, code: str, meaning: str
) -> None:
    uid = str(generate_uid())
    assert n_create(assoc, create_dataset(), uid) == 0x0000
    discontinued = final_dataset("DISCONTINUED")
    discontinued.PerformedProcedureStepDiscontinuationReasonCodeSequence = [reason(code, meaning)]
    assert n_set(assoc, discontinued, uid) == 0x0000
    assert booking_status(booked) == "DISCONTINUED"
    assert worklist_accessions(assoc) == []
    step = step_row(booked, uid)
    assert not step.wrong_entry and step.discontinuation_reason.startswith(code)


def test_110514_in_another_coding_scheme_is_not_a_wrong_entry(
    booked: ClinicServer, assoc: Association
) -> None:
    uid = str(generate_uid())
    assert n_create(assoc, create_dataset(), uid) == 0x0000
    discontinued = final_dataset("DISCONTINUED")
    discontinued.PerformedProcedureStepDiscontinuationReasonCodeSequence = [
        reason("110514", "local code", scheme="99LOCAL")
    ]
    assert n_set(assoc, discontinued, uid) == 0x0000
    assert booking_status(booked) == "DISCONTINUED"


def test_a_checked_in_booking_taken_by_mistake_returns_checked_in(
    booked: ClinicServer, assoc: Association
) -> None:
    assert booked.scheduler is not None and booked.session_factory is not None
    with booked.session_factory() as session:
        proc_id = session.scalar(select(Procedure.id))
    assert proc_id is not None
    booked.scheduler.arrive(proc_id, "web:desk")
    uid = str(generate_uid())
    assert n_create(assoc, create_dataset(), uid) == 0x0000
    assert booking_status(booked) == "IN_PROGRESS"
    discontinued = final_dataset("DISCONTINUED")
    discontinued.PerformedProcedureStepDiscontinuationReasonCodeSequence = [
        reason("110514", "Incorrect worklist entry selected")
    ]
    assert n_set(assoc, discontinued, uid) == 0x0000
    assert booking_status(booked) == "ARRIVED"  # the patient is still waiting
    assert worklist_accessions(assoc) == ["MPPSACC1:ARRIVED"]
