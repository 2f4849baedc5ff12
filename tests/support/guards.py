"""Helpers for the listener guard tests: raw PDUs, reads with deadlines, certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

A_ASSOCIATE_RJ = 0x03
A_ABORT = 0x07


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float, bool]:
    """Read until the peer closes; return (bytes, seconds taken, whether it closed)."""
    start = time.monotonic()
    deadline = start + timeout
    data = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(data), time.monotonic() - start, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset: closed too
            return bytes(data), time.monotonic() - start, True
        if not chunk:
            return bytes(data), time.monotonic() - start, True
        data.extend(chunk)


def pdu_header(pdu_type: int, length: int) -> bytes:
    """The 6-byte header of a PDU: type, reserved, big-endian length."""
    return struct.pack(">BBL", pdu_type, 0, length)


def rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def echo_ae(title: str = "ECHOSCU") -> AE:
    """An SCU proposing Verification only, with short timeouts."""
    ae = AE(ae_title=title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = 5
    ae.dimse_timeout = 5
    ae.network_timeout = 5
    return ae


def echo_ok(port: int, called: str = "CLINIC", calling: str = "ECHOSCU", **kw: object) -> bool:
    """Associate, C-ECHO, release; whether the echo succeeded."""
    assoc = echo_ae(calling).associate("127.0.0.1", port, ae_title=called, **kw)  # type: ignore[arg-type]
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0x0000
    finally:
        assoc.release()


def rejection(assoc: Association) -> tuple[int, int, int] | None:
    """(result, source, diagnostic) of an A-ASSOCIATE-RJ, or None."""
    if not assoc.is_rejected:
        return None
    rsp = assoc.acceptor.primitive
    assert rsp is not None
    return int(rsp.result), int(rsp.result_source), int(rsp.diagnostic)  # type: ignore[arg-type]


@dataclass
class Pki:
    """A throwaway CA with a server and a client certificate (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_pki(folder: Path) -> Pki:
    """Create a CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("clinic test CA"))
        .issuer_name(_name("clinic test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        common: str, san: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    server, server_key = leaf(
        "localhost",
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client, client_key = leaf("MODALITY", [x509.DNSName("modality.invalid")])
    pki = Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
    )
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    pki.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, pki.server_key)
    _write_key(client_key, pki.client_key)
    return pki
