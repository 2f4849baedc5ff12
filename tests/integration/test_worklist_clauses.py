"""Worklist details the standard words precisely, each test naming its clause."""

from __future__ import annotations

import datetime as dt
import struct
import time

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
)

from clinic.server import ClinicServer
from tests.support.mpps import BOOKING, booking_status, create_dataset, n_create
from tests.support.mwl import (
    _send_raw_find,
    accessions,
    associate,
    book,
    find,
    mwl_query,
    query,
)

TODAY = dt.date.today()


@pytest.fixture
def two(server: ClinicServer) -> ClinicServer:
    book(server, "J1", patient_name="YAMADA^TARO=山田^太郎=やまだ^たろう", patient_id="PJ1")
    book(server, "J2", patient_name="SMITH^ANN", patient_id="PJ2")
    return server


def statuses(server: ClinicServer, ds: Dataset) -> set[int]:
    assoc = associate(server)
    try:
        got = {
            int(status.Status)
            for status, identifier in assoc.send_c_find(ds, ModalityWorklistInformationFind)
            if identifier is not None
        }
    finally:
        assoc.release()
    return got


def test_timezone_offset_is_never_zero_length(two: ClinicServer) -> None:
    """PS3.4 K.4.1.1.3.2: Timezone Offset From UTC, when requested, is answered with a value."""
    ds = mwl_query({"AccessionNumber": "J2", "TimezoneOffsetFromUTC": ""})
    answers, final = query(two, ds)
    assert final.Status == 0x0000
    offset = answers[0].TimezoneOffsetFromUTC
    start = dt.datetime.combine(TODAY, dt.time(9, 0)).astimezone()
    assert offset == start.strftime("%z")
    assert len(offset) == 5 and offset[0] in "+-"


def _unsupported_sequence(item: Dataset | None) -> Dataset:
    ds = mwl_query({"AccessionNumber": "J2"})
    ds.ReferencedStudySequence = [item] if item is not None else []
    return ds


def _item(**values: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = values.get("ReferencedSOPClassUID", "")
    item.ReferencedSOPInstanceUID = values.get("ReferencedSOPInstanceUID", "")
    return item


@pytest.mark.parametrize(
    ("ds", "expected"),
    [
        # K.2.2.1.2 Note 4 / C.2.2.2.6: a zero-length sequence, an empty item and an item
        # of empty keys all ask only for the attribute: pending 0xFF00, as an empty key does.
        (_unsupported_sequence(None), 0xFF00),
        (_unsupported_sequence(Dataset()), 0xFF00),
        (_unsupported_sequence(_item()), 0xFF00),
        (mwl_query({"AccessionNumber": "J2", "AdmissionID": ""}), 0xFF00),
        # A value clinic cannot match on: 0xFF01 (optional keys not supported).
        (_unsupported_sequence(_item(ReferencedSOPInstanceUID="1.2.3")), 0xFF01),
        (mwl_query({"AccessionNumber": "J2", "AdmissionID": "ADM7"}), 0xFF01),
    ],
    ids=[
        "zero-length sequence",
        "empty item",
        "item of empty keys",
        "empty key",
        "item with a value",
        "key with a value",
    ],
)
def test_unsupported_keys_empty_or_empty_item_alike(
    two: ClinicServer, ds: Dataset, expected: int
) -> None:
    assert statuses(two, ds) == {expected}


def _raw_name_query(name: bytes) -> bytes:
    """An identifier in ``\\ISO 2022 IR 87`` whose Patient's Name is ``name``, undecoded."""
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.AccessionNumber = ""
    head = encode(ds, True, True)
    assert head is not None
    if len(name) % 2:
        name += b" "
    element = struct.pack("<HHI", 0x0010, 0x0010, len(name)) + name
    # Elements in tag order: (0008,0005), (0008,0050), then (0010,0010).
    return head + element


def _raw_find(server: ClinicServer, raw: bytes) -> list[C_FIND]:
    """Send ``raw`` as a C-FIND identifier; return every response up to the final one."""
    assoc = associate(server, calling="JAPAN")
    try:
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            time.sleep(0.0001)
        responses: list[C_FIND] = []
        try:
            _send_raw_find(assoc, ModalityWorklistInformationFind, raw)
            while not responses or responses[-1].Status in (0xFF00, 0xFF01):
                _, rsp = assoc.dimse.get_msg(block=True)
                assert isinstance(rsp, C_FIND)
                responses.append(rsp)
        finally:
            assoc._reactor_checkpoint.set()
        # The association still serves a good query afterwards.
        good, final = find(assoc, mwl_query({"AccessionNumber": "J2"}))
        assert accessions(good) == ["J2"] and final.Status == 0x0000
        return responses
    finally:
        assoc.release()


def test_undecodable_iso2022_ir87_name_is_refused(two: ClinicServer) -> None:
    """PS3.4 K.4.1.1.4: a value that cannot be processed gets 0xC000, never "match all".

    The JIS X 0208 bytes after ESC $ B are not characters (0x7F is outside its rows).
    """
    (rsp,) = _raw_find(two, _raw_name_query(b"\x1b$B\x7f\x7f\x7f\x7f\x1b(B"))
    assert rsp.Status == 0xC000
    assert rsp.ErrorComment == "(0010,0010): value cannot be decoded"


def test_valid_iso2022_ir87_name_matches(two: ClinicServer) -> None:
    """The same query with real JIS X 0208 bytes (PS3.5 H.3.1) matches the name."""
    name = "YAMADA^TARO=山田^太郎=やまだ^たろう".encode("iso2022_jp")
    responses = _raw_find(two, _raw_name_query(name))
    assert [r.Status for r in responses] == [0xFF00, 0x0000]


@pytest.mark.parametrize(
    ("step_id", "accession", "study_uid", "linked"),
    [
        # SPS ID with Requested Procedure ID: the modality's own Study UID does not matter.
        ("SPS1", "", "1.2.3.999", True),
        # No SPS ID: the accession number, again whatever Study UID the modality made up.
        ("", "MPPSACC1", "1.2.3.999", True),
        # An SPS ID that is not ours: the accession number still finds the booking.
        ("OTHER", "MPPSACC1", "1.2.3.999", True),
        # Only the Study UID the worklist gave.
        ("", "", "1.2.826.0.1.3680043.10.543.77", True),
        ("", "", "1.2.3.999", False),
    ],
)
def test_mpps_links_by_step_then_accession_then_study(
    server: ClinicServer, step_id: str, accession: str, study_uid: str, linked: bool
) -> None:
    """PS3.4 F.7.2.1 / IHE RAD-6: the Scheduled Step Attributes name the booking.

    The conformance statement (6.1) gives the order: Scheduled Procedure Step ID
    (with Requested Procedure ID), else Accession Number, else Study Instance UID.
    """
    assert server.scheduler is not None
    server.scheduler.book(BOOKING, actor="test")
    ds = create_dataset()
    ref = ds.ScheduledStepAttributesSequence[0]
    ref.ScheduledProcedureStepID = step_id
    ref.AccessionNumber = accession
    ref.StudyInstanceUID = study_uid
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    mpps = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    try:
        assert n_create(mpps, ds, str(generate_uid())) == 0x0000
    finally:
        mpps.release()
    assert booking_status(server) == ("IN_PROGRESS" if linked else "SCHEDULED")
