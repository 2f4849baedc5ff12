"""Fuzzed datasets sent byte for byte through the real listeners on loopback.

The same hypothesis strategies as the handler-level fuzz tests, fewer examples: each
dataset goes out on an Explicit VR Little Endian context exactly as generated (values
that do not fit their VR included), and the listener must answer with a status and
stay usable on the same association.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from hypothesis import assume, example, given
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.printing import session as s
from clinic.server import ClinicServer
from tests.support.dicom_bytes import (
    datasets,
    element,
    fuzz_settings,
    nested,
    sending_raw,
    tags,
)
from tests.support.mpps_bytes import REFUSALS, create_attrs, create_requests, encode
from tests.support.print_bytes import BAD_LENGTH, image_box_requests
from tests.support.printing import GRAY_BOX, PrintScu
from tests.support.worklist_bytes import ITEM, SPS, TOP

FUZZ = fuzz_settings(25, deadline_ms=None)


class Worklist:
    """One worklist/MPPS association, opened again if a request ended it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ae = AE(ae_title="XRAY1")
        self.ae.add_requested_context(Verification)
        for sop_class in (ModalityWorklistInformationFind, ModalityPerformedProcedureStep):
            self.ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
        self.assoc: Association | None = None

    def open(self) -> Association:
        if self.assoc is None or not self.assoc.is_established:
            self.assoc = self.ae.associate("127.0.0.1", self.port, ae_title="CLINIC")
            assert self.assoc.is_established
        return self.assoc

    def close(self) -> None:
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()


@pytest.fixture
def worklist(server: ClinicServer) -> Iterator[Worklist]:
    client = Worklist(server.mwl_port)
    yield client
    client.close()


def statuses_of_find(assoc: Association, data: bytes) -> list[int]:
    """Send ``data`` as a C-FIND identifier; every status answered."""
    with sending_raw(data), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answers = list(assoc.send_c_find(Dataset(), ModalityWorklistInformationFind))
    return [int(status.Status) for status, _ in answers if "Status" in status]


@FUZZ
@given(data=datasets(TOP, [SPS], ITEM))
@example(data=element(tags("PatientName")[0], "FD", b"*"))
@example(data=element(tags("SpecificCharacterSet")[0], "AT", b"\0\0\0\0"))
@example(data=nested(SPS, 60))
def test_find_through_the_listener(worklist: Worklist, data: bytes) -> None:
    # pynetdicom sends no data set at all for zero bytes, and the listener rightly waits.
    assume(data)
    assoc = worklist.open()
    statuses = statuses_of_find(assoc, data)
    assert statuses and statuses[-1] in (0x0000, 0xA900, 0xC000), [hex(x) for x in statuses]
    assert assoc.is_established and assoc.send_c_echo().Status == 0


@FUZZ
@given(request=create_requests())
@example(request=(encode({**create_attrs(), "Modality": ("FD", b"CR")}), None))
def test_mpps_through_the_listener(worklist: Worklist, request: tuple[bytes, str | None]) -> None:
    data, uid = request
    assoc = worklist.open()
    if uid is not None and (len(uid) > 64 or not set(uid) <= set("0123456789.")):
        uid = str(generate_uid())  # pynetdicom will not send a malformed UID; the handler test does
    with sending_raw(data), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status, _ = assoc.send_n_create(Dataset(), ModalityPerformedProcedureStep, uid)
    assert "Status" in status, "no answer"
    assert int(status.Status) in (0, *REFUSALS), hex(status.Status)
    assert assoc.is_established and assoc.send_c_echo().Status == 0


@pytest.fixture
def printer(server: ClinicServer) -> Iterator[tuple[PrintScu, str]]:
    """A print association with one film box of one image box."""
    scu = PrintScu(server.print_port, transfer_syntax=ExplicitVRLittleEndian)
    session_uid = scu.session()
    _, _, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
    yield scu, boxes[0]
    if scu.assoc.is_established:
        scu.release()


@FUZZ
@given(data=image_box_requests())
@example(data=BAD_LENGTH)
def test_image_box_through_the_listener(printer: tuple[PrintScu, str], data: bytes) -> None:
    scu, box = printer
    assert scu.assoc.is_established
    with sending_raw(data), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = scu.set(GRAY_BOX, box, Dataset())
    allowed = (0x0000, 0x0105, 0x0106, 0x0107, 0x0116, 0x0120, 0xC603, 0xC605)
    assert status in allowed or status & 0xFF00 == 0xB600, hex(status)
    # Not 0x0110: nothing failed inside the handler.
    assert scu.get(s.PRINTER, s.PRINTER_INSTANCE, [0x21100010], meta=True)[0] == 0
