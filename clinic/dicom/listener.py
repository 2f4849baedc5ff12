"""Guarded DICOM listeners: the association server both DICOM doors run on.

pynetdicom trusts what a peer declares and waits as long as a peer likes. This module
closes those gaps without changing pynetdicom itself:

- a PDU whose declared length exceeds what we accept is refused after its 6-byte header
  (A-ABORT, connection closed), so memory stays flat whatever the claim;
- every read has an idle deadline, every PDU a deadline from its first byte to its last,
  and the association as a whole a deadline, so idle or trickling peers cannot hold slots;
- connections are counted when they are accepted, per door and per peer address: past
  ``max_associations`` (or ``max_associations_per_address`` from one address) the
  association request gets A-ASSOCIATE-RJ (rejected-transient, local limit exceeded),
  and far past either limit connections are closed on arrival, so one address cannot
  take the slots of another;
- an association that sends nothing but C-ECHO keep-alives for ``idle_timeout`` is
  ended like an idle one;
- a DIMSE data set is counted as its P-DATA fragments arrive: one larger than
  ``max_dataset_bytes`` (image boxes: ``image_box_bytes``) aborts the association
  before pynetdicom has gathered it;
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
from pynetdicom.transport import AssociationSocket, RequestHandler
from pynetdicom.utils import make_target

from clinic.config import ConfigError, ListenerSettings
from clinic.dicom.reactors import WakingAssociation, WakingAssociationServer

log = logging.getLogger(__name__)

#: Largest A-ASSOCIATE-RQ accepted (before a maximum PDU length is negotiated).
ASSOCIATE_RQ_LIMIT = 64 * 1024
#: Tolerance over the negotiated maximum: some peers count the PDV item header in it.
PDU_SLACK = 1024
#: Used when the AE announces no limit (maximum_pdu_size 0).
UNLIMITED_PDU_CAP = 4 * 1024 * 1024
#: Connections beyond ``max_associations * CONNECTION_FACTOR`` (or that many times the
#: per-address limit from one address) are closed on arrival.
CONNECTION_FACTOR = 2
#: Waiting connections the kernel queues for the accepting thread (listen backlog).
LISTEN_BACKLOG = 128
#: Largest command set accepted (a command is a few hundred bytes).
COMMAND_LIMIT = 64 * 1024
#: DIMSE command fields (PS3.7 E.1): C-ECHO-RQ and N-SET-RQ.
C_ECHO_RQ = 0x0030
N_SET_RQ = 0x0120
#: Grayscale and Color Image Box SOP classes (PS3.4 H.4.3), whose N-SET carries pixels.
IMAGE_BOX_CLASSES = frozenset({"1.2.840.10008.5.1.1.4", "1.2.840.10008.5.1.1.4.1"})

# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # permanent, service user, calling AE not recognised
REJECT_NO_REASON = (0x01, 0x01, 0x01)  # permanent, service user, no reason given
REJECT_LIMIT = (0x02, 0x03, 0x02)  # transient, service provider (presentation), local limit

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
    max_associations_per_address : int
        Associations served at once for one peer address (at most
        ``max_associations``); more from that address get A-ASSOCIATE-RJ (transient).
    max_dataset_bytes : int
        Largest DIMSE data set accepted; a larger one aborts the association.
    image_box_bytes : int or None
        Largest data set of an image box N-SET; ``None`` uses ``max_dataset_bytes``.
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
    max_associations_per_address: int = 10
    max_dataset_bytes: int = 1 << 20
    image_box_bytes: int | None = None
    association_timeout: float = 3600.0
    pdu_timeout: float = 60.0
    idle_timeout: float = 60.0
    tls_handshake_timeout: float = 10.0
    tls: ssl.SSLContext | None = None
    allowed_hosts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    admit: Admit | None = field(default=None, compare=False)

    @property
    def per_address_limit(self) -> int:
        """Associations one address may hold: its own limit, never above the door's."""
        return min(self.max_associations_per_address, self.max_associations)

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


def address_key(client_address: Any) -> str:
    """The peer address that per-address limits count: an IP without port or zone.

    An IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    host = client_address[0] if isinstance(client_address, tuple) else str(client_address)
    host = str(host).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


@dataclass(eq=False)
class Ticket:
    """One accepted connection's place in its door's counts.

    Attributes
    ----------
    address : str
        The peer address it counts against.
    admitted : bool
        Whether it holds an association slot; a connection without one gets
        A-ASSOCIATE-RJ (rejected-transient, local limit exceeded).
    """

    address: str
    admitted: bool
    released: bool = False


def _command_fields(command: bytes) -> tuple[int | None, str]:
    """(Command Field, SOP class UID) of an implicit VR little endian command set."""
    field_value: int | None = None
    sop_class = ""
    offset = 0
    while offset + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHL", command, offset)
        value = command[offset + 8 : offset + 8 + length]
        offset += 8 + length
        if group != 0x0000:
            break
        if element == 0x0100 and len(value) >= 2:
            field_value = struct.unpack_from("<H", value)[0]
        elif element in (0x0002, 0x0003) and not sop_class:
            sop_class = value.rstrip(b"\0 ").decode("ascii", "replace")
    return field_value, sop_class


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
        # A request other than C-ECHO last arrived (or is being answered) at this time.
        self._last_operation = now
        self._in_operation = False
        # The DIMSE message being received: its command so far, its data set's size.
        self._command = bytearray()
        self._dataset_bytes = 0
        self._dataset_limit = policy.max_dataset_bytes

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
        if self._rq_seen and now - self._last_operation >= self.policy.idle_timeout:
            return f"nothing but C-ECHO for {self.policy.idle_timeout:g} s"
        return ""

    def _count_pdata(self, body: bytes | bytearray) -> str:
        """Count a P-DATA-TF body's fragments; the reason to give up, or ``""``.

        Command fragments are gathered (at most :data:`COMMAND_LIMIT` bytes) to learn
        which operation follows; data set fragments are only counted, against the
        limit for that operation, so a data set is refused as soon as it passes it.
        """
        offset = 0
        while offset + 6 <= len(body):
            (item_length,) = struct.unpack_from(">L", body, offset)
            header = body[offset + 5]
            size = max(0, item_length - 2)
            if header & 0x01:  # command fragment
                self._command += body[offset + 6 : offset + 6 + size]
                if len(self._command) > COMMAND_LIMIT:
                    return f"command set larger than {COMMAND_LIMIT} bytes"
                if header & 0x02:
                    self._command_complete()
            else:
                self._dataset_bytes += size
                if self._dataset_bytes > self._dataset_limit:
                    return f"data set larger than {self._dataset_limit} bytes"
                if header & 0x02:
                    self._dataset_bytes = 0
            offset += 4 + item_length
        return ""

    def _command_complete(self) -> None:
        """A whole command arrived: note the operation and the limit of its data set."""
        command_field, sop_class = _command_fields(bytes(self._command))
        self._command.clear()
        self._dataset_bytes = 0
        limit = self.policy.max_dataset_bytes
        if (
            command_field == N_SET_RQ
            and sop_class in IMAGE_BOX_CLASSES
            and self.policy.image_box_bytes is not None
        ):
            limit = self.policy.image_box_bytes
        self._dataset_limit = limit
        self._in_operation = command_field != C_ECHO_RQ
        if self._in_operation:
            self._last_operation = time.monotonic()

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
                self._last_operation = time.monotonic()
            elif self._body_type == 0x04:
                reason = self._count_pdata(data)
                if reason:
                    self.give_up(reason)
                    return bytearray()
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
        if self._in_operation:
            # Answering an operation (a long C-FIND) is not a keep-alive.
            self._last_operation = self._last_traffic


class CountedAssociation(WakingAssociation):
    """An acceptor association that gives its connection's :class:`Ticket` back when it ends."""

    ticket: Ticket | None = None
    counted_by: GuardedServer | None = None

    def run(self) -> None:
        """Run the association, then free its place in the door's counts."""
        try:
            super().run()
        finally:
            if self.counted_by is not None and self.ticket is not None:
                self.counted_by.release(self.ticket)


class GuardedRequestHandler(RequestHandler):
    """Runs in the connection's own thread: TLS handshake, then the association."""

    server: GuardedServer

    def handle(self) -> None:
        """Wrap the connection in TLS if configured, then start the association."""
        server = self.server
        ticket = server.take_ticket(self.request)
        started = False
        try:
            if server.policy.tls is not None:
                self.request = self._handshake(cast(socket.socket, self.request))
                if self.request is None:
                    return
            assoc = self._create_association()
            assoc.ticket = ticket
            assoc.counted_by = server
            evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
            assoc.start()
            started = True
        finally:
            if not started and ticket is not None:
                server.release(ticket)

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

    def _create_association(self) -> CountedAssociation:
        # pynetdicom's own set-up, with a GuardedSocket in place of AssociationSocket.
        assoc = CountedAssociation(self.ae, "acceptor")
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


class GuardedServer(WakingAssociationServer):
    """A threaded association server applying a :class:`ListenerPolicy`."""

    #: The listen backlog (socketserver's default of 5 overflows under a burst).
    request_queue_size = LISTEN_BACKLOG

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
        self._counts_lock = threading.Lock()
        self._open = 0  # connections accepted and not yet ended
        self._open_by_address: dict[str, int] = {}
        self._admitted = 0  # of those, the ones holding an association slot
        self._admitted_by_address: dict[str, int] = {}
        self._tickets: dict[Any, Ticket] = {}
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
        """Count the connection on arrival; close it when far past a limit.

        It is counted here, in the accepting thread, so a burst of connections cannot
        slip past a limit before their associations start. Within the limits it holds
        an association slot; past them (up to :data:`CONNECTION_FACTOR` times) it is
        kept to be refused with A-ASSOCIATE-RJ; beyond that it is closed at once.
        """
        policy = self.policy
        address = address_key(client_address)
        per_address = policy.per_address_limit
        with self._counts_lock:
            from_address = self._open_by_address.get(address, 0)
            if self._open >= policy.max_associations * CONNECTION_FACTOR:
                refusal = f"{self._open} connections open"
            elif from_address >= per_address * CONNECTION_FACTOR:
                refusal = f"{from_address} connections open from this address"
            else:
                refusal = ""
                admitted = (
                    self._admitted < policy.max_associations
                    and self._admitted_by_address.get(address, 0) < per_address
                )
                ticket = Ticket(address, admitted)
                self._open += 1
                self._open_by_address[address] = from_address + 1
                if admitted:
                    self._admitted += 1
                    self._admitted_by_address[address] = (
                        self._admitted_by_address.get(address, 0) + 1
                    )
                self._tickets[request] = ticket
        if refusal:
            log.warning("%s connection from %s closed: %s", policy.name, address, refusal)
            return False
        return True

    def take_ticket(self, request: Any) -> Ticket | None:
        """The ticket :meth:`verify_request` gave this connection (once)."""
        with self._counts_lock:
            return self._tickets.pop(request, None)

    def release(self, ticket: Ticket) -> None:
        """The connection ended: free its place (once)."""
        with self._counts_lock:
            if ticket.released:
                return
            ticket.released = True
            self._open -= 1
            _decrement(self._open_by_address, ticket.address)
            if ticket.admitted:
                self._admitted -= 1
                _decrement(self._admitted_by_address, ticket.address)

    def counts(self, address: str | None = None) -> tuple[int, int]:
        """(open connections, associations holding a slot), of one address or all."""
        with self._counts_lock:
            if address is None:
                return self._open, self._admitted
            return (
                self._open_by_address.get(address, 0),
                self._admitted_by_address.get(address, 0),
            )

    def shutdown_request(self, request: Any) -> None:
        """A connection closed before its handler ran: drop its ticket too."""
        ticket = self.take_ticket(request)
        if ticket is not None:
            self.release(ticket)
        super().shutdown_request(request)

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
        ticket = getattr(assoc, "ticket", None)
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
        elif ticket is not None and not ticket.admitted:
            refusal = REJECT_LIMIT
            log.warning(
                "%s association from %s refused: association limit reached "
                "(%d for the door, %d per address)",
                self.policy.name,
                address,
                self.policy.max_associations,
                self.policy.per_address_limit,
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
    # The listener counts slots itself, at accept (GuardedServer.verify_request);
    # pynetdicom's own count, taken later, never binds before it.
    ae.maximum_associations = policy.max_associations * CONNECTION_FACTOR + 1
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


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def policy_from_settings(
    listener: ListenerSettings, admit: Admit | None, image_box_bytes: int | None = None
) -> ListenerPolicy:
    """Build a listener's policy from its settings.

    Parameters
    ----------
    listener : ListenerSettings
        ``settings.worklist_listener`` or ``settings.print_listener``.
    admit : callable or None
        The door's calling AE check.
    image_box_bytes : int, optional
        The print door's limit for image box N-SET data sets ([print]
        max_image_box_bytes); ``None`` holds them to ``max_dataset_bytes``.

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
        max_associations_per_address=listener.max_associations_per_address,
        max_dataset_bytes=listener.max_dataset_bytes,
        image_box_bytes=image_box_bytes,
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
