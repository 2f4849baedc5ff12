"""The listeners' association reactors and accept loops wait for work instead of polling."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from clinic.config import Settings
from clinic.dicom import reactors
from clinic.dicom.reactors import TIMER_CHECK_S, WakingAssociation, WakingDUL, WakingQueue
from clinic.server import ClinicServer
from clinic.waking import WakingServerMixin


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def echo_scu() -> AE:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    return ae


def server_associations(server: ClinicServer) -> list[Any]:
    return [a for listener in server._servers for a in listener.ae.active_associations]


def test_listeners_use_the_waking_reactors(server: ClinicServer) -> None:
    assoc = echo_scu().associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    try:
        assert assoc.is_established
        (accepted,) = server_associations(server)
        assert isinstance(accepted, WakingAssociation)
        assert isinstance(accepted.dul, WakingDUL)
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


def test_an_idle_association_waits_rather_than_polls(
    server: ClinicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = 0
    original = WakingDUL._wait_for_work

    def counted(self: WakingDUL) -> None:
        nonlocal waits
        waits += 1
        original(self)

    monkeypatch.setattr(WakingDUL, "_wait_for_work", counted)
    assoc = echo_scu().associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    try:
        assert assoc.send_c_echo().Status == 0x0000
        waits = 0
        window = 0.5
        started = time.monotonic()
        threading.Event().wait(window)  # the association sits idle
        elapsed = time.monotonic() - started
        # pynetdicom's own DUL loop would have turned ~500 times (1 ms sleeps).
        assert waits <= elapsed / TIMER_CHECK_S + 5
        assert assoc.send_c_echo().Status == 0x0000  # and it still answers at once
    finally:
        assoc.release()


def test_file_descriptors_are_released(server: ClinicServer) -> None:
    ae = echo_scu()
    for _ in range(3):  # warm up: pools, lazily opened files
        assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
        assoc.release()
    before = open_fds()
    for _ in range(40):
        assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
    deadline = time.monotonic() + 10
    while server_associations(server) and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert not server_associations(server)
    # Each association had a wake-up pipe (two descriptors): none is left open.
    assert open_fds() <= before + 4


def test_peer_abort_is_noticed_without_polling(server: ClinicServer) -> None:
    assoc = echo_scu().associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    (accepted,) = server_associations(server)
    assoc.abort()
    accepted.join(timeout=5)
    assert not accepted.is_alive()
    assert accepted.is_aborted


def test_waking_queue_wakes_after_every_put() -> None:
    woken: list[int] = []
    q = WakingQueue(lambda: woken.append(q.qsize()))
    q.put("a")
    q.put("b")
    assert woken == [1, 2]  # called after the item is in, so the woken side finds it
    assert reactors.TIMER_CHECK_S <= 0.1


# -- stopping ----------------------------------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(self.request.recv(16))


class _WakingTcpServer(WakingServerMixin, socketserver.ThreadingTCPServer):
    daemon_threads = True


def test_accept_loop_stops_without_waiting_out_its_poll() -> None:
    """shutdown() wakes the loop: it returns long before the loop's 30 s poll would end."""
    server = _WakingTcpServer(("127.0.0.1", 0), _Echo)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 30})
    loop.start()
    with socket.create_connection(server.server_address, timeout=10) as peer:
        peer.sendall(b"ping")
        assert peer.recv(16) == b"ping"  # the loop accepts while it runs
    began = time.monotonic()
    server.shutdown()
    server.server_close()
    loop.join(timeout=10)
    assert not loop.is_alive()
    assert time.monotonic() - began < 5.0
    with pytest.raises(OSError):
        socket.create_connection(server.server_address, timeout=2).close()


def test_shutdown_before_the_loop_runs_returns_at_once() -> None:
    server = _WakingTcpServer(("127.0.0.1", 0), _Echo)
    began = time.monotonic()
    server.shutdown()
    server.serve_forever(poll_interval=30)  # asked to stop already: returns at once
    server.server_close()
    assert time.monotonic() - began < 5.0


def test_every_door_stops_at_once(settings: Settings) -> None:
    """An idle service stops in milliseconds (the polls this replaced took 0.4 to 1.5 s)."""
    srv = ClinicServer(settings)
    srv.start()
    web = socket.create_connection(("127.0.0.1", srv.web_port), timeout=10)  # an idle client
    try:
        began = time.monotonic()
        srv.stop()
        took = time.monotonic() - began
    finally:
        web.close()
    assert took < 0.3, took
    for port in (srv.web_port, srv.mwl_port, srv.print_port, srv.hl7_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
