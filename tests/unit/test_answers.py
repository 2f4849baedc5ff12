"""The worklist's own answer encoder and framing, checked against pydicom and pynetdicom.

The encoder must write byte for byte what pydicom writes for the reference response
(``build_response``), for every transfer syntax, character set and request shape; the
command set and its PDVs must be what pynetdicom would send.
"""

from __future__ import annotations

import datetime as dt
import warnings
from io import BytesIO
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import decode
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from clinic.dicom.pending import find_response_command, frame_message
from clinic.store.models import ProcedureStatus
from clinic.worklist.answers import SYNTAXES, AnswerPlan, reference_encode
from clinic.worklist.charsets import SIMPLE_CODECS, transliterator
from clinic.worklist.matching import MatchOptions, Row, build_response, parse_identifier
from clinic.worklist.scp import to_latin1


def request(shape: str) -> Dataset:
    """A few request shapes a modality sends (and some it should not)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, "")
    ds.AccessionNumber = ""
    ds.StudyInstanceUID = ""
    ds.RequestedProcedureDescription = ""
    ds.ReferringPhysicianName = ""
    item = Dataset()
    if shape == "typical":
        for keyword in (
            "ScheduledStationAETitle",
            "ScheduledProcedureStepStartDate",
            "ScheduledProcedureStepStartTime",
            "Modality",
            "ScheduledPerformingPhysicianName",
            "ScheduledProcedureStepDescription",
            "ScheduledProcedureStepID",
            "CommentsOnTheScheduledProcedureStep",
        ):
            setattr(item, keyword, "")
    elif shape == "odd":
        # Keys clinic does not serve are answered empty, in the VR they came with.
        ds.PatientWeight = ""
        ds.IssuerOfPatientID = ""
        ds.ReferencedStudySequence = []
        ds.add_new(0x00091010, "LO", None)  # private, no creator
        item.ScheduledStationName = ""
        item.ScheduledProcedureStepLocation = ""
        item.ScheduledProcedureStepStatus = ""
        item.ScheduledProtocolCodeSequence = []
        ds.TimezoneOffsetFromUTC = ""
        ds.RequestedProcedureCodeSequence = []
    elif shape == "codes":
        # Code sequences asking for some of their attributes, and one unknown to clinic.
        code = Dataset()
        code.CodeValue = ""
        code.CodeMeaning = ""
        code.CodingSchemeVersion = ""
        ds.RequestedProcedureCodeSequence = [code]
        protocol = Dataset()
        protocol.CodingSchemeDesignator = ""
        protocol.CodeValue = ""
        item.ScheduledProtocolCodeSequence = [protocol]
        item.Modality = ""
        ds.TimezoneOffsetFromUTC = ""
    # shape "everything": an empty item asks for every SPS attribute
    ds.ScheduledProcedureStepSequence = [item]
    return ds


SHAPES = ["typical", "odd", "codes", "everything"]

text = st.text(
    alphabet=st.sampled_from("abcXYZ019 ^=\\-.ÄäØøßÅŠšřčŘ€日本語ИванΓιώργοςשרוןทองġ"),
    min_size=0,
    max_size=40,
)
ascii_text = st.text(alphabet=st.sampled_from("ABCXYZ0129 ._-"), min_size=0, max_size=16)


@st.composite
def rows(draw: st.DrawFn) -> Row:
    """A matched booking with arbitrary text where text is free, ASCII where it is not."""
    patient = SimpleNamespace(
        name=draw(text),
        patient_id=draw(ascii_text),
        birth_date=draw(st.none() | st.dates(dt.date(1900, 1, 1), dt.date(2030, 1, 1))),
        sex=draw(st.sampled_from(["", "M", "F", "O", None])),
    )
    procedure = SimpleNamespace(
        patient=patient,
        accession_number=draw(ascii_text),
        requested_procedure_id=draw(ascii_text),
        study_instance_uid=draw(st.sampled_from(["1.2.3", "1.2.840.10008.1", "2.25.7"])),
        procedure_description=draw(text),
        referring_physician=draw(text),
        performing_physician=draw(text),
        priority=draw(st.sampled_from(["", "ROUTINE", "STAT"])),
        station_ae_title=draw(st.sampled_from(["XRAY1", "US 1", "PANO"])),
        scheduled_start=draw(st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2040, 1, 1))),
        modality=draw(st.sampled_from(["CR", "US", "IO", "PX"])),
        step_id=draw(ascii_text),
        status=draw(st.sampled_from([ProcedureStatus.SCHEDULED, ProcedureStatus.IN_PROGRESS])),
        notes=draw(st.none() | text),
    )
    for prefix in ("procedure", "protocol"):
        # A code, or none (empty value).
        setattr(procedure, f"{prefix}_code_value", draw(st.sampled_from(["", "RPID5", "36643-5"])))
        setattr(procedure, f"{prefix}_code_scheme", draw(st.sampled_from(["", "LN", "99CLINIC"])))
        setattr(procedure, f"{prefix}_code_meaning", draw(text))
    station = draw(
        st.none() | st.builds(SimpleNamespace, name=ascii_text, location=st.none() | text)
    )
    return Row(procedure, station)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(
    row=rows(),
    shape=st.sampled_from(SHAPES),
    syntax=st.sampled_from(sorted(SYNTAXES)),
    charset=st.sampled_from(sorted(SIMPLE_CODECS)),
)
def test_encoder_writes_what_pydicom_writes(
    row: Row, shape: str, syntax: str, charset: str
) -> None:
    """Every set the plan writes (single-byte sets, UTF-8, GB18030, GBK) as pydicom does."""
    query = parse_identifier(request(shape), MatchOptions())
    transform = to_latin1 if charset == "ISO_IR 100" else transliterator(charset)
    plan = AnswerPlan.compile(query, charset, syntax, transform)
    assert plan is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of values longer than their VR allows
        expected = reference_encode(build_response(query, row, charset, transform), syntax)
    assert plan.encode(row) == expected


def test_unknown_character_set_or_syntax_is_left_to_pydicom() -> None:
    query = parse_identifier(request("typical"), MatchOptions())
    assert AnswerPlan.compile(query, "ISO_IR 192", "1.2.840.10008.1.2.4.50") is None
    assert AnswerPlan.compile(query, "ISO 2022 IR 87", "1.2.840.10008.1.2") is None


def pynetdicom_pdvs(
    message_id: int, status: int, dataset: bytes, max_pdu: int
) -> list[tuple[int, bytes]]:
    """The PDVs pynetdicom itself sends for one C-FIND-RSP."""
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = ModalityWorklistInformationFind
    primitive.Status = status
    primitive.Identifier = BytesIO(dataset)
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    return [
        (pdv[0], pdv[1])
        for pdata in message.encode_msg(1, max_pdu)
        for pdv in pdata.presentation_data_value_list
    ]


@pytest.mark.parametrize("status", [0xFF00, 0xFF01])
@pytest.mark.parametrize("message_id", [1, 7, 65535])
def test_command_set_is_pynetdicoms(message_id: int, status: int) -> None:
    command = find_response_command(ModalityWorklistInformationFind, message_id, status)
    assert command == pynetdicom_pdvs(message_id, status, b"xx", 0)[0][1][1:]
    decoded = decode(BytesIO(command), True, True)
    assert decoded.CommandField == 0x8020
    assert decoded.MessageIDBeingRespondedTo == message_id
    assert decoded.Status == status
    assert decoded.CommandDataSetType != 0x0101  # a data set follows


@pytest.mark.parametrize("max_pdu", [0, 64, 100, 4096, 16382])
@pytest.mark.parametrize("size", [2, 90, 5000])
def test_framing_under_the_peers_maximum_pdu(max_pdu: int, size: int) -> None:
    command = find_response_command(ModalityWorklistInformationFind, 3, 0xFF00)
    dataset = bytes(range(256)) * (size // 256) + b"\x01" * (size % 256)
    pdus = frame_message(1, command, dataset, max_pdu)
    pdvs: list[Any] = [pdv for pdu in pdus for pdv in pdu]
    # The same PDVs pynetdicom sends, in the same order...
    assert [(c, bytes(d)) for c, d in pdvs] == pynetdicom_pdvs(3, 0xFF00, dataset, max_pdu)
    # ...and each PDU (PDV items: 4-byte length, context ID, data) fits the peer's limit.
    for pdu in pdus:
        assert max_pdu == 0 or sum(6 + len(d) - 1 for _, d in pdu) <= max_pdu
    if max_pdu == 0 or 12 + len(command) + len(dataset) <= max_pdu:
        assert len(pdus) == 1  # command and data set in one PDU
