"""The web door's own guards, against the real server on loopback: a per-address share of
its connections (one address flooding cannot keep another from signing in), a short
deadline for idle keep-alive connections, and HTTPS without a proxy (HSTS, Secure
cookies, a handshake that stalls no one)."""

from __future__ import annotations

import dataclasses
import http.client
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from clinic.config import ConfigError, Settings, load_settings
from clinic.domain.accounts import Accounts
from clinic.server import ClinicServer
from tests.support.guards import make_pki, read_until_closed
from tests.support.waiting import holds_within
from tests.support.web import PASSWORD

_TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def running(settings: Settings) -> Iterator[ClinicServer]:
    server = ClinicServer(settings)
    server.start()
    assert server.session_factory is not None
    Accounts(server.session_factory).create_user("alice", "frontdesk", PASSWORD, actor="t")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def door(settings: Settings) -> Iterator[ClinicServer]:
    """The service with the web door's default limits (100 in all, 20 per address)."""
    yield from running(settings)


def connection(
    port: int, source: str, context: ssl.SSLContext | None = None
) -> http.client.HTTPConnection:
    if context is None:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    return http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0), context=context
    )


def sign_in(port: int, source: str, context: ssl.SSLContext | None = None) -> dict[str, str]:
    """Sign in as alice from ``source``; return the headers of the answers on the way."""
    conn = connection(port, source, context)
    try:
        conn.request("GET", "/login")
        page = conn.getresponse()
        body = page.read().decode()
        assert page.status == 200, (page.status, body[:200])
        cookie = page.getheader("Set-Cookie", "")
        match = _TOKEN.search(body)
        assert match and cookie
        form = urlencode({"name": "alice", "password": PASSWORD, "csrf_token": match.group(1)})
        conn.request(
            "POST",
            "/login",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": cookie.split(";", 1)[0],
                # A browser sends it on a same-site form post; over HTTPS the CSRF check
                # also wants it to name this site.
                "Referer": f"{'https' if context else 'http'}://127.0.0.1:{port}/login",
            },
        )
        signed = conn.getresponse()
        signed.read()
        assert signed.status == 302, signed.status
        session = signed.getheader("Set-Cookie", "")
        conn.request("GET", "/", headers={"Cookie": session.split(";", 1)[0]})
        day = conn.getresponse()
        day.read()
        assert day.status == 200, day.status
        return {
            "login": str(page.getheader("Strict-Transport-Security", "")),
            "cookie": session,
            "day": str(day.getheader("Strict-Transport-Security", "")),
        }
    finally:
        conn.close()


def flood(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """``count`` connections from ``source`` that never send a byte."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sockets.append(sock)
    return sockets


def refused(sockets: list[socket.socket], wait: float) -> list[bytes]:
    """What each of ``sockets`` the server closed said before closing (the rest: skipped)."""
    said = []
    for sock in sockets:
        data, _, closed = read_until_closed(sock, wait)
        if closed:
            said.append(data)
    return said


def test_one_address_flooding_does_not_lock_out_another(door: ClinicServer) -> None:
    port = door.web_port
    idle = flood(port, 110)
    try:
        # The first 20 are served (and wait for a request), the other 90 are refused at once.
        said = refused(idle[20:], wait=5)
        assert len(said) == 90
        assert all(s == b"" or s.startswith(b"HTTP/1.1 503 ") for s in said)
        assert any(s.startswith(b"HTTP/1.1 503 ") for s in said)
        assert refused(idle[:20], wait=0.2) == []
        # Another address signs in at once while the flood holds its share.
        started = time.monotonic()
        sign_in(port, "127.0.0.2")
        assert time.monotonic() - started < 2.0
        # The flooding address itself gets nothing more until its connections end.
        extra = flood(port, 1)
        assert refused(extra, wait=5) != []
    finally:
        for sock in idle:
            sock.close()
    # Once they are closed, its share is free again.
    assert holds_within(lambda: _served(port, "127.0.0.1"), timeout=10)


def _served(port: int, source: str) -> bool:
    conn = connection(port, source)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@pytest.fixture
def quick_door(settings: Settings) -> Iterator[ClinicServer]:
    """Short idle deadline and small shares, to watch them work."""
    yield from running(
        dataclasses.replace(
            settings, web_idle_timeout=2, web_max_connections=6, web_max_connections_per_address=3
        )
    )


def test_idle_keep_alive_connections_are_closed(quick_door: ClinicServer) -> None:
    port = quick_door.web_port
    silent = flood(port, 1)[0]
    kept = connection(port, "127.0.0.1")
    kept.request("GET", "/healthz")  # HTTP/1.1: the connection stays open afterwards
    answer = kept.getresponse()
    assert answer.status == 200 and answer.read()
    assert kept.sock is not None
    # Both are closed after the idle deadline (2 s, checked every second), not kept for ever.
    for sock in (silent, kept.sock):
        data, took, closed = read_until_closed(sock, timeout=10)
        assert closed and data == b"" and took < 6, (took, data)
    silent.close()
    kept.close()


def test_the_total_is_shared_by_addresses(quick_door: ClinicServer) -> None:
    port = quick_door.web_port
    first = flood(port, 3, "127.0.0.1")
    second = flood(port, 3, "127.0.0.2")
    try:
        assert refused(first + second, wait=0.3) == []
        # The door is full (6): a third address is refused too, with 503.
        [said] = refused(flood(port, 1, "127.0.0.3"), wait=5)
        assert said.startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in first + second:
            sock.close()
    assert holds_within(lambda: _served(port, "127.0.0.3"), timeout=10)


# -- HTTPS -------------------------------------------------------------------------------


@pytest.fixture
def tls_door(settings: Settings, tmp_path: Path) -> Iterator[tuple[ClinicServer, ssl.SSLContext]]:
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    client = ssl.create_default_context(cafile=str(pki.ca))
    secured = dataclasses.replace(
        settings,
        web_tls_cert=str(pki.server_cert),
        web_tls_key=str(pki.server_key),
        web_tls_handshake_timeout=2,
        web_max_connections=10,
        web_max_connections_per_address=4,
    )
    for server in running(secured):
        yield server, client


def test_https_with_hsts_and_secure_cookies(
    tls_door: tuple[ClinicServer, ssl.SSLContext],
) -> None:
    server, context = tls_door
    seen = sign_in(server.web_port, "127.0.0.1", context)
    assert seen["login"] == seen["day"] == "max-age=31536000"
    cookie = seen["cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    # Plain HTTP on the HTTPS port is not served.
    plain = socket.create_connection(("127.0.0.1", server.web_port))
    plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data, _, closed = read_until_closed(plain, timeout=10)
    plain.close()
    assert closed and b"200 OK" not in data


def test_a_silent_tls_client_stalls_no_one(tls_door: tuple[ClinicServer, ssl.SSLContext]) -> None:
    server, context = tls_door
    silent = flood(server.web_port, 2)  # connect, never start the handshake
    try:
        started = time.monotonic()
        sign_in(server.web_port, "127.0.0.2", context)
        assert time.monotonic() - started < 2.0
        # Each is closed at its handshake deadline (2 s).
        for sock in silent:
            _, took, closed = read_until_closed(sock, timeout=10)
            assert closed and took < 6
    finally:
        for sock in silent:
            sock.close()


def test_tls_connections_count_against_their_own_address(
    tls_door: tuple[ClinicServer, ssl.SSLContext],
) -> None:
    server, context = tls_door
    port = server.web_port
    held = []
    for _ in range(4):  # 127.0.0.1's whole share, handshaken and idle
        conn = connection(port, "127.0.0.1", context)
        conn.connect()
        held.append(conn)
    try:
        extra = flood(port, 1)
        assert refused(extra, wait=5) == [b""]  # over HTTPS: closed without a word
        sign_in(port, "127.0.0.2", context)  # the address is the client's, not the relay's
    finally:
        for conn in held:
            conn.close()


# -- settings ------------------------------------------------------------------------------


def test_web_settings(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text(
        "[web]\nmax_connections = 50\nmax_connections_per_address = 10\nidle_timeout = 5\n",
        encoding="utf-8",
    )
    settings = load_settings(config, {})
    assert (settings.web_max_connections, settings.web_max_connections_per_address) == (50, 10)
    assert settings.web_idle_timeout == 5
    config.write_text("[web]\nmax_connections_per_address = 100\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="max_connections_per_address.*below"):
        load_settings(config, {})
    config.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="go together"):
        load_settings(config, {"CLINIC_WEB_TLS_CERT": str(config)})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(
            config, {"CLINIC_WEB_TLS_CERT": str(config), "CLINIC_WEB_TLS_KEY": "/nonexistent"}
        )
    pki = make_pki(tmp_path)
    settings = load_settings(
        config,
        {"CLINIC_WEB_TLS_CERT": str(pki.server_cert), "CLINIC_WEB_TLS_KEY": str(pki.server_key)},
    )
    assert settings.web_tls_cert == str(pki.server_cert)
