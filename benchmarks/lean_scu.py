"""A lean worklist SCU for timing servers: one association, one C-FIND, raw sockets.

A pynetdicom SCU spends about half a millisecond on every response it receives, and
DCMTK's ``findscu`` some 60 ms starting up (it parses its data dictionary), so either
would put its own cost into every server's time. This client does only what the
protocol needs: A-ASSOCIATE-RQ with one presentation context (Explicit VR Little
Endian), the C-FIND-RQ, every response read to its end (PS3.8 Annex E framing, status
taken from the command set), A-RELEASE. The identifiers come back as bytes; decode
them afterwards (outside the timing) to compare answers.

Usage::

    from lean_scu import find
    identifiers = find("127.0.0.1", 11112, "XRAY1", "CLINIC", query_dataset)
"""

from __future__ import annotations

import socket
import struct

from pydicom.dataset import Dataset
from pynetdicom.dsutils import encode

MWL_FIND = b"1.2.840.10008.5.1.4.31"
EXPLICIT_LE = b"1.2.840.10008.1.2.1"
APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
IMPLEMENTATION_UID = b"1.2.826.0.1.3680043.9.7433.1.1"
PENDING = (0xFF00, 0xFF01)


def _item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def _pdu(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(payload)) + payload


def associate_rq(calling: str, called: str) -> bytes:
    """An A-ASSOCIATE-RQ proposing MWL FIND in Explicit VR Little Endian (PS3.8 9.3.2)."""
    context = _item(
        0x20,
        struct.pack(">BBBB", 1, 0, 0, 0) + _item(0x30, MWL_FIND) + _item(0x40, EXPLICIT_LE),
    )
    user = _item(0x50, _item(0x51, struct.pack(">I", 0)) + _item(0x52, IMPLEMENTATION_UID))
    header = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode()
    return _pdu(0x01, header + bytes(32) + _item(0x10, APPLICATION_CONTEXT) + context + user)


def find_rq(message_id: int) -> bytes:
    """The C-FIND-RQ command set (Implicit VR Little Endian)."""

    def us(element: int, value: int) -> bytes:
        return struct.pack("<HHIH", 0, element, 2, value)

    uid = MWL_FIND + (b"\x00" if len(MWL_FIND) % 2 else b"")
    body = (
        struct.pack("<HHI", 0, 0x0002, len(uid))
        + uid
        + us(0x0100, 0x0020)
        + us(0x0110, message_id)
        + us(0x0700, 0)  # priority: medium
        + us(0x0800, 0x0001)
    )
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def _status(command: bytes) -> int:
    """The Status (0000,0900) of a command set."""
    offset = 0
    while offset + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHI", command, offset)
        offset += 8
        if (group, element) == (0, 0x0900):
            return int(struct.unpack_from("<H", command, offset)[0])
        offset += length
    raise ValueError("response without a status")


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self.buffer)))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def pdu(self) -> tuple[int, bytes]:
        kind, _, length = struct.unpack(">BBI", self.exactly(6))
        return kind, self.exactly(length)


def find(
    host: str, port: int, calling: str, called: str, query: Dataset, timeout: float = 60
) -> list[bytes]:
    """One whole association: associate, C-FIND ``query``, release.

    Returns the encoded response identifiers (Explicit VR Little Endian), in order.
    Raises ``RuntimeError`` on a rejection or a failure status.
    """
    identifier = encode(query, False, True)
    assert identifier is not None
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = _Reader(sock)
        sock.sendall(associate_rq(calling, called))
        kind, body = reader.pdu()
        if kind != 0x02:
            raise RuntimeError(f"association to {called} not accepted (PDU type {kind})")
        command = find_rq(1)
        pdvs = struct.pack(">IBB", len(command) + 2, 1, 0x03) + command
        pdvs += struct.pack(">IBB", len(identifier) + 2, 1, 0x02) + identifier
        sock.sendall(_pdu(0x04, pdvs))
        answers: list[bytes] = []
        command_parts: list[bytes] = []
        data_parts: list[bytes] = []
        done = False
        while not done:
            kind, body = reader.pdu()
            if kind != 0x04:
                raise RuntimeError(f"{called} sent PDU type {kind} during the C-FIND")
            offset = 0
            while offset < len(body):
                (length,) = struct.unpack_from(">I", body, offset)
                control = body[offset + 5]
                value = body[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if control & 0x01:
                    command_parts.append(value)
                    if control & 0x02:
                        status = _status(b"".join(command_parts))
                        command_parts.clear()
                        if status not in PENDING:
                            if status != 0x0000:
                                raise RuntimeError(f"{called} answered 0x{status:04X}")
                            done = True
                else:
                    data_parts.append(value)
                    if control & 0x02:
                        answers.append(b"".join(data_parts))
                        data_parts.clear()
        sock.sendall(_pdu(0x05, bytes(4)))
        kind, _ = reader.pdu()
        if kind != 0x06:
            raise RuntimeError(f"{called} did not confirm the release (PDU type {kind})")
    return answers
