"""Requested Procedure and Scheduled Protocol Code Sequences on the worklist.

Answered and matched as PS3.4 Table K.6-1 and C.2.2.2.6 (sequence matching) describe,
checked with a pynetdicom SCU and with DCMTK's ``findscu``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from clinic.server import ClinicServer
from tests.support.findscu import findscu
from tests.support.mwl import associate, find

TODAY = dt.date.today()
CHEST = {"value": "36643-5", "scheme": "LN", "meaning": "XR Chest 2V"}
PROTOCOL = {"value": "P-CH2", "scheme": "99CLINIC", "meaning": "Chest PA+LAT"}
PANO = {"value": "PX1", "scheme": "99CLINIC", "meaning": "Panoramic"}


@pytest.fixture
def coded(server: ClinicServer) -> ClinicServer:
    scheduler = server.scheduler
    assert scheduler is not None
    for accession, codes in (
        ("C1", {"procedure_code": CHEST, "protocol_code": PROTOCOL}),
        ("C2", {"procedure_code": PANO}),
        ("C3", {}),
    ):
        scheduler.book(
            {
                "accession_number": accession,
                "patient_id": f"P{accession}",
                "patient_name": f"CODE^{accession}",
                "modality": "CR",
                "station_ae_title": "XRAY1",
                "scheduled_start": f"{TODAY.isoformat()}T09:00",
                **codes,
            },
            actor="test",
        )
    return server


def code_item(**values: str) -> Dataset:
    item = Dataset()
    for keyword in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"):
        setattr(item, keyword, values.get(keyword, ""))
    return item


def request(
    procedure: list[Dataset] | None = None, protocol: list[Dataset] | None = None
) -> Dataset:
    ds = Dataset()
    ds.AccessionNumber = ""
    ds.RequestedProcedureCodeSequence = procedure if procedure is not None else []
    sps = Dataset()
    sps.Modality = ""
    sps.ScheduledProtocolCodeSequence = protocol if protocol is not None else []
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def run(server: ClinicServer, ds: Dataset) -> tuple[dict[str, Dataset], set[int]]:
    assoc = associate(server)
    try:
        statuses: set[int] = set()
        answers = []
        for status, identifier in assoc.send_c_find(ds, "1.2.840.10008.5.1.4.31"):
            if identifier is not None:
                statuses.add(int(status.Status))
                answers.append(identifier)
        return {str(a.AccessionNumber): a for a in answers}, statuses
    finally:
        assoc.release()


def as_dict(item: Dataset) -> dict[str, str]:
    return {
        "value": item.CodeValue,
        "scheme": item.CodingSchemeDesignator,
        "meaning": item.CodeMeaning,
    }


def test_answers_carry_both_code_sequences(coded: ClinicServer) -> None:
    """Table K.6-1: Requested Procedure Code Sequence and Scheduled Protocol Code Sequence."""
    answers, statuses = run(coded, request())
    assert set(answers) == {"C1", "C2", "C3"}
    assert statuses == {0xFF00}  # both are supported: no warning
    assert as_dict(answers["C1"].RequestedProcedureCodeSequence[0]) == CHEST
    sps = answers["C1"].ScheduledProcedureStepSequence[0]
    assert as_dict(sps.ScheduledProtocolCodeSequence[0]) == PROTOCOL
    assert as_dict(answers["C2"].RequestedProcedureCodeSequence[0]) == PANO
    assert len(answers["C2"].ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence) == 0
    # No code: the sequence is present and empty (zero items).
    assert "RequestedProcedureCodeSequence" in answers["C3"]
    assert len(answers["C3"].RequestedProcedureCodeSequence) == 0


def test_an_item_of_empty_keys_returns_just_those(coded: ClinicServer) -> None:
    asked = Dataset()
    asked.CodeValue = ""
    answers, _ = run(coded, request(procedure=[asked]))
    item = answers["C1"].RequestedProcedureCodeSequence[0]
    assert item.CodeValue == "36643-5"
    assert "CodeMeaning" not in item and "CodingSchemeDesignator" not in item


@pytest.mark.parametrize(
    ("procedure", "protocol", "expected"),
    [
        # C.2.2.2.6: every valued key of the item must match; code value with its scheme.
        ({"CodeValue": "36643-5", "CodingSchemeDesignator": "LN"}, None, {"C1"}),
        ({"CodeValue": "36643-5", "CodingSchemeDesignator": "SCT"}, None, set()),
        ({"CodeValue": "PX1"}, None, {"C2"}),
        ({"CodingSchemeDesignator": "99CLINIC"}, None, {"C2"}),
        ({"CodeValue": "*-5"}, None, {"C1"}),
        ({"CodeValue": "*"}, None, {"C1", "C2", "C3"}),  # universal: entries without code too
        (None, {"CodeValue": "P-CH2", "CodingSchemeDesignator": "99CLINIC"}, {"C1"}),
        (None, {"CodeValue": "P-CH3"}, set()),
    ],
)
def test_sequence_matching_on_codes(
    coded: ClinicServer,
    procedure: dict[str, str] | None,
    protocol: dict[str, str] | None,
    expected: set[str],
) -> None:
    ds = request(
        procedure=[code_item(**procedure)] if procedure else None,
        protocol=[code_item(**protocol)] if protocol else None,
    )
    answers, statuses = run(coded, ds)
    assert set(answers) == expected
    assert statuses <= {0xFF00}


def test_empty_sps_item_includes_the_protocol_code(coded: ClinicServer) -> None:
    ds = Dataset()
    ds.AccessionNumber = "C1"
    ds.ScheduledProcedureStepSequence = [Dataset()]
    assoc = associate(coded)
    try:
        answers, _ = find(assoc, ds)
    finally:
        assoc.release()
    sps = answers[0].ScheduledProcedureStepSequence[0]
    assert as_dict(sps.ScheduledProtocolCodeSequence[0]) == PROTOCOL


def test_two_items_are_refused(coded: ClinicServer) -> None:
    assoc = associate(coded)
    try:
        *_, (final, _) = list(
            assoc.send_c_find(
                request(procedure=[code_item(), code_item()]), "1.2.840.10008.5.1.4.31"
            )
        )
    finally:
        assoc.release()
    assert final.Status == 0xA900


def test_findscu_selects_by_code(coded: ClinicServer, tmp_path: Path) -> None:
    keys: list[str | bytes] = [
        "AccessionNumber",
        "RequestedProcedureCodeSequence[0].CodeValue=36643-5",
        "RequestedProcedureCodeSequence[0].CodingSchemeDesignator=LN",
        "RequestedProcedureCodeSequence[0].CodeMeaning",
        "ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0].CodeValue",
        "ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0].CodeMeaning",
    ]
    answers, result = findscu(coded, tmp_path / "codes", keys)
    assert [a.AccessionNumber for a in answers] == ["C1"]
    code: Any = answers[0].RequestedProcedureCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "36643-5",
        "LN",
        "XR Chest 2V",
    )
    protocol = answers[0].ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0]
    assert (protocol.CodeValue, protocol.CodeMeaning) == ("P-CH2", "Chest PA+LAT")
    assert b"Error" not in result.stderr
