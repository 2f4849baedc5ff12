"""Memory budgets: what one peer can make the service hold, measured as the process's
resident set size (RSS) while the peer sends.

Server and peer run in this one process, so the peer sends from one reused buffer and
reads nothing it does not need: the growth measured is the server's.
"""

from __future__ import annotations

import dataclasses
import struct
import threading
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any, cast

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_messages import C_FIND_RQ
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from clinic.config import Settings
from clinic.server import ClinicServer
from tests.integration.printing_support import PrintScu, gray_image
from tests.robustness.guard_support import echo_ok, rss_bytes, wait_for

Start = Callable[..., ClinicServer]
MIB = 1 << 20


@pytest.fixture
def start(settings: Settings) -> Iterator[Start]:
    """Start a service with some settings changed; every one is stopped afterwards."""
    running: list[ClinicServer] = []

    def _start(**changes: Any) -> ClinicServer:
        srv = ClinicServer(dataclasses.replace(settings, **changes))
        srv.start()
        running.append(srv)
        return srv

    yield _start
    for srv in running:
        srv.stop(grace=1.0)


class PeakRss:
    """Samples this process's RSS every 5 ms from a thread; ``peak`` is the largest seen."""

    def __init__(self) -> None:
        self.baseline = rss_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth_mib(self) -> float:
        """How far the RSS rose above where it was when sampling began, in MiB."""
        return (self.peak - self.baseline) / MIB


def _pdv_pdu(context_id: int, header: int, fragment: bytes) -> bytes:
    """One P-DATA-TF PDU holding one presentation data value item."""
    item = struct.pack(">LBB", len(fragment) + 2, context_id, header) + fragment
    return struct.pack(">BBL", 0x04, 0, len(item)) + item


def test_a_48_mib_identifier_in_fragments_aborts_at_the_budget(start: Start) -> None:
    """A C-FIND whose identifier carries a 48 MiB Patient's Name, sent as 16 KB
    fragments, is aborted once it passes max_dataset_bytes (1 MiB); the process grows
    by a few MiB at most, and the door still answers."""
    srv = start()
    ae = AE(ae_title="HOARDER")
    ae.add_requested_context(ModalityWorklistInformationFind, ImplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    raw = assoc.dul.socket.socket  # type: ignore[union-attr]
    assert raw is not None
    context_id = cast(int, assoc.accepted_contexts[0].context_id)
    # The command set, as pynetdicom frames it (it comes before any identifier byte).
    request = C_FIND()
    request.MessageID = 1
    request.AffectedSOPClassUID = ModalityWorklistInformationFind
    request.Priority = 2
    request.Identifier = BytesIO(cast(bytes, encode(Dataset(), True, True)))
    message = C_FIND_RQ()
    message.primitive_to_message(request)
    command = next(iter(message.encode_msg(context_id, 16382)))
    pdu = P_DATA_TF()
    pdu.from_primitive(command)

    size = 48 * MIB
    chunk = b"A" * 16000
    sent = 0
    with PeakRss() as rss:
        raw.sendall(pdu.encode())
        first = struct.pack("<HHL", 0x0010, 0x0010, size)
        try:
            raw.sendall(_pdv_pdu(context_id, 0x00, first))
            while sent < size:
                raw.sendall(_pdv_pdu(context_id, 0x00, chunk))
                sent += len(chunk)
        except OSError:
            pass  # the service cut us off: what should happen
        assert wait_for(lambda: assoc.is_aborted or not assoc.is_established, timeout=10)
    assert sent < 8 * MIB  # refused long before the end (socket buffers hold a few MiB)
    assert rss.growth_mib < 8, f"grew {rss.growth_mib:.1f} MiB"
    assert echo_ok(srv.mwl_port)


def test_image_boxes_have_their_own_budget(start: Start) -> None:
    """Image box N-SETs are measured against [print] max_image_box_bytes, other data
    sets against [dicom] max_dataset_bytes: a 256 KiB image passes a 300 KB image box
    budget that a 100 KB data set budget would refuse; a 1 MiB image aborts."""
    srv = start(max_dataset_bytes=100_000, print_max_image_box_bytes=300_000)
    scu = PrintScu(srv.print_port)
    session = scu.session()
    _, _, boxes = scu.film_box(session, "STANDARD\\1,1")
    assert scu.fill(boxes[0], 1, gray_image(512, 512, 128)) == 0x0000
    big = Dataset()
    big.ImageBoxPosition = 1
    big.BasicGrayscaleImageSequence = [gray_image(1024, 1024, 128)]
    with PeakRss() as rss:
        status, _ = scu.assoc.send_n_set(big, scu.box_class, boxes[0], meta_uid=scu.meta)
    assert "Status" not in status  # no answer: the association was aborted
    assert wait_for(lambda: scu.assoc.is_aborted, timeout=5)
    assert rss.growth_mib < 16
    assert echo_ok(srv.print_port, called="PDFPRINT")
