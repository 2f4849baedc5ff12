"""The web door's HTTP server: waitress, with a fair share per address and optional HTTPS.

waitress serves the Flask application. Around it:

- **Connection limits counted at accept**: at most ``max_connections`` open at once and
  ``max_connections_per_address`` from one client address (below the total). A
  connection past either is answered ``503 Service Unavailable`` and closed at once
  (over HTTPS it is simply closed), so an address that opens a hundred idle
  connections takes its own share and other addresses are still served.
- **Idle keep-alive connections** are closed after ``idle_timeout`` seconds without a
  request (waitress's ``channel_timeout``, checked every few seconds).
- **HTTPS without a proxy**: waitress speaks only plain HTTP, so each TLS connection
  gets a thread that runs the handshake under its own deadline (a silent client stalls
  no one) and then relays the decrypted bytes to waitress over a socket pair; waitress
  sees the client's real address and serves the request as ``https``.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

log = logging.getLogger(__name__)

#: What a connection past its address's share (or the total) is told before it is closed.
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n"
    b"Content-Length: 52\r\n"
    b"\r\n"
    b"Too many connections from your address; try again.\n"
)
#: How long the TLS relay waits for a peer that does not take what it is sent.
RELAY_SEND_TIMEOUT = 120.0
_CHUNK = 65536


@dataclass(frozen=True)
class DoorLimits:
    """The web door's guards (``[web]`` in ``config/clinic.toml``)."""

    max_connections: int = 100
    max_connections_per_address: int = 20
    idle_timeout: float = 15.0
    tls_handshake_timeout: float = 10.0


class ConnectionSlots:
    """Open connections, in all and per client address; thread-safe.

    Parameters
    ----------
    total : int
        Connections allowed at once.
    per_address : int
        Connections allowed at once from one address.
    """

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self._open: dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()

    def take(self, address: str) -> bool:
        """Count a new connection from ``address``; ``False`` (not counted) when over a limit."""
        with self._lock:
            held = self._open.get(address, 0)
            if self._count >= self.total or held >= self.per_address:
                return False
            self._open[address] = held + 1
            self._count += 1
            return True

    def give_back(self, address: str) -> None:
        """A connection from ``address`` ended."""
        with self._lock:
            held = self._open.get(address, 0) - 1
            if held > 0:
                self._open[address] = held
            else:
                self._open.pop(address, None)
            self._count = max(0, self._count - 1)

    def held(self, address: str | None = None) -> int:
        """Connections open from ``address``, or in all."""
        with self._lock:
            return self._count if address is None else self._open.get(address, 0)


class _Channel(HTTPChannel):  # type: ignore[misc]
    """waitress's channel that gives its connection slot back when it closes."""

    release: Callable[[], None] | None = None

    def del_channel(self, map: Any = None) -> None:
        super().del_channel(map)
        release, self.release = self.release, None
        if release is not None:
            release()


class GuardedServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server with per-address connection slots and optional TLS.

    Parameters
    ----------
    application : callable
        The WSGI application.
    limits : DoorLimits
        The guards.
    tls : ssl.SSLContext, optional
        Serve HTTPS with this server context; plain HTTP without.
    **kw
        waitress adjustments (``host``, ``port``, ``threads`` ...).
    """

    channel_class = _Channel

    def __init__(
        self,
        application: Any,
        limits: DoorLimits,
        tls: ssl.SSLContext | None = None,
        **kw: Any,
    ) -> None:
        self.limits = limits
        self.tls = tls
        self.slots = ConnectionSlots(limits.max_connections, limits.max_connections_per_address)
        self._refused = 0
        self._refusal_logged = 0.0
        super().__init__(
            application,
            # waitress's own limit counts its listening socket and wake-up pipe too, and
            # past it stops accepting (connections wait unanswered in the backlog). Ours,
            # counted at accept with TLS handshakes included, refuses first.
            connection_limit=limits.max_connections + 3,
            channel_timeout=max(1, round(limits.idle_timeout)),
            cleanup_interval=max(1, round(limits.idle_timeout / 3)),
            url_scheme="https" if tls is not None else "http",
            **kw,
        )

    def handle_accept(self) -> None:
        """Accept one connection: refuse it past a limit, else serve it (TLS in a thread)."""
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:
            return
        addr = self.fix_addr(addr)
        host = str(addr[0])
        if not self.slots.take(host):
            self._refuse(conn, host)
            return

        def release() -> None:
            self.slots.give_back(host)

        if self.tls is None:
            try:
                channel = self.channel_class(self, conn, addr, self.adj, map=self._map)
            except OSError:  # the peer is already gone
                conn.close()
                release()
                return
            channel.release = release
            return
        threading.Thread(
            target=self._serve_tls,
            args=(conn, addr, release),
            name=f"web-tls-{host}",
            daemon=True,
        ).start()

    def _refuse(self, conn: socket.socket, host: str) -> None:
        """Answer 503 (plain HTTP) and close; log at most every 10 s, never per connection."""
        try:
            if self.tls is None:
                conn.setblocking(False)
                conn.send(BUSY_RESPONSE)
                conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            conn.close()
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= 10.0:
            log.warning(
                "web: connection limit reached (last refused from %s; %d refused so far): "
                "%d per address, %d in all",
                host,
                self._refused,
                self.slots.per_address,
                self.slots.total,
            )
            self._refusal_logged = now

    def _serve_tls(self, raw: socket.socket, addr: Any, release: Callable[[], None]) -> None:
        """Handshake (under its deadline), then relay between the client and waitress."""
        assert self.tls is not None
        try:
            raw.setblocking(True)
            raw.settimeout(self.limits.tls_handshake_timeout)
            tls = self.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.info("web: TLS handshake with %s failed: %s", addr[0], type(exc).__name__)
            raw.close()
            release()
            return
        inner, outer = socket.socketpair()

        def open_channel() -> None:  # runs in waitress's loop thread
            try:
                self.channel_class(self, inner, addr, self.adj, map=self._map)
            except OSError:
                inner.close()

        try:
            self.trigger.pull_trigger(open_channel)
            _relay(tls, outer, max(self.limits.idle_timeout, RELAY_SEND_TIMEOUT))
        finally:
            for end in (tls, outer):
                with contextlib.suppress(OSError):
                    end.close()
            release()


def _relay(tls: ssl.SSLSocket, plain: socket.socket, send_timeout: float) -> None:
    """Copy bytes both ways until either side closes (or stops taking bytes)."""
    tls.settimeout(send_timeout)
    plain.settimeout(send_timeout)
    with selectors.DefaultSelector() as selector:
        selector.register(tls, selectors.EVENT_READ)
        selector.register(plain, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                try:
                    if key.fileobj is tls:
                        data = tls.recv(_CHUNK)
                        while data and tls.pending():
                            data += tls.recv(tls.pending())
                        if not data:
                            return
                        plain.sendall(data)
                    else:
                        data = plain.recv(_CHUNK)
                        if not data:
                            return
                        tls.sendall(data)
                except (OSError, ValueError):  # reset, timeout, TLS alert
                    return


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for the web door: TLS 1.2 or newer, the given certificate and key.

    Raises
    ------
    OSError
        When the files cannot be read or do not hold a matching certificate and key.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def create_web_server(
    app: Any,
    host: str,
    port: int,
    limits: DoorLimits,
    tls: ssl.SSLContext | None = None,
    threads: int = 8,
) -> GuardedServer:
    """Bind the web door's server (it serves once ``run`` is called in a thread).

    Parameters
    ----------
    app : callable
        The WSGI application.
    host, port : str, int
        Where to listen (port 0: a free port, see ``effective_port``).
    limits : DoorLimits
        Connection limits and deadlines.
    tls : ssl.SSLContext, optional
        HTTPS with this context; plain HTTP without.
    threads : int
        Requests served at once.

    Returns
    -------
    GuardedServer
        The bound server.
    """
    return GuardedServer(app, limits, tls, host=host, port=port, threads=threads)
