"""HL7 v2 order messages as a practice system builds them, and its side of MLLP."""

from __future__ import annotations

import datetime as dt
import socket
import time
from typing import Any

import hl7

DEADLINE = 10.0  # seconds any one answer may take
START, END = b"\x0b", b"\x1c\r"
TOMORROW = dt.date.today() + dt.timedelta(days=1)
HL7_DAY = TOMORROW.strftime("%Y%m%d")


# -- building messages -------------------------------------------------------------------


def segment(name: str, fields: dict[int, str]) -> str:
    """Return one segment with ``fields`` (HL7 field number -> raw text) in place."""
    if name == "MSH":
        values = ["MSH", "^~\\&"] + [""] * max(0, max(fields) - 2)
        for number, text in fields.items():
            values[number - 1] = text
        return "MSH|" + "|".join(values[1:])
    values = [name] + [""] * max(fields)
    for number, text in fields.items():
        values[number] = text
    return "|".join(values)


def msh(control_id: str, kind: str = "ORM^O01", version: str = "2.3.1", charset: str = "") -> str:
    fields = {3: "PMS", 4: "PRAXIS", 5: "CLINIC", 7: "20261126090000", 9: kind}
    fields |= {10: control_id, 11: "P", 12: version}
    if charset:
        fields[18] = charset
    return segment("MSH", fields)


def pid(**changes: str) -> str:
    fields = {1: "1", 3: "P100^^^PMS^MR", 5: "Doe^John^Q", 7: "19800102", 8: "M"}
    return segment("PID", _apply(fields, changes))


def orc(control: str = "NW", placer: str = "PL100", filler: str = "FL100") -> str:
    return segment("ORC", {1: control, 2: f"{placer}^PMS", 3: filler})


def obr(**changes: str) -> str:
    fields = {
        1: "1",
        2: "PL100^PMS",
        4: "CR01^Chest X-ray two views",
        16: "D77^House^Gregory^^^Dr",
        18: "ACC100",
        19: "RP100",
        20: "SPS100",
        21: "XRAY1",
        24: "CR",
        27: f"^^^{HL7_DAY}1030",
    }
    return segment("OBR", _apply(fields, changes))


def _apply(fields: dict[int, str], changes: dict[str, str]) -> dict[int, str]:
    for key, text in changes.items():  # f5="..." sets field 5
        fields[int(key[1:])] = text
    return fields


ZDS = segment("ZDS", {1: "1.2.826.0.1.3680043.10.543.100^CLINIC^Application^DICOM"})


def message(*segments: str, encoding: str = "ascii") -> bytes:
    return ("\r".join(segments) + "\r").encode(encoding)


def new_order(control_id: str = "MSG1", **obr_changes: str) -> bytes:
    return message(msh(control_id), pid(), orc(), obr(**obr_changes), ZDS)


# -- talking MLLP ------------------------------------------------------------------------


class MllpClient:
    """A practice system's side of the MLLP connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.pending = b""

    def send(self, raw: bytes) -> bytes:
        self.sock.sendall(START + raw + END)
        return self.receive()

    def receive(self) -> bytes:
        """Return the next framed answer (without framing); fail at the deadline."""
        deadline = time.monotonic() + DEADLINE
        while END not in self.pending:
            assert time.monotonic() < deadline, "no answer in time"
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed; received {self.pending!r}"
            self.pending += chunk
        frame, _, self.pending = self.pending.partition(END)
        assert frame.startswith(START)
        return frame[1:]

    def closed_by_peer(self) -> bool:
        """True when the other side closes the connection before the deadline."""
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ack_of(answer: bytes) -> Any:
    text = answer.decode("ascii")
    ack = hl7.parse(text)
    assert str(ack["MSH.F9.R1.C1"]) == "ACK"
    return ack


def ack_code(answer: bytes) -> str:
    return str(ack_of(answer)["MSA.F1"])


def error_location(answer: bytes) -> str:
    """ERR-2 as ``SEG^seq^field`` (the first ERR segment)."""
    ack = ack_of(answer)
    err = ack.segment("ERR")
    parts = [str(ack.extract_field("ERR", 1, 2, 1, c)) for c in (1, 2, 3)]
    assert err is not None
    return "^".join(p for p in parts if p)
