"""Fair doors: one address flooding a door leaves the others served.

Each door counts connections per peer address when it accepts them. The flooding
peer is 127.0.0.1; the modality that must still be served binds 127.0.0.2 (the whole
127.0.0.0/8 is loopback on Linux). Also here: keep-alive C-ECHOs do not hold a slot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]
from sqlalchemy import select

from clinic.config import Settings
from clinic.server import ClinicServer
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from clinic.store.models import WorklistQueryLog
from clinic.worklist.diagnostics import QueryLogWriter, QueryRecord
from tests.support.guards import echo_ae, read_until_closed, rejection
from tests.support.tools import require_tool
from tests.support.waiting import holds_within

Start = Callable[..., ClinicServer]
OTHER = "127.0.0.2"
#: A-ASSOCIATE-RJ rejected-transient, service provider (presentation), local limit exceeded.
LIMIT_REACHED = (0x02, 0x03, 0x02)
HL7_START, HL7_END = b"\x0b", b"\x1c\x0d"


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


def _associate(port: int, called: str, source: str = "127.0.0.1") -> Association:
    return echo_ae().associate("127.0.0.1", port, ae_title=called, bind_address=(source, 0))


def _timed_echo(port: int, called: str, source: str) -> tuple[bool, float]:
    """Associate from ``source``, C-ECHO, release: (whether it worked, seconds taken)."""
    started = time.monotonic()
    assoc = _associate(port, called, source)
    ok = False
    if assoc.is_established:
        status = assoc.send_c_echo()
        ok = bool(status) and status.Status == 0x0000
        assoc.release()
    return ok, time.monotonic() - started


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def _door(srv: ClinicServer, door: str) -> tuple[int, str, Any]:
    listener = srv._servers[0] if door == "mwl" else srv._servers[1]
    port = srv.mwl_port if door == "mwl" else srv.print_port
    return port, "CLINIC" if door == "mwl" else "PDFPRINT", listener


@pytest.mark.parametrize("door", ["mwl", "print"])
def test_one_address_holding_its_limit_leaves_other_addresses_served(
    start: Start, door: str
) -> None:
    """127.0.0.1 holds its 3 associations and floods silent connections: its next
    association is rejected transient, its connections past twice the limit are closed
    on arrival, and a modality on 127.0.0.2 is served within a second."""
    srv = start(
        **{f"{door}_max_associations": 12, f"{door}_max_associations_per_address": 3},
        idle_timeout=30.0,
    )
    port, called, listener = _door(srv, door)
    held = [_associate(port, called) for _ in range(3)]
    silent: list[socket.socket] = []
    try:
        assert all(a.is_established for a in held)
        assert rejection(_associate(port, called)) == LIMIT_REACHED
        # The refused connection is no longer counted once its thread has ended.
        assert holds_within(lambda: listener.counts("127.0.0.1") == (3, 3), timeout=3)
        # Silent connections from the same address: 3 more wait for their request
        # (and would be refused), the rest are closed on arrival.
        silent = [_connect(port) for _ in range(10)]
        assert holds_within(lambda: listener.counts("127.0.0.1")[0] == 6, timeout=3), (
            listener.counts("127.0.0.1")
        )
        _, took, closed = read_until_closed(silent[-1], timeout=3)
        assert closed and took < 1.0
        ok, took = _timed_echo(port, called, OTHER)
        assert ok and took < 1.0
        assert listener.counts(OTHER) == (0, 0) or holds_within(
            lambda: listener.counts(OTHER) == (0, 0), timeout=3
        )
    finally:
        for sock in silent:
            sock.close()
        for assoc in held:
            assoc.release()
    # The flooding address gets its slots back once its associations end.
    assert holds_within(lambda: listener.counts("127.0.0.1") == (0, 0), timeout=5)
    ok, _ = _timed_echo(port, called, "127.0.0.1")
    assert ok


def test_a_burst_from_one_address_gets_exactly_its_limit(start: Start) -> None:
    """Twelve associations requested at once from one address: exactly the per-address
    limit is established (counted at accept, so none slips in), the rest are refused."""
    srv = start(mwl_max_associations=20, mwl_max_associations_per_address=4)
    barrier = threading.Barrier(12)
    results: list[Association] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        assoc = _associate(srv.mwl_port, "CLINIC")
        with lock:
            results.append(assoc)

    threads = [threading.Thread(target=one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    try:
        established = [a for a in results if a.is_established]
        assert len(results) == 12 and len(established) == 4
        refused = [a for a in results if not a.is_established]
        # Past the limit: A-ASSOCIATE-RJ, or closed on arrival beyond twice the limit.
        assert all(rejection(a) in (LIMIT_REACHED, None) for a in refused)
        assert sum(rejection(a) == LIMIT_REACHED for a in refused) >= 1
    finally:
        for assoc in results:
            if assoc.is_established:
                assoc.release()


def test_hl7_one_address_cannot_take_the_door(start: Start) -> None:
    """Two idle connections from 127.0.0.1 are its limit: its third is closed on arrival,
    while 127.0.0.2 sends an order and gets its acknowledgement within a second."""
    srv = start(hl7_max_connections=8, hl7_max_connections_per_address=2)
    assert srv._hl7 is not None
    listener = srv._hl7
    held = [_connect(srv.hl7_port) for _ in range(2)]
    try:
        assert holds_within(lambda: listener._admitted_by_address.get("127.0.0.1") == 2, timeout=3)
        with _connect(srv.hl7_port) as extra:
            _, took, closed = read_until_closed(extra, timeout=3)
        assert closed and took < 0.5
        started = time.monotonic()
        with _connect(srv.hl7_port, OTHER) as sock:
            sock.sendall(
                HL7_START + b"MSH|^~\\&|RIS|X|CLINIC|X|20260101||ORM^O01|FAIR1|P|2.3.1\r" + HL7_END
            )
            answer = b""
            sock.settimeout(1.0)
            while HL7_END not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert b"MSA|" in answer and b"|FAIR1" in answer
        assert time.monotonic() - started < 1.0
    finally:
        for sock in held:
            sock.close()
    assert holds_within(lambda: listener._admitted == 0, timeout=3)


# -- keep-alives ---------------------------------------------------------------------


def test_echo_keep_alives_do_not_hold_a_slot(start: Start) -> None:
    """A peer sending only C-ECHO every 0.25 s is ended after idle_timeout (1 s)."""
    srv = start(idle_timeout=1.0)
    assoc = _associate(srv.mwl_port, "CLINIC")
    assert assoc.is_established
    started = time.monotonic()
    while assoc.is_established and time.monotonic() - started < 8:
        assoc.send_c_echo()
        holds_within(lambda: not assoc.is_established, timeout=0.25)
    took = time.monotonic() - started
    assert not assoc.is_established and 0.8 <= took < 3.0


def test_real_operations_keep_an_association(start: Start) -> None:
    """The same pace of C-FINDs is work, not a keep-alive: the association stays."""
    srv = start(idle_timeout=1.0)
    ae = AE(ae_title="POLLER")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", srv.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    query = Dataset()
    query.PatientName = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    started = time.monotonic()
    try:
        while time.monotonic() - started < 3.0:
            statuses = [
                s.Status for s, _ in assoc.send_c_find(query, ModalityWorklistInformationFind)
            ]
            assert statuses[-1] == 0x0000
            holds_within(lambda: not assoc.is_established, timeout=0.25)
            assert assoc.is_established
    finally:
        assoc.release()


# -- diagnostics -----------------------------------------------------------------------


def test_invented_calling_ae_titles_cannot_grow_the_diagnostics(settings: Settings) -> None:
    """A peer inventing a calling AE title per query: the diagnostics keep the most
    recent max_ae_titles of them, the station that queried last among them included."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    writer = QueryLogWriter(factory, max_ae_titles=50)
    start = dt.datetime(2026, 1, 1, 8, 0)
    try:
        for n in range(120):
            writer.record(
                QueryRecord(
                    calling_ae_title=f"FAKE{n:04d}",
                    peer="127.0.0.1:1",
                    at=start + dt.timedelta(seconds=n),
                    matching_keys=(),
                    return_keys=(),
                    matches=0,
                    status=0,
                    character_set="",
                )
            )
        writer.flush()
        with factory() as session:
            kept = set(session.scalars(select(WorklistQueryLog.calling_ae_title)))
        assert kept == {f"FAKE{n:04d}" for n in range(70, 120)}
    finally:
        writer.close()
        engine.dispose()


def test_listen_backlogs_hold_a_burst(start: Start) -> None:
    """The DICOM and HL7 listeners queue 128 connections for their accepting thread
    (socketserver's default of 5 overflowed under a burst of connects)."""
    ss = require_tool("ss")
    srv = start()
    for port in (srv.mwl_port, srv.print_port, srv.hl7_port):
        listing = subprocess.run(
            [ss, "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        # State, Recv-Q, Send-Q (a listening socket's backlog), local address, peer.
        assert listing[0] == "LISTEN" and int(listing[2]) == 128, listing
