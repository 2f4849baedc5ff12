"""Memory budgets: what one peer can make the service hold, measured as the process's
resident set size (RSS) while the peer sends.

Server and peer run in this one process, so the peer sends from one reused buffer and
reads nothing it does not need: the growth measured is the server's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
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
from tests.support.database import sqlite_only
from tests.support.guards import echo_ok, rss_bytes
from tests.support.printing import FILM_BOX, PrintScu, gray_image
from tests.support.waiting import holds_within

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
        assert holds_within(lambda: assoc.is_aborted or not assoc.is_established, timeout=10)
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
    assert holds_within(lambda: scu.assoc.is_aborted, timeout=5)
    assert rss.growth_mib < 16
    assert echo_ok(srv.print_port, called="PDFPRINT")


# -- C-FIND answers stream -------------------------------------------------------------

MWL_FIND = b"1.2.840.10008.5.1.4.31\x00"
IMPLICIT_LE = b"1.2.840.10008.1.2\x00"


def _item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(min(65536, count - len(data)))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def count_answers(port: int, query: Dataset, calling: str = "COUNTER") -> tuple[int, int]:
    """Associate, C-FIND ``query``, count the pending answers without keeping them,
    release: (pending answers, final status). A raw-socket SCU that holds nothing."""
    identifier = cast(bytes, encode(query, True, True))
    context = _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, MWL_FIND) + _item(0x40, IMPLICIT_LE))
    user = _item(0x50, _item(0x51, struct.pack(">L", 16384)))
    rq = (
        struct.pack(">HH", 1, 0)
        + b"CLINIC".ljust(16)
        + calling.encode().ljust(16)
        + bytes(32)
        + _item(0x10, b"1.2.840.10008.3.1.1.1")
        + context
        + user
    )
    command = b"".join(
        struct.pack("<HHL", 0, element, len(value)) + value
        for element, value in (
            (0x0002, MWL_FIND),
            (0x0100, struct.pack("<H", 0x0020)),
            (0x0110, struct.pack("<H", 1)),
            (0x0700, struct.pack("<H", 0)),
            (0x0800, struct.pack("<H", 0x0001)),
        )
    )
    command = struct.pack("<HHLL", 0, 0, 4, len(command)) + command
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(struct.pack(">BBL", 0x01, 0, len(rq)) + rq)
        kind, _, length = struct.unpack(">BBL", _recv_exactly(sock, 6))
        _recv_exactly(sock, length)
        assert kind == 0x02, f"association not accepted (PDU type {kind})"
        sock.sendall(_pdv_pdu(1, 0x03, command) + _pdv_pdu(1, 0x02, identifier))
        answers = 0
        parts = bytearray()
        while True:
            kind, _, length = struct.unpack(">BBL", _recv_exactly(sock, 6))
            body = _recv_exactly(sock, length)
            assert kind == 0x04, f"PDU type {kind} during the C-FIND"
            offset = 0
            while offset < len(body):
                (size,) = struct.unpack_from(">L", body, offset)
                control = body[offset + 5]
                if control & 0x01:
                    parts += body[offset + 6 : offset + 4 + size]
                    if control & 0x02:
                        status = _status(bytes(parts))
                        parts.clear()
                        if status in (0xFF00, 0xFF01):
                            answers += 1
                        else:
                            sock.sendall(struct.pack(">BBL", 0x05, 0, 4) + bytes(4))
                            return answers, status
                offset += 4 + size


def _status(command: bytes) -> int:
    offset = 0
    while offset + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHL", command, offset)
        offset += 8
        if (group, element) == (0, 0x0900):
            return int(struct.unpack_from("<H", command, offset)[0])
        offset += length
    raise AssertionError("response without a status")


def _book(settings: Settings, count: int, folder: Path) -> None:
    """Book ``count`` exams through ``clinic procedures import`` in its own process, so
    the import's memory never enters the RSS this process measures."""
    today = dt.date.today().isoformat()
    rows = [
        {
            "accession_number": f"M{n:06d}",
            "patient_id": f"PM{n:06d}",
            "patient_name": f"MANY^PATIENT{n}",
            "modality": "CR",
            "station_ae_title": "XRAY1",
            "scheduled_start": f"{today}T{8 + n % 9:02d}:{n % 60:02d}",
            "procedure_description": "Chest two views",
            "notes": "n" * 300,
        }
        for n in range(count)
    ]
    path = folder / "bookings.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    env = {**os.environ, "CLINIC_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        env["CLINIC_DATABASE_URL"] = settings.database_url
    done = subprocess.run(
        [sys.executable, "-c", "from clinic.cli import main; main()"]
        + ["procedures", "import", str(path)],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _match_all() -> Dataset:
    query = Dataset()
    query.PatientName = "*"
    query.PatientID = ""
    query.AccessionNumber = ""
    item = Dataset()
    item.ScheduledProcedureStepDescription = ""
    item.ScheduledStationAETitle = ""
    query.ScheduledProcedureStepSequence = [item]
    return query


def test_a_match_all_query_streams_with_flat_memory(
    start: Start, settings: Settings, tmp_path: Path
) -> None:
    """PatientName=* over 12,000 bookings: every booking is answered, and the process
    grows by far less than the ~3.5 KB a booking it took when rows were all loaded."""
    srv = start()
    _book(settings, 12_000, tmp_path)
    one = _match_all()
    one.AccessionNumber = "M000001"
    assert count_answers(srv.mwl_port, one) == (1, 0x0000)  # warm: compiled plans, caches
    with PeakRss() as rss:
        answers, status = count_answers(srv.mwl_port, _match_all())
    assert (answers, status) == (12_000, 0x0000)
    print(f"match-all over 12,000 bookings: RSS grew {rss.growth_mib:.1f} MiB")
    assert rss.growth_mib < 12, f"grew {rss.growth_mib:.1f} MiB"


def test_max_matches_stops_with_out_of_resources(
    start: Start, settings: Settings, tmp_path: Path
) -> None:
    """[worklist] max_matches = 25: 25 pending answers, then 0xA700 (Refused: Out of
    Resources, PS3.4 K.4.1.1.4) instead of Success, which would claim the list complete."""
    srv = start(mwl_max_matches=25)
    _book(settings, 40, tmp_path)
    assert count_answers(srv.mwl_port, _match_all()) == (25, 0xA700)
    query = _match_all()
    query.AccessionNumber = "M000007"
    assert count_answers(srv.mwl_port, query) == (1, 0x0000)


# -- print: image boxes on disk, a quota per association ---------------------------------


def test_many_large_image_boxes_are_held_on_disk_not_in_memory(start: Start) -> None:
    """Twelve 2048 x 2048 16-bit images (96 MiB of pixels) in one association: each is
    written to the association's stash as it arrives, so the process holds a few MiB
    for them, not 96; the film session then prints from the stash."""
    srv = start(printers={"PDFPRINT": {"hold_seconds": 3600}})
    scu = PrintScu(srv.print_port)
    try:
        session = scu.session()
        _, film, boxes = scu.film_box(session, "STANDARD\\4,3", FilmSizeID="14INX17IN")
        held: dict[int, float] = {}
        with PeakRss() as rss:
            for position, box in enumerate(boxes, start=1):
                image = gray_image(2048, 2048, 40 * position % 4096, bits=12)
                assert scu.fill(box, position, image) == 0x0000
                del image
                held[position] = (rss_bytes() - rss.baseline) / MIB
        print(
            f"12 image boxes of 8 MiB: RSS held {held[6]:.1f} MiB after 6, {held[12]:.1f} "
            f"after 12, peak +{rss.growth_mib:.1f} MiB"
        )
        # What stays is the allocator's working set for an image or two, not the images:
        # the last six add less than half of their 48 MiB (all of it when held in memory).
        assert held[12] - held[6] < 24, held
        assert held[12] < 48, held
        assert rss.growth_mib < 100, f"peak {rss.growth_mib:.1f} MiB"
        stash = [p for p in (srv.settings.data_dir / "incoming").rglob("*.npy")]
        assert len(stash) == 12
        status, _ = scu.action(FILM_BOX, film)
        assert status == 0x0000
    finally:
        scu.release()
    # The association's stash goes with it.
    assert holds_within(
        lambda: not list((srv.settings.data_dir / "incoming").rglob("*.npy")), timeout=5
    )


def test_an_association_has_an_image_quota(start: Start) -> None:
    """[print] max_association_image_bytes = 300,000: images past it get 0xC605
    (insufficient memory in printer to store the image, PS3.4 H.4.3.1.2); replacing or
    emptying a box gives its bytes back."""
    srv = start(print_max_association_image_bytes=300_000)
    scu = PrintScu(srv.print_port)
    try:
        session = scu.session()
        _, _, boxes = scu.film_box(session, "STANDARD\\2,1")
        assert scu.fill(boxes[0], 1, gray_image(512, 512, 100)) == 0x0000  # 262,144 bytes
        assert scu.fill(boxes[1], 2, gray_image(256, 256, 100)) == 0xC605  # +65,536
        assert scu.fill(boxes[0], 1, gray_image(128, 128, 100)) == 0x0000  # replaces
        assert scu.fill(boxes[1], 2, gray_image(256, 256, 100)) == 0x0000
        assert echo_ok(srv.print_port, called="PDFPRINT")
    finally:
        scu.release()


@sqlite_only
def test_a_stash_left_by_a_crash_is_removed_at_start(settings: Settings) -> None:
    """On SQLite one service owns the data folder: stashes found at start are a crash's."""
    left = settings.data_dir / "incoming" / "0123456789abcdef"
    left.mkdir(parents=True)
    (left / "image.npy").write_bytes(b"\x93NUMPY")
    srv = ClinicServer(settings)
    srv.start()
    try:
        assert not left.exists()
    finally:
        srv.stop(grace=1.0)
