"""The HL7 MLLP listener of the running service under the same bar as the DICOM ones:
size limit unbuffered, silent and trickling peers cut, connection cap; settings from [hl7]."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator

import pytest

from clinic.config import Settings
from clinic.server import ClinicServer
from tests.support.guards import read_until_closed, rss_bytes
from tests.support.waiting import holds_within

START, END = b"\x0b", b"\x1c\x0d"


@pytest.fixture
def hl7(fresh_store: Settings) -> Iterator[ClinicServer]:
    """A service whose HL7 guards are set tight."""
    srv = ClinicServer(
        dataclasses.replace(
            fresh_store,
            hl7_max_message_bytes=2000,
            hl7_read_timeout=1.0,
            hl7_frame_timeout=1.5,
            hl7_idle_timeout=1.0,
            hl7_max_connections=2,
        )
    )
    srv.start()
    yield srv
    srv.stop(grace=1.0)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_oversized_message_is_refused_unbuffered(hl7: ClinicServer) -> None:
    before = rss_bytes()
    with _connect(hl7.hl7_port) as sock:
        sock.sendall(START + b"MSH|^~\\&|RIS|X|CLINIC|X|20260101||ORM^O01|BIG1|P|2.3.1\r")
        try:
            for _ in range(64):  # up to 4 MiB, never terminated
                sock.sendall(b"x" * 65536)
        except OSError:
            pass
        answer, took, closed = read_until_closed(sock, timeout=5)
    assert closed and took < 3.0
    assert b"MSA|AR|BIG1" in answer or answer == b""
    assert rss_bytes() - before < 8 * 1024 * 1024


def test_silent_and_trickling_peers_are_cut(hl7: ClinicServer) -> None:
    with _connect(hl7.hl7_port) as silent:
        _, took, closed = read_until_closed(silent, timeout=5)
    assert closed and 0.8 <= took < 3.0

    started = time.monotonic()
    with _connect(hl7.hl7_port) as trickle:
        trickle.sendall(START)
        closed = False
        for _ in range(40):  # at most 8 s
            try:
                trickle.sendall(b"M")
            except OSError:
                closed = True
                break
            trickle.settimeout(0.2)  # the trickle's pace
            try:
                trickle.recv(64)
                closed = True
                break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    assert closed and 1.2 <= time.monotonic() - started < 4.0


def test_connections_past_the_cap_are_closed_then_served_again(hl7: ClinicServer) -> None:
    held = [_connect(hl7.hl7_port) for _ in range(2)]
    try:
        # Let the listener count both before the third arrives.
        assert holds_within(lambda: hl7._hl7 is not None and hl7._hl7._admitted >= 2, timeout=3)
        with _connect(hl7.hl7_port) as extra:
            _, took, closed = read_until_closed(extra, timeout=3)
        assert closed and took < 0.5
    finally:
        for sock in held:
            sock.close()
    assert hl7._hl7 is not None
    assert holds_within(lambda: hl7._hl7 is not None and hl7._hl7._admitted == 0, timeout=3)
