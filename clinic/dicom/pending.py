"""Pending C-FIND responses handed straight to the association's DUL as P-DATA.

pynetdicom answers a C-FIND one pending response at a time: the handler's dataset is
written by pydicom, a command set is built and written twice (once to measure its
group length), and the message is cut into PDUs, each on its own trip through the
DUL state machine. For a query with thousands of matches that is nearly all of the
time spent. Every pending response of one query shares one command set (same
message ID, same pending status), so :class:`PendingStream` prepares it once and
frames each identifier with it as a single P-DATA-TF PDU (two PDVs: command, then
data set; PS3.8 9.3.5 and Annex E) whenever the peer's maximum PDU length allows.

This is a pynetdicom workaround: the command set and the fragmentation follow
``DIMSEMessage.encode_msg`` (guarded in :mod:`clinic.dicom.upstream`), and the bytes
are checked against pynetdicom's own by the tests.
"""

from __future__ import annotations

import struct
import time
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.pdu_primitives import P_DATA

_CFIND_RSP = 0x8020
_DATASET_PRESENT = 0x0001
#: P-DATA waiting for the DUL beyond this many: wait for the peer to read.
_QUEUE_HIGH_WATER = 256
#: DUL states (PS3.8 9.2) in which no answer will reach the peer any more: idle, and
#: waiting for the transport to close.
_ENDED_STATES = frozenset({"Sta1", "Sta13"})


def find_response_command(sop_class_uid: str, message_id: int, status: int) -> bytes:
    """A C-FIND-RSP command set with a data set (Implicit VR Little Endian, PS3.7 9.3.2.2).

    Byte for byte what pynetdicom writes for the same response.
    """
    uid = sop_class_uid.encode("ascii")
    if len(uid) % 2:
        uid += b"\x00"

    def us(element: int, value: int) -> bytes:
        return struct.pack("<HHIH", 0x0000, element, 2, value)

    body = (
        struct.pack("<HHI", 0x0000, 0x0002, len(uid))
        + uid
        + us(0x0100, _CFIND_RSP)
        + us(0x0120, message_id)
        + us(0x0800, _DATASET_PRESENT)
        + us(0x0900, status)
    )
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(body)) + body


def frame_message(
    context_id: int, command: bytes, dataset: bytes, max_pdu_length: int
) -> list[list[list[Any]]]:
    """Cut one DIMSE message into the PDV lists of its P-DATA-TF PDUs (PS3.8 Annex E).

    Command and data set travel in one PDU when both fit under the peer's maximum PDU
    length (0: unlimited); otherwise each is fragmented as pynetdicom does, one PDV per
    PDU. The first byte of each PDV is its message control header.
    """
    if max_pdu_length == 0 or 12 + len(command) + len(dataset) <= max_pdu_length:
        return [[[context_id, b"\x03" + command], [context_id, b"\x02" + dataset]]]
    size = max_pdu_length - 6
    pdus: list[list[list[Any]]] = []
    for payload, more, last in ((command, b"\x01", b"\x03"), (dataset, b"\x00", b"\x02")):
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        for index, chunk in enumerate(chunks):
            control = last if index == len(chunks) - 1 else more
            pdus.append([[context_id, control + chunk]])
    return pdus


class PendingStream:
    """Sends one query's pending C-FIND responses straight to the association's DUL.

    They share the DUL's queue with what pynetdicom sends itself, so the final
    response the service class sends after the handler finishes always comes last.

    Parameters
    ----------
    event : pynetdicom.events.Event
        The EVT_C_FIND event being answered.
    status : int
        The pending status of every answer (0xFF00, or 0xFF01).
    """

    def __init__(self, event: evt.Event, status: int) -> None:
        self.assoc = event.assoc
        self.context_id = event.context.context_id
        self.command = find_response_command(
            str(event.request.AffectedSOPClassUID), cast(int, event.request.MessageID), status
        )
        self.max_pdu_length = int(self.assoc.dimse.maximum_pdu_size or 0)

    def send(self, identifier: bytes) -> bool:
        """Queue one pending response; ``False`` once the association has ended."""
        dul = self.assoc.dul
        while dul.to_provider_queue.qsize() > _QUEUE_HIGH_WATER:
            # The peer reads slower than rows are encoded: keep memory bounded.
            if not self._open():
                return False
            time.sleep(0.001)
        if not self._open():
            return False
        for pdvs in frame_message(self.context_id, self.command, identifier, self.max_pdu_length):
            primitive = P_DATA()
            primitive.presentation_data_value_list = pdvs  # type: ignore[assignment]
            dul.send_pdu(primitive)
        return True

    def _open(self) -> bool:
        """Whether answers can still reach the peer.

        The association's own flag is cleared by its reactor, which is the thread
        sending these answers; a transport that failed under the DUL (a peer that stopped
        reading, cut at the idle deadline) shows in the DUL's state instead.
        """
        dul = self.assoc.dul
        return (
            self.assoc.is_established
            and dul.is_alive()
            and dul.state_machine.current_state not in _ENDED_STATES
        )
