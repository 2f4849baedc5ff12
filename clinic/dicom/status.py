"""Network details shared by every DICOM listener."""

from __future__ import annotations

import contextlib
import socket

from pydicom.dataset import Dataset
from pynetdicom import evt


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


def failure_status(status: int, comment: str) -> Dataset:
    """A failure status dataset with an Error Comment (PS3.7: at most 64 characters).

    The comment names the attribute and the problem, never a value, so it carries no
    patient data.
    """
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds
