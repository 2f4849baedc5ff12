"""The DICOM listeners under hostile peers: oversized PDUs, idle and trickling peers,
floods past the association limit, TLS, and calling AE / host allow-lists.

Every test runs the real listeners on loopback with short limits, and polls with
deadlines; none waits a fixed time for the server.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any, cast

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.dimse_messages import C_FIND_RQ
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.config import Settings
from clinic.server import ClinicServer
from tests.support.guards import (
    A_ABORT,
    echo_ae,
    echo_ok,
    make_pki,
    pdu_header,
    read_until_closed,
    rejection,
    rss_bytes,
)
from tests.support.waiting import holds_within

Start = Callable[..., ClinicServer]


@pytest.fixture
def start(fresh_store: Settings) -> Iterator[Start]:
    """Start a service with some settings changed; every one is stopped afterwards."""
    settings = fresh_store
    running: list[ClinicServer] = []

    def _start(**changes: Any) -> ClinicServer:
        srv = ClinicServer(dataclasses.replace(settings, **changes))
        srv.start()
        running.append(srv)
        return srv

    yield _start
    for srv in running:
        srv.stop(grace=1.0)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


# -- oversized PDUs --------------------------------------------------------------------


@pytest.mark.parametrize("door", ["mwl", "print"])
def test_oversized_association_request_is_aborted_unbuffered(start: Start, door: str) -> None:
    """A-ASSOCIATE-RQ claiming 2 GiB: A-ABORT at once, memory flat, service still answers."""
    srv = start()
    port = srv.mwl_port if door == "mwl" else srv.print_port
    before = rss_bytes()
    with _connect(port) as sock:
        sock.sendall(pdu_header(0x01, 2**31) + b"\x00\x01\x00\x00")
        # Keep pushing body bytes the server must not keep; a closed socket stops us.
        chunk = b"\x00" * 65536
        try:
            for _ in range(256):  # up to 16 MiB
                sock.sendall(chunk)
        except OSError:
            pass
        data, took, closed = read_until_closed(sock, timeout=5)
    assert closed and took < 2.0
    assert data[:1] == bytes([A_ABORT]) or data == b""
    assert rss_bytes() - before < 8 * 1024 * 1024
    called = "CLINIC" if door == "mwl" else "PDFPRINT"
    assert echo_ok(port, called=called)


def test_oversized_pdata_after_negotiation_is_aborted(start: Start) -> None:
    """A P-DATA-TF claiming far more than our maximum PDU length aborts the association."""
    srv = start()
    assoc = echo_ae().associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    limit = assoc.acceptor.maximum_length
    assert limit and limit < 1 << 20
    raw = assoc.dul.socket.socket  # type: ignore[union-attr]
    assert raw is not None
    raw.sendall(pdu_header(0x04, 2**31 - 1) + b"\x00" * 16)
    assert holds_within(lambda: assoc.is_aborted, timeout=5)
    assert echo_ok(srv.mwl_port)


def test_pdata_within_negotiated_limit_still_works(start: Start) -> None:
    """The limit is the negotiated one: a full-size worklist query is answered."""
    srv = start()
    ae = AE(ae_title="BIGQUERY")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.maximum_pdu_size = 0  # the SCU sends PDUs as large as the SCP accepts
    assoc = ae.associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    query = Dataset()
    query.PatientName = "X" * 60
    query.PatientComments = "y" * 10000  # spans the whole negotiated PDU
    query.ScheduledProcedureStepSequence = [Dataset()]
    statuses = [s.Status for s, _ in assoc.send_c_find(query, ModalityWorklistInformationFind)]
    assoc.release()
    assert statuses[-1] == 0x0000


# -- deadlines -----------------------------------------------------------------------------


def test_silent_peer_is_cut_at_the_idle_deadline(start: Start) -> None:
    """A peer that connects and sends nothing is closed after idle_timeout."""
    srv = start(idle_timeout=1.0)
    with _connect(srv.mwl_port) as sock:
        _, took, closed = read_until_closed(sock, timeout=6)
    assert closed and 0.8 <= took < 3.0


def test_trickling_peer_is_cut_at_the_pdu_deadline(start: Start) -> None:
    """One byte every 0.2 s (never idle) is cut when the PDU deadline passes."""
    srv = start(idle_timeout=1.0, pdu_timeout=2.0)
    started = time.monotonic()
    with _connect(srv.mwl_port) as sock:
        sock.sendall(pdu_header(0x01, 4000))
        closed = False
        for _ in range(60):  # at most 12 s of trickling
            try:
                sock.sendall(b"\x00")
            except OSError:
                closed = True
                break
            sock.settimeout(0.2)  # the trickle's pace
            try:
                sock.recv(64)  # an A-ABORT or the close: the server gave up
                closed = True
                break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        took = time.monotonic() - started
    assert closed and 1.5 <= took < 4.0
    assert echo_ok(srv.mwl_port)


def test_association_deadline_ends_a_busy_association(start: Start) -> None:
    """An association kept busy with C-ECHOs is aborted at association_timeout."""
    srv = start(association_timeout=2.0)
    assoc = echo_ae().associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    started = time.monotonic()
    while assoc.is_established and time.monotonic() - started < 8:
        assoc.send_c_echo()
        holds_within(lambda: not assoc.is_established, timeout=0.2)
    took = time.monotonic() - started
    assert not assoc.is_established and 1.5 <= took < 4.0
    assert echo_ok(srv.mwl_port)


# -- association limit -------------------------------------------------------------------


def test_past_the_limit_new_associations_are_rejected_transient(start: Start) -> None:
    """max_associations=2: the third gets A-ASSOCIATE-RJ transient; a freed slot serves."""
    srv = start(mwl_max_associations=2)
    held = [echo_ae().associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC") for _ in range(2)]
    assert all(a.is_established for a in held)
    third = echo_ae().associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC")
    # rejected-transient (2), service provider presentation (3), local limit exceeded (2)
    assert rejection(third) == (0x02, 0x03, 0x02)
    held[0].release()
    assert holds_within(lambda: echo_ok(srv.mwl_port), timeout=5, step=0.1)
    held[1].release()


def test_idle_connections_cannot_hold_the_slots(start: Start) -> None:
    """Idle connections fill the slots, then the idle deadline frees them."""
    srv = start(mwl_max_associations=2, idle_timeout=3.0)
    idle = [_connect(srv.mwl_port) for _ in range(4)]  # the hard cap is 2 x 2
    try:
        # Past the cap the connection is closed on arrival: connections are counted when
        # accepted, so none slips in ahead of the count (the idle deadline is 3 s).
        extra = _connect(srv.mwl_port)
        _, took, closed = read_until_closed(extra, timeout=8)
        extra.close()
        assert closed and took < 1.0
        assert holds_within(lambda: echo_ok(srv.mwl_port), timeout=10, step=0.2)
    finally:
        for sock in idle:
            sock.close()


# -- TLS ---------------------------------------------------------------------------------


def _client_tls(pki: Any, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


def test_tls_handshake_runs_off_the_accepting_thread(start: Start, tmp_path: Any) -> None:
    """A silent TLS client does not stall other TLS associations; it is cut at the
    handshake timeout; a plain TCP peer gets nothing."""
    pki = make_pki(tmp_path)
    srv = start(
        mwl_tls_cert=str(pki.server_cert),
        mwl_tls_key=str(pki.server_key),
        tls_handshake_timeout=3.0,
    )
    silent = [_connect(srv.mwl_port) for _ in range(3)]
    try:
        started = time.monotonic()
        assert echo_ok(srv.mwl_port, tls_args=(_client_tls(pki), "localhost"))
        assert time.monotonic() - started < 2.0
        _, took, closed = read_until_closed(silent[0], timeout=8)
        assert closed and 1.0 <= took < 5.0  # 3 s from connecting, less the echo
    finally:
        for sock in silent:
            sock.close()
    assert not echo_ok(srv.mwl_port)  # plain DICOM on a TLS port


def test_tls_client_certificates_are_checked(start: Start, tmp_path: Any) -> None:
    """require_client_cert: no certificate is refused, one signed by the CA is served."""
    pki = make_pki(tmp_path)
    srv = start(
        print_tls_cert=str(pki.server_cert),
        print_tls_key=str(pki.server_key),
        print_tls_ca=str(pki.ca),
        print_require_client_cert=True,
    )
    port = srv.print_port
    assert not echo_ok(port, called="PDFPRINT", tls_args=(_client_tls(pki), "localhost"))
    tls = (_client_tls(pki, with_cert=True), "localhost")
    assert echo_ok(port, called="PDFPRINT", tls_args=tls)


# -- allow-lists -------------------------------------------------------------------------


def _find_status(port: int, calling: str) -> int:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="CLINIC")
    assert assoc.is_established
    query = Dataset()
    query.PatientID = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    try:
        return int(
            [s.Status for s, _ in assoc.send_c_find(query, ModalityWorklistInformationFind)][-1]
        )
    finally:
        assoc.release()


def _mpps_status(port: int, calling: str) -> int:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", port, ae_title="CLINIC")
    assert assoc.is_established
    try:
        ds = Dataset()
        ds.PatientID = "X"  # not a valid report: the allow-list answers first, if at all
        status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, generate_uid())
        return int(status.Status)
    finally:
        assoc.release()


def test_worklist_door_allow_lists(start: Start) -> None:
    """Who may query and who may send MPPS; an AE on neither list cannot associate."""
    srv = start(mwl_find_ae_titles=("FINDER",), mwl_mpps_ae_titles=("MODALITY",))
    port = srv.mwl_port
    assoc = echo_ae("STRANGER").associate("127.0.0.1", port, ae_title="CLINIC")
    assert rejection(assoc) == (0x01, 0x01, 0x03)  # calling AE title not recognised
    assert _find_status(port, "FINDER") == 0x0000
    assert _find_status(port, "MODALITY") == 0x0124
    assert _mpps_status(port, "FINDER") == 0x0124
    assert _mpps_status(port, "MODALITY") == 0x0120  # allowed through, then checked


def test_worklist_door_stays_open_by_default(start: Start) -> None:
    """No lists configured: any calling AE queries, sends MPPS and echoes."""
    srv = start()
    assert _find_status(srv.mwl_port, "ANYONE") == 0x0000
    assert echo_ok(srv.mwl_port, calling="ANYONE")


def test_print_door_uses_the_printer_allow_list(start: Start) -> None:
    """A printer profile's allowed_calling_ae_titles refuses others at association time."""
    srv = start(printers={"DENTAL": {"allowed_calling_ae_titles": ["PANO1"]}})
    port = srv.print_port
    refused = echo_ae("CEPH1").associate("127.0.0.1", port, ae_title="DENTAL")
    assert rejection(refused) == (0x01, 0x01, 0x03)
    assert echo_ok(port, called="DENTAL", calling="PANO1")
    assert echo_ok(port, called="PDFPRINT", calling="CEPH1")  # the default printer is open


def test_host_allow_list(start: Start) -> None:
    """Peers outside allowed_hosts get A-ASSOCIATE-RJ; a matching network is served."""
    srv = start(mwl_allowed_hosts=("10.9.9.9",), print_allowed_hosts=("127.0.0.0/8",))
    assoc = echo_ae().associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC")
    assert rejection(assoc) == (0x01, 0x01, 0x01)
    assert echo_ok(srv.print_port, called="PDFPRINT")


def test_verification_context_is_unchanged(start: Start) -> None:
    """The guarded server negotiates as before: Verification accepted on both doors."""
    srv = start()
    for port, called in ((srv.mwl_port, "CLINIC"), (srv.print_port, "PDFPRINT")):
        assoc = echo_ae().associate("127.0.0.1", port, ae_title=called)
        assert assoc.is_established
        assert [str(cx.abstract_syntax) for cx in assoc.accepted_contexts] == [Verification]
        assoc.release()


def test_modality_that_stops_reading_is_held_back_then_cut(start: Start) -> None:
    """Answers a peer does not read wait in a bounded queue; the idle deadline ends it."""
    srv = start(idle_timeout=1.0)
    assert srv.scheduler is not None
    rows = [
        {
            "accession_number": f"R{n:04d}",
            "patient_id": f"PR{n:04d}",
            "patient_name": f"READER^NEVER{n}",
            "modality": "CR",
            "station_ae_title": "XRAY1",
            "scheduled_start": f"{dt.date.today().isoformat()}T09:00",
            "notes": "n" * 10000,  # ~10 KB an answer, ~9 MB in all: more than socket buffers
        }
        for n in range(900)
    ]
    srv.scheduler.import_procedures(rows, actor="test")
    ae = AE(ae_title="STALLED")
    ae.add_requested_context(ModalityWorklistInformationFind, ImplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    # Stop the SCU's reader thread: from now on nothing on this side reads the socket.
    assoc.dul.kill_dul()
    assert holds_within(lambda: not assoc.dul.is_alive(), timeout=5)
    raw = assoc.dul.socket.socket  # type: ignore[union-attr]
    assert raw is not None
    query = Dataset()
    query.PatientName = ""
    item = Dataset()
    item.CommentsOnTheScheduledProcedureStep = ""
    query.ScheduledProcedureStepSequence = [item]
    request = C_FIND()
    request.MessageID = 1
    request.AffectedSOPClassUID = ModalityWorklistInformationFind
    request.Priority = 2
    request.Identifier = BytesIO(cast(bytes, encode(query, True, True)))
    message = C_FIND_RQ()
    message.primitive_to_message(request)
    context_id = cast(int, assoc.accepted_contexts[0].context_id)
    for primitive in message.encode_msg(context_id, cast(int, assoc.acceptor.maximum_length)):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        raw.sendall(pdu.encode())

    def stalled() -> list[Any]:
        return [
            a
            for listener in srv._servers
            for a in listener.ae.active_associations
            if a.requestor.ae_title.strip() == "STALLED"
        ]

    most_queued = 0

    def cut() -> bool:
        nonlocal most_queued
        for a in stalled():
            most_queued = max(most_queued, a.dul.to_provider_queue.qsize())
        return not stalled()

    assert holds_within(cut, timeout=15)
    assert 0 < most_queued <= 260  # held back at the high-water mark, never all 900
    assert echo_ok(srv.mwl_port)
    raw.close()
