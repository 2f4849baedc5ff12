"""Fuzzing HL7 order intake: every message gets an ACK; a refused one writes nothing.

Valid ORM^O01 orders are mutated: fields replaced by garbage, segments dropped or
repeated, delimiters changed, bytes in broken encodings. The real intake (python-hl7
parsing, the order mapping, the domain) runs on a real SQLite store; an internal
error (logged at ERROR) counts as a crash. A few go over the real MLLP listener.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import hl7
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.hl7.intake import OrderIntake
from clinic.server import ClinicServer
from clinic.store.models import AuditEntry, Hl7Message, Patient, Procedure, Station
from tests.support.dicom_bytes import fuzz_settings
from tests.support.hl7 import (
    ZDS,
    MllpClient,
    message,
    msh,
    new_order,
    obr,
    orc,
    pid,
)

FUZZ = fuzz_settings(150)

GARBAGE = [
    "",
    '""',
    "^^^^^^^^",
    "~~~~",
    "\\X0D\\\\E\\",
    "../../etc/passwd",
    "20261399",
    "2026112625",
    "99999999999999",
    "A" * 300,
    "XRAY1^XRAY2",
    "\x00\x7f",
    "Müller^Hans",
    "&&&&",
]


class _Errors(logging.Handler):
    """Collects ERROR records of the intake (its internal-error path)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def intake(scheduler: Scheduler) -> Iterator[tuple[Scheduler, OrderIntake, _Errors]]:
    """The real intake on a fresh store, with its errors collected."""
    errors = _Errors()
    logger = logging.getLogger("clinic.hl7.intake")
    logger.addHandler(errors)
    try:
        yield scheduler, OrderIntake(scheduler, Catalog(scheduler.session_factory)), errors
    finally:
        logger.removeHandler(errors)


def counts(scheduler: Scheduler) -> tuple[int, ...]:
    """Rows of every table an order may write."""
    with scheduler.session_factory() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Patient, Procedure, Station, AuditEntry, Hl7Message)
        )


def ack_code(answer: bytes) -> str:
    """MSA-1 of an ACK (which must parse)."""
    ack = hl7.parse(answer.decode("ascii"))
    assert str(ack["MSH.F9.R1.C1"]) == "ACK"
    return str(ack["MSA.F1"])


@st.composite
def orders(draw: st.DrawFn) -> bytes:
    """A valid order with a few mutations."""
    segments = [msh(draw(st.sampled_from(["M1", "M2", ""]))), pid(), orc(), obr(), ZDS]
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(segments) - 1))
        fields = segments[index].split("|")
        how = draw(st.sampled_from(["field", "drop", "repeat", "truncate", "text"]))
        if how == "field" and len(fields) > 2:
            number = draw(st.integers(2, len(fields) - 1))
            fields[number] = draw(st.one_of(st.sampled_from(GARBAGE), st.text(max_size=20)))
            segments[index] = "|".join(fields)
        elif how == "drop":
            del segments[index]
            if not segments:
                segments = [""]
        elif how == "repeat":
            segments.insert(index, segments[index])
        elif how == "truncate":
            segments[index] = segments[index][: draw(st.integers(0, len(segments[index])))]
        else:
            segments.insert(index, draw(st.text(max_size=40)))
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    raw = "\r".join(segments).encode(encoding, errors="replace")
    if draw(st.integers(0, 4)) == 0:
        raw += draw(st.binary(max_size=30))
    return raw


@FUZZ
@given(raw=orders())
@example(raw=message(msh("M1"), pid(f7="20261399"), orc(), obr(), ZDS))
@example(raw=message(msh("M1"), pid(), orc(), obr(f21="../../etc"), ZDS))
@example(raw=message(msh("M1"), pid(), orc(), obr(f27="^^^2026112625"), ZDS))
@example(raw=b"MSH|^~\\&|" + "Müller".encode("latin-1") + b"|\rPID|\xff\xfe")
@example(raw=b"MSH|")
@example(raw=b"MSH" + b"|" * 500)
@example(raw=message(msh("M1"), *[pid()] * 50, orc(), obr(), ZDS))
@example(raw=message(msh("M1"), pid(f5="^" * 5000), orc(), obr(), ZDS))
def test_every_message_gets_an_ack(
    intake: tuple[Scheduler, OrderIntake, _Errors], raw: bytes
) -> None:
    scheduler, service, errors = intake
    errors.records.clear()
    before = counts(scheduler)
    code = ack_code(service.handle(raw))
    assert code in ("AA", "AE", "AR")
    assert not errors.records, [r.getMessage() for r in errors.records]
    if code != "AA":
        assert counts(scheduler) == before


def test_broken_messages_over_the_listener(server: ClinicServer) -> None:
    assert server.scheduler is not None
    broken: list[Any] = [
        b"\x00" * 64,
        b"MSH|^~\\&|PMS\rPID|||\xff\xfe\xfd",
        message(msh("B1"), orc(), obr(), ZDS),  # no PID
        message(msh("B2", kind="ADT^A01"), pid()),
        new_order("B3", f27="^^^20261399"),
        "MSH|^~\\&|PMS|Ünïcödé\rPID|1".encode("utf-16"),
    ]
    with MllpClient(server.hl7_port) as client:
        for raw in broken:
            assert ack_code(client.send(raw)) in ("AE", "AR"), raw
        assert server.scheduler.list_procedures() == []
        # A traversal string is a valid AE title (PS3.5 AE allows "/" and "."): it is
        # booked as data and never becomes part of a path.
        assert ack_code(client.send(new_order("GOOD", f21="../../etc/passwd"))) == "AA"
    (booked,) = server.scheduler.list_procedures()
    assert booked.station_ae_title == "../../etc/passwd"
