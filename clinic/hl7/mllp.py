"""A threaded MLLP listener: HL7 messages framed as ``0x0B message 0x1C 0x0D`` over TCP.

Each connection may carry many messages, each answered before the next is read. The
listener guards itself against the usual ways a peer can hurt it: a message larger
than ``max_message_bytes`` is refused without being buffered, a frame must arrive
within ``frame_timeout`` with no pause longer than ``read_timeout``, an idle
connection is closed after ``idle_timeout``, and at most ``max_connections`` are
served at once, at most ``max_connections_per_address`` of them from one peer address
(counted on arrival; the excess is closed at once), so one address cannot take the door.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from clinic.waking import WakingServerMixin

log = logging.getLogger(__name__)

START_BLOCK = 0x0B
END_BLOCK = 0x1C
CARRIAGE_RETURN = 0x0D
_BETWEEN_FRAMES = b"\r\n\t "  # tolerated between frames (some senders add a newline)
_HEAD_BYTES = 4096  # kept of a refused message, to echo its control ID
_CHUNK = 65536
#: Waiting connections the kernel queues for the accepting thread (listen backlog).
LISTEN_BACKLOG = 128


class MessageHandler(Protocol):
    """What the listener hands each message to."""

    def handle(self, raw: bytes) -> bytes:
        """Return the answer to one message (without framing); empty bytes send nothing."""

    def refuse(self, prefix: bytes, reason: str) -> bytes:
        """Return the answer to a message that is refused unread (without framing)."""


@dataclass
class _Frame:
    data: bytes
    refusal: str = ""  # non-empty: answer with handler.refuse
    close_after: bool = False


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    peer: str
    buffer: bytearray = field(default_factory=bytearray)
    busy: bool = False  # a complete message is being handled and answered


class _TcpServer(WakingServerMixin, socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], listener: MllpListener) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.listener = listener
        super().__init__(address, _RequestHandler)

    def verify_request(self, request: object, client_address: object) -> bool:
        return self.listener._admit(client_address)


class _RequestHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        assert isinstance(self.request, socket.socket)
        self.server.listener._serve(self.request, self.client_address)


class MllpListener:
    """Serve HL7 over MLLP on ``host``:``port`` (port 0 picks a free one).

    Parameters
    ----------
    host, port : str, int
        Where to listen.
    handler : MessageHandler
        Answers each message.
    max_message_bytes : int
        Larger messages are refused (answered by ``handler.refuse``) unbuffered.
    read_timeout : float
        Longest pause, in seconds, inside a frame before the connection is dropped.
    idle_timeout : float
        Longest wait, in seconds, for the next message on an open connection.
    frame_timeout : float
        Longest time, in seconds, one frame may take to arrive (stops trickling peers).
    max_connections : int
        Connections served at once; more are closed on arrival.
    max_connections_per_address : int
        Connections served at once for one peer address (at most ``max_connections``);
        more from that address are closed on arrival.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: MessageHandler,
        *,
        max_message_bytes: int = 1 << 20,
        read_timeout: float = 30.0,
        idle_timeout: float = 300.0,
        frame_timeout: float = 120.0,
        max_connections: int = 32,
        max_connections_per_address: int = 4,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.max_connections = max_connections
        self.max_connections_per_address = min(max_connections_per_address, max_connections)
        # A peer that streams past a refused message is cut off after this much.
        self.max_discard_bytes = 16 * max_message_bytes
        self._server: _TcpServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Notified whenever a connection ends: stop() waits on it, not on a poll.
        self._closed = threading.Condition(self._lock)
        self._connections: set[_Connection] = set()
        self._admitted = 0
        self._admitted_by_address: dict[str, int] = {}
        self._stopping = False

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`)."""
        return int(self._server.server_address[1]) if self._server is not None else 0

    def start(self) -> None:
        """Bind and start accepting in a background thread.

        Raises
        ------
        OSError
            When the address cannot be bound (e.g. the port is taken).
        """
        self._server = _TcpServer((self.host, self.requested_port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="hl7-mllp")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let messages being answered finish, close every connection.

        Parameters
        ----------
        grace : float
            Seconds to wait for answers in progress before connections are cut.
        """
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=grace)
        with self._lock:
            self._stopping = True
            for conn in self._connections:
                if not conn.busy:  # waiting for a message: nothing is lost by closing
                    _shut(conn.sock)
            self._closed.wait_for(lambda: not self._connections, timeout=grace)
            for conn in self._connections:
                _shut(conn.sock)
        self._server = None

    # -- connections -----------------------------------------------------------------

    def _admit(self, client_address: object) -> bool:
        """Count a connection on arrival (in the accepting thread); False closes it."""
        address = _address(client_address)
        with self._lock:
            if self._stopping:
                return False
            from_address = self._admitted_by_address.get(address, 0)
            if self._admitted >= self.max_connections:
                log.warning("HL7 connection refused: %d connections open", self._admitted)
                return False
            if from_address >= self.max_connections_per_address:
                log.warning(
                    "HL7 connection from %s refused: %d connections open from this address",
                    address,
                    from_address,
                )
                return False
            self._admitted += 1
            self._admitted_by_address[address] = from_address + 1
            return True

    def _release(self, address: str) -> None:
        """A counted connection ended (call with the lock held)."""
        self._admitted -= 1
        left = self._admitted_by_address.get(address, 0) - 1
        if left > 0:
            self._admitted_by_address[address] = left
        else:
            self._admitted_by_address.pop(address, None)

    def _serve(self, sock: socket.socket, address: object) -> None:
        peer = _peer(address)
        conn = _Connection(sock, peer)
        with self._lock:
            self._connections.add(conn)
        log.debug("HL7 connection from %s", peer)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._converse(conn)
        except OSError as exc:
            log.debug("HL7 connection from %s ended: %s", peer, exc)
        except Exception as exc:  # a handler bug ends this connection, not the listener
            log.error("HL7 connection from %s failed (%s)", peer, type(exc).__name__)
        finally:
            with self._lock:
                self._connections.discard(conn)
                self._release(_address(address))
                self._closed.notify_all()
            log.debug("HL7 connection from %s closed", peer)

    def _converse(self, conn: _Connection) -> None:
        while True:
            frame = self._next_frame(conn)
            if frame is None:
                return
            with self._lock:
                if self._stopping:
                    return
                conn.busy = True
            try:
                if frame.refusal:
                    log.warning("HL7 from %s: %s", conn.peer, frame.refusal)
                    answer = self.handler.refuse(frame.data, frame.refusal)
                else:
                    answer = self.handler.handle(frame.data)
                conn.sock.settimeout(self.read_timeout)
                if answer:  # empty: the sender asked for no acknowledgement (MSH-15/16 NE)
                    conn.sock.sendall(
                        bytes([START_BLOCK]) + answer + bytes([END_BLOCK, CARRIAGE_RETURN])
                    )
            finally:
                with self._lock:
                    conn.busy = False
            if frame.close_after or self._stopping:
                return

    def _fill(self, conn: _Connection, timeout: float) -> bool:
        """Read more into the connection's buffer; False on close or timeout."""
        conn.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = conn.sock.recv(_CHUNK)
        except TimeoutError:
            return False
        if not chunk:
            return False
        conn.buffer += chunk
        return True

    def _next_frame(self, conn: _Connection) -> _Frame | None:
        """Return the next message, a refusal to answer, or None when the peer is gone."""
        buffer = conn.buffer
        while True:
            start = 0
            while start < len(buffer) and buffer[start] in _BETWEEN_FRAMES:
                start += 1
            del buffer[:start]
            if buffer:
                break
            if not self._fill(conn, self.idle_timeout):
                return None
        if buffer[0] != START_BLOCK:
            # Without a start block the frame boundaries cannot be found again: answer
            # once and hang up.
            head = bytes(buffer[:_HEAD_BYTES])
            buffer.clear()
            return _Frame(head, "data is not framed by MLLP (no 0x0B start block)", True)
        del buffer[0]
        deadline = time.monotonic() + self.frame_timeout
        searched = 0
        discarded = 0
        head = b""
        while True:
            end = buffer.find(END_BLOCK, searched)
            size = discarded + (end if end >= 0 else len(buffer))
            if not head and size > self.max_message_bytes:
                head = bytes(buffer[:_HEAD_BYTES])
            if end >= 0:
                data = head if head else bytes(buffer[:end])
                del buffer[: end + 1]
                if head:
                    return _Frame(data, self._too_big())
                return _Frame(data)
            if head:
                # Refused already: drop what arrives instead of keeping it.
                discarded += len(buffer)
                buffer.clear()
                if discarded > self.max_discard_bytes:
                    return _Frame(head, self._too_big(), close_after=True)
            searched = len(buffer)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._fill(conn, min(self.read_timeout, remaining)):
                log.info("HL7 connection from %s: incomplete message dropped", conn.peer)
                return None

    def _too_big(self) -> str:
        return f"message is larger than {self.max_message_bytes} bytes"


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _address(address: object) -> str:
    """The peer address that per-address limits count (no port; IPv4-mapped as IPv4)."""
    host = address[0] if isinstance(address, tuple) and address else str(address)
    host = str(host)
    if host.startswith("::ffff:") and "." in host:
        return host[len("::ffff:") :]
    return host


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
