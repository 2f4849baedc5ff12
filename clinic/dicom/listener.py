"""Guarded DICOM listeners: the association server both DICOM doors run on.

pynetdicom trusts what a peer declares and waits as long as a peer likes. This module
closes those gaps without changing pynetdicom itself:

- a PDU whose declared length exceeds what we accept is refused after its 6-byte header
  (A-ABORT, connection closed), so memory stays flat whatever the claim;
- every read has an idle deadline, every PDU a deadline from its first byte to its last,
  and the association as a whole a deadline, so idle or trickling peers cannot hold slots;
- past ``max_associations`` new associations get A-ASSOCIATE-RJ (rejected-transient,
  pynetdicom's own check); far past it connections are closed on arrival;
- TLS (BCP 195: TLS 1.2 or newer) is negotiated in the association's own thread under
  its own timeout, never in the accepting thread;
- hosts and calling AE titles are checked before the association is accepted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import EventHandlerType
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, A_P_ABORT
from pynetdicom.transport import (
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)
from pynetdicom.utils import make_target

from clinic.config import ConfigError, ListenerSettings
from clinic.dicom.reactors import WakingAssociation

log = logging.getLogger(__name__)

#: Largest A-ASSOCIATE-RQ accepted (before a maximum PDU length is negotiated).
ASSOCIATE_RQ_LIMIT = 64 * 1024
#: Tolerance over the negotiated maximum: some peers count the PDV item header in it.
PDU_SLACK = 1024
#: Used when the AE announces no limit (maximum_pdu_size 0).
UNLIMITED_PDU_CAP = 4 * 1024 * 1024
#: Connections beyond ``max_associations * CONNECTION_FACTOR`` are closed on arrival.
CONNECTION_FACTOR = 2

# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # permanent, service user, calling AE not recognised
REJECT_NO_REASON = (0x01, 0x01, 0x01)  # permanent, service user, no reason given

_HEADER = struct.Struct(">BBL")


@dataclass(frozen=True)
class TlsFiles:
    """Where a listener's TLS material lives.

    Attributes
    ----------
    cert, key : Path
        The server certificate (PEM, chain allowed) and its private key.
    ca : Path or None
        CA certificates that client certificates are checked against.
    require_client_cert : bool
        Refuse peers without a certificate signed by ``ca``.
    """

    cert: Path
    key: Path
    ca: Path | None = None
    require_client_cert: bool = False


def server_tls_context(files: TlsFiles) -> ssl.SSLContext:
    """Build the server side TLS context of the PS3.15 BCP 195 profile.

    Parameters
    ----------
    files : TlsFiles
        Certificate, key and optional client CA.

    Returns
    -------
    ssl.SSLContext
        TLS 1.2 minimum, the system's secure cipher defaults, client certificates
        verified against ``files.ca`` (required when ``files.require_client_cert``).

    Raises
    ------
    OSError, ssl.SSLError
        When a file cannot be read or the key does not match the certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key)
    if files.ca is not None:
        context.load_verify_locations(cafile=str(files.ca))
        context.verify_mode = ssl.CERT_REQUIRED if files.require_client_cert else ssl.CERT_OPTIONAL
    return context


Admit = Callable[[str, str], bool]


@dataclass(frozen=True)
class ListenerPolicy:
    """Limits and checks of one DICOM listener.

    Attributes
    ----------
    name : str
        The door's name in log lines (``worklist``, ``print``).
    max_associations : int
        Associations served at once; more get A-ASSOCIATE-RJ (transient).
    association_timeout : float
        Seconds an association may last from connection to close.
    pdu_timeout : float
        Seconds one PDU may take from its first byte to its last.
    idle_timeout : float
        Seconds without any traffic before the association is aborted (also the
        longest wait for the A-ASSOCIATE-RQ).
    tls_handshake_timeout : float
        Seconds a TLS handshake may take.
    tls : ssl.SSLContext or None
        Serve TLS with this context; ``None`` serves plain TCP.
    allowed_hosts : tuple of networks
        Peer addresses allowed to associate; empty allows every address.
    admit : callable or None
        ``admit(calling_ae, called_ae)``: whether the calling AE may associate;
        ``None`` admits every calling AE.
    """

    name: str
    max_associations: int = 50
    association_timeout: float = 3600.0
    pdu_timeout: float = 60.0
    idle_timeout: float = 60.0
    tls_handshake_timeout: float = 10.0
    tls: ssl.SSLContext | None = None
    allowed_hosts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    admit: Admit | None = field(default=None, compare=False)

    def host_allowed(self, address: str) -> bool:
        """Whether a peer at ``address`` may associate."""
        if not self.allowed_hosts:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allowed_hosts)


def parse_hosts(
    values: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Turn addresses or networks (``192.168.1.20``, ``10.0.0.0/24``) into networks.

    Raises
    ------
    ValueError
        When a value is neither.
    """
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


class GuardedSocket(AssociationSocket):
    """An association socket that enforces size limits and deadlines on every read.

    pynetdicom's DUL reads a PDU as ``recv(6)`` then ``recv(length)``; this class
    follows that framing, refuses oversized PDUs after their header and never blocks
    longer than the nearest deadline.
    """

    def __init__(self, assoc: Association, client_socket: socket.socket, policy: ListenerPolicy):
        super().__init__(assoc, client_socket=client_socket)
        self.policy = policy
        now = time.monotonic()
        self._association_deadline = now + policy.association_timeout
        self._last_traffic = now
        self._pdu_deadline: float | None = None
        self._expect_body = False
        self._body_type = 0
        self._dead = False  # nothing more is read
        self._gave_up = False
        self._rq_seen = False
        self._lock = threading.Lock()

    # -- limits -----------------------------------------------------------------------

    def pdu_limit(self) -> int:
        """Largest PDU length (after the header) accepted now."""
        if not self.assoc.is_established:
            return ASSOCIATE_RQ_LIMIT
        announced = self.assoc.acceptor.maximum_length or UNLIMITED_PDU_CAP
        return announced + PDU_SLACK

    def _peer(self) -> str:
        info = self.assoc.requestor.address_info
        return info.address if info is not None else "?"

    def give_up(self, reason: str, level: int = logging.WARNING) -> None:
        """Abort: send an A-ABORT (best effort), shut the connection, stop reading.

        The DUL then sees a closed transport; an acceptor still waiting for its
        A-ASSOCIATE-RQ is released at once instead of after the ACSE timeout.

        Parameters
        ----------
        reason : str
            Why, for the log (no patient data).
        level : int
            Log level of the line.
        """
        with self._lock:
            self._dead = True
            if self._gave_up:
                return
            self._gave_up = True
        log.log(level, "%s association from %s ended: %s", self.policy.name, self._peer(), reason)
        sock = self.socket
        if sock is not None:
            abort = A_ABORT_RQ()
            abort.source = 0x02  # service provider
            abort.reason_diagnostic = 0x00
            with contextlib.suppress(OSError, ValueError):
                sock.settimeout(1.0)
                sock.sendall(abort.encode())
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if not self._rq_seen:
            # The acceptor thread waits on this queue for the A-ASSOCIATE indication.
            self.assoc.dul.to_user_queue.put(A_P_ABORT())

    def _deadline_passed(self, now: float) -> str:
        if now >= self._association_deadline:
            return f"association lasted more than {self.policy.association_timeout:g} s"
        if now - self._last_traffic >= self.policy.idle_timeout:
            return f"no traffic for {self.policy.idle_timeout:g} s"
        if self._pdu_deadline is not None and now >= self._pdu_deadline:
            return f"PDU not complete within {self.policy.pdu_timeout:g} s"
        return ""

    # -- AssociationSocket ------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether data is waiting; also where idle and whole-association deadlines fire."""
        if self._dead:
            return False
        reason = self._deadline_passed(time.monotonic())
        if reason:
            self.give_up(reason)
            # The DUL treats a short read as a closed transport.
            return True
        return bool(super().ready)

    def recv(self, nr_bytes: int) -> bytearray:
        """Read ``nr_bytes`` (header or body of one PDU) within the deadlines."""
        if self._dead:
            return bytearray()
        if not self._expect_body:
            self._pdu_deadline = time.monotonic() + self.policy.pdu_timeout
        data = self._read(nr_bytes)
        if len(data) < nr_bytes:
            return data
        if self._expect_body:
            self._expect_body = False
            self._pdu_deadline = None
            if self._body_type == 0x01:
                self._rq_seen = True
            return data
        pdu_type, _, length = _HEADER.unpack(bytes(data[:6]))
        limit = self.pdu_limit()
        if length > limit:
            # Refused on its header: the body is never read, the DUL sees a closed transport.
            self.give_up(f"PDU type 0x{pdu_type:02X} declares {length} bytes, limit {limit}")
            return bytearray()
        self._expect_body = True
        self._body_type = pdu_type
        return data

    def _read(self, nr_bytes: int) -> bytearray:
        sock = cast(socket.socket, self.socket)
        out = bytearray()
        while len(out) < nr_bytes:
            now = time.monotonic()
            reason = self._deadline_passed(now)
            if reason:
                self.give_up(reason)
                return out
            limits = [
                self._association_deadline - now,
                self._last_traffic + self.policy.idle_timeout - now,
            ]
            if self._pdu_deadline is not None:
                limits.append(self._pdu_deadline - now)
            try:
                sock.settimeout(max(0.01, min(limits)))
                chunk = sock.recv(min(65536, nr_bytes - len(out)))
            except TimeoutError:
                continue  # the loop names the deadline that passed
            except (OSError, ValueError):
                self._dead = True
                return out
            if not chunk:
                self._dead = True
                if not self._rq_seen:
                    self.give_up("closed before the association request", logging.INFO)
                return out
            self._last_traffic = time.monotonic()
            out.extend(chunk)
        return out

    def send(self, bytestream: bytes) -> None:
        """Send within the idle deadline (a peer that never reads cannot block us)."""
        sock = self.socket
        if sock is not None and not self._dead:
            with contextlib.suppress(OSError, ValueError):
                sock.settimeout(self.policy.idle_timeout)
        super().send(bytestream)
        self._last_traffic = time.monotonic()


class GuardedRequestHandler(RequestHandler):
    """Runs in the connection's own thread: TLS handshake, then the association."""

    server: GuardedServer

    def handle(self) -> None:
        """Wrap the connection in TLS if configured, then start the association."""
        server = self.server
        try:
            if server.policy.tls is not None:
                self.request = self._handshake(cast(socket.socket, self.request))
                if self.request is None:
                    return
            super().handle()
        finally:
            server.connection_started()

    def _handshake(self, raw: socket.socket) -> Any:
        policy = self.server.policy
        assert policy.tls is not None
        peer = self.client_address[0] if isinstance(self.client_address, tuple) else "?"
        try:
            raw.settimeout(policy.tls_handshake_timeout)
            return policy.tls.wrap_socket(raw, server_side=True)
        except (OSError, ValueError) as exc:
            log.warning(
                "%s TLS handshake with %s failed: %s", policy.name, peer, type(exc).__name__
            )
            with contextlib.suppress(OSError):
                raw.close()
            return None

    def _create_association(self) -> Association:
        # pynetdicom's own set-up, with a GuardedSocket in place of AssociationSocket.
        assoc = WakingAssociation(self.ae, "acceptor")
        assoc._server = self.server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        assoc.set_socket(GuardedSocket(assoc, self.request, self.server.policy))
        # Waiting for the A-ASSOCIATE-RQ is bounded by the idle deadline.
        assoc.acse_timeout = min(self.server.policy.idle_timeout, self.ae.acse_timeout or 1e9)
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        assoc.acceptor.supported_contexts = deepcopy(self.server.contexts)
        assoc.requestor.address_info = self.remote
        for event, handlers in self.server._handlers.items():
            if event.is_intervention and handlers:
                assoc.bind(event, *cast(tuple[Any, Any], handlers))
            elif isinstance(event, evt.NotificationEvent):
                for handler in cast(list[tuple[Any, Any]], handlers):
                    assoc.bind(event, handler[0], handler[1])
        return assoc


class GuardedServer(ThreadedAssociationServer):
    """A threaded association server applying a :class:`ListenerPolicy`."""

    def __init__(
        self,
        ae: AE,
        address: tuple[str, int],
        ae_title: str,
        contexts: Any,
        ssl_context: Any = None,
        evt_handlers: list[EventHandlerType] | None = None,
        *,
        policy: ListenerPolicy,
    ) -> None:
        self.policy = policy
        self._pending = 0
        self._pending_lock = threading.Lock()
        # ssl_context stays None: pynetdicom would handshake in the accepting thread.
        super().__init__(
            ae,
            address,
            ae_title,
            contexts,
            None,
            evt_handlers=[*(evt_handlers or []), (evt.EVT_REQUESTED, self._check_request)],
            request_handler=GuardedRequestHandler,
        )

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Close connections far past the association limit on arrival."""
        cap = self.policy.max_associations * CONNECTION_FACTOR
        with self._pending_lock:
            open_now = self._pending + len(self.active_associations)
            if open_now >= cap:
                log.warning(
                    "%s connection from %s closed: %d connections open",
                    self.policy.name,
                    client_address[0] if isinstance(client_address, tuple) else "?",
                    open_now,
                )
                return False
            self._pending += 1
        return True

    def connection_started(self) -> None:
        """The handler thread is done: the association thread (if any) now counts."""
        with self._pending_lock:
            self._pending -= 1

    def _check_request(self, event: evt.Event) -> None:
        """EVT_REQUESTED: refuse hosts and calling AE titles the policy does not admit."""
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        if not isinstance(primitive, A_ASSOCIATE):
            # GuardedSocket gave up before an A-ASSOCIATE-RQ arrived.
            assoc.is_aborted = True
            assoc.kill()
            return
        address = assoc.requestor.address
        calling = str(primitive.calling_ae_title).strip()
        called = str(primitive.called_ae_title).strip()
        refusal: tuple[int, int, int] | None = None
        if not self.policy.host_allowed(address):
            refusal = REJECT_NO_REASON
            log.warning(
                "%s association from %s refused: host not allowed", self.policy.name, address
            )
        elif self.policy.admit is not None and not self.policy.admit(calling, called):
            refusal = REJECT_CALLING_AE
            log.warning(
                "%s association from %s refused: calling AE %s may not use %s",
                self.policy.name,
                address,
                calling,
                called,
            )
        if refusal is None:
            return
        # What pynetdicom's ACSE does for its own rejections.
        assoc.acse.send_reject(*refusal)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()


def start_guarded_server(
    ae: AE,
    address: tuple[str, int],
    evt_handlers: list[EventHandlerType],
    policy: ListenerPolicy,
) -> GuardedServer:
    """Start ``ae`` listening on ``address`` under ``policy`` (non-blocking).

    Parameters
    ----------
    ae : AE
        The application entity with its supported contexts.
    address : tuple
        ``(host, port)``; port 0 picks a free one.
    evt_handlers : list
        As for ``AE.start_server``.
    policy : ListenerPolicy
        Limits, TLS and admission checks.

    Returns
    -------
    GuardedServer
        The running server; stop it with ``shutdown()``.
    """
    ae.maximum_associations = policy.max_associations
    # pynetdicom's own idle timer ignores what we send; ours counts both ways and
    # fires first, this one stays as a backstop.
    ae.network_timeout = 2 * policy.idle_timeout
    server = cast(
        GuardedServer,
        ae.make_server(
            address, evt_handlers=evt_handlers, server_class=GuardedServer, policy=policy
        ),
    )
    thread = threading.Thread(
        target=make_target(server.serve_forever),
        name=f"AcceptorServer-{policy.name}",
        daemon=True,
    )
    thread.start()
    ae._servers.append(server)
    return server


def policy_from_settings(listener: ListenerSettings, admit: Admit | None) -> ListenerPolicy:
    """Build a listener's policy from its settings.

    Parameters
    ----------
    listener : ListenerSettings
        ``settings.worklist_listener`` or ``settings.print_listener``.
    admit : callable or None
        The door's calling AE check.

    Returns
    -------
    ListenerPolicy

    Raises
    ------
    ConfigError
        When the TLS files cannot be loaded.
    """
    tls = None
    if listener.tls_cert:
        files = TlsFiles(
            cert=Path(listener.tls_cert),
            key=Path(listener.tls_key),
            ca=Path(listener.tls_ca) if listener.tls_ca else None,
            require_client_cert=listener.require_client_cert,
        )
        try:
            tls = server_tls_context(files)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{listener.name} TLS: cannot load {listener.tls_cert}: {exc}"
            ) from exc
    return ListenerPolicy(
        name=listener.name,
        max_associations=listener.max_associations,
        association_timeout=listener.association_timeout,
        pdu_timeout=listener.pdu_timeout,
        idle_timeout=listener.idle_timeout,
        tls_handshake_timeout=listener.tls_handshake_timeout,
        tls=tls,
        allowed_hosts=parse_hosts(listener.allowed_hosts),
        admit=admit,
    )


def set_tcp_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: send each PDU at once instead of waiting on Nagle's algorithm.

    A DIMSE message travels as a command PDU and a data set PDU; with Nagle's algorithm
    and the peer's delayed ACK the second small write waits ~40 ms. Worklist answers
    and print acknowledgements are latency-bound, so the listeners switch it off.
    """
    dul_socket = event.assoc.dul.socket
    sock = getattr(dul_socket, "socket", None)
    if sock is not None:
        # OSError: the peer already closed; nothing to tune.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
