"""The listeners' association reactors wait for work instead of polling, and clean up."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from clinic.dicom import reactors
from clinic.dicom.reactors import TIMER_CHECK_S, WakingAssociation, WakingDUL, WakingQueue
from clinic.server import ClinicServer


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
