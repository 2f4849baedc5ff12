"""Fuzzing the C-FIND Modality Worklist identifier: refused with a status, never a crash.

Random identifiers (wrong VRs, garbage dates and times, nested sequences, random
bytes) are decoded as pynetdicom decodes them, parsed, turned into SQL and run on
a real SQLite store; a few hostile ones go through the real listener.
"""

from __future__ import annotations

import queue
import warnings
from collections.abc import Iterator
from io import BytesIO
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import decode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.config import Settings
from clinic.dicom.status import DimseFailure
from clinic.domain.bookings import Scheduler
from clinic.server import ClinicServer
from clinic.worklist.answers import SYNTAXES, AnswerPlan, reference_encode
from clinic.worklist.matching import (
    MatchOptions,
    Row,
    build_response,
    build_select,
    parse_identifier,
)
from clinic.worklist.scp import WorklistService
from tests.support.dicom_bytes import (
    datasets,
    decode_le,
    element,
    fuzz_settings,
    nested,
    sequence,
    tags,
)
from tests.support.worklist_bytes import ITEM, SPS, TOP

FUZZ = fuzz_settings(150)


@pytest.fixture
def booked(scheduler: Scheduler) -> Scheduler:
    """A store with a few bookings for the queries to meet."""
    return book_two(scheduler)


def book_two(scheduler: Scheduler) -> Scheduler:
    """Book two procedures the fuzzed queries can match."""
    for n, (name, modality) in enumerate([("DOE^JANE", "CR"), ("MÜLLER^HANS", "IO")]):
        scheduler.book(
            {
                "patient_id": f"P{n}",
                "patient_name": name,
                "patient_birth_date": "1980-02-29",
                "modality": modality,
                "station_ae_title": "XRAY1",
                "scheduled_start": "2026-11-26T09:30",
            },
            actor="test",
        )
    return scheduler


class _Dul:
    """Keeps the P-DATA the handler hands to the association."""

    def __init__(self) -> None:
        self.to_provider_queue: queue.Queue[Any] = queue.Queue()
        self.sent: list[P_DATA] = []
        self.state_machine = SimpleNamespace(current_state="Sta6")  # established

    def is_alive(self) -> bool:
        return True

    def send_pdu(self, primitive: P_DATA) -> None:
        self.sent.append(primitive)


class _Event:
    """What the C-FIND handler reads of a pynetdicom event; decoding is lazy, as there."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.is_cancelled = False
        self.dul = _Dul()
        self.assoc = SimpleNamespace(
            requestor=SimpleNamespace(ae_title="XRAY1", address="127.0.0.1", port=1),
            is_established=True,
            dul=self.dul,
            dimse=SimpleNamespace(maximum_pdu_size=16382),
        )
        self.context = SimpleNamespace(context_id=1, transfer_syntax=ExplicitVRLittleEndian)
        self.request = SimpleNamespace(
            AffectedSOPClassUID=ModalityWorklistInformationFind, MessageID=1
        )

    @property
    def identifier(self) -> Dataset:
        return decode_le(self.data)


def run_handler(service: WorklistService, data: bytes) -> list[int]:
    """The statuses the real C-FIND handler yields for an identifier."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on every invalid value it decodes
        event = _Event(data)
        answers = list(service.handle_find(event))  # type: ignore[arg-type]
    # Pending answers go straight to the association as P-DATA: each must decode.
    statuses = []
    for primitive in event.dul.sent:
        (_, command), (_, identifier) = primitive.presentation_data_value_list
        statuses.append(int(decode(BytesIO(command[1:]), True, True).Status))
        assert isinstance(decode(BytesIO(identifier[1:]), False, True), Dataset)
    statuses += [int(s) if isinstance(s, int) else int(s.Status) for s, _ in answers]
    for status in statuses[:-1]:
        assert status in (0xFF00, 0xFF01), hex(status)
    if statuses and statuses[-1] not in (0xFF00, 0xFF01):
        assert statuses[-1] in (0xA900, 0xC000), hex(statuses[-1])
    return statuses


def run_query(scheduler: Scheduler, data: bytes) -> int:
    """Parse, select and answer; return the matches or -1 when the identifier is refused."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on every invalid value it decodes
        try:
            identifier = decode_le(data)
        except Exception:
            return -1  # not even decodable: the handler answers 0xC000 (below)
        try:
            query = parse_identifier(identifier, MatchOptions())
        except DimseFailure as exc:
            assert exc.status in (0xA900, 0xC000), hex(exc.status)
            return -1
        with scheduler.session_factory() as session:
            rows = session.execute(build_select(query)).unique().all()
            for procedure, station in rows:
                row = Row(procedure, station)
                response = build_response(query, row, "ISO_IR 192", str)
                # The fast encoder writes exactly what pydicom writes, in every syntax.
                for syntax in SYNTAXES:
                    plan = AnswerPlan.compile(query, "ISO_IR 192", syntax)
                    if plan is not None:
                        assert plan.encode(row) == reference_encode(response, syntax)
        return len(rows)


@FUZZ
@given(data=datasets(TOP, [SPS], ITEM))
@example(data=nested(SPS, 60))
@example(data=sequence(SPS, [element(tags("ScheduledProcedureStepStartDate")[0], "DA", b"2026-")]))
@example(data=sequence(SPS, [element(tags("ScheduledProcedureStepStartTime")[0], "TM", b"2599")]))
@example(data=element(tags("PatientBirthDate")[0], "SQ", b""))
@example(data=element(tags("PatientName")[0], "PN", b"\xff\xfe*"))
@example(data=element(tags("PatientName")[0], "FD", b"*"))  # value of the wrong length
@example(data=sequence(SPS, [element(tags("ScheduledStationAETitle")[0], "AE", b"../../etc")]))
def test_identifier_is_answered_or_refused(booked: Scheduler, data: bytes) -> None:
    run_query(booked, data)


@FUZZ
@given(data=datasets(TOP, [SPS], ITEM))
@example(data=element(tags("SpecificCharacterSet")[0], "AT", b"\0\0\0\0"))
@example(data=element(tags("PatientName")[0], "SV", b"1234"))
def test_find_handler_answers_every_identifier(
    booked: Scheduler, settings_for_fuzz: Settings, data: bytes
) -> None:
    service = WorklistService(booked.session_factory, settings_for_fuzz)
    assert run_handler(service, data) is not None


@pytest.fixture
def settings_for_fuzz(settings: Settings) -> Settings:
    """The service settings (no query log)."""
    return settings


@pytest.fixture
def listener(server: ClinicServer) -> Iterator[tuple[ClinicServer, AE]]:
    """The real service and a worklist SCU."""
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(Verification)
    # Explicit VR: the listener sees the VRs as sent, wrong ones included.
    ae.add_requested_context(ModalityWorklistInformationFind, ExplicitVRLittleEndian)
    yield server, ae


HOSTILE = [
    # 0xA900: a sequence where a value belongs, a value where the SPS sequence belongs.
    ("PatientName", "SQ", [Dataset()]),
    ("ScheduledProcedureStepSequence", "LO", "x"),
    # 0xC000: garbage dates and times, ranges backwards.
    ("PatientBirthDate", "DA", "20261399"),
    ("PatientBirthDate", "DA", "20270101-20260101"),
]


def test_hostile_identifiers_through_the_listener(
    listener: tuple[ClinicServer, AE],
) -> None:
    server, ae = listener
    assert server.scheduler is not None
    book_two(server.scheduler)
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    try:
        for keyword, vr, value in HOSTILE:
            query = Dataset()
            query.add_new(keyword, vr, value)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
            statuses = [int(status.Status) for status, _ in answers]
            assert statuses and statuses[-1] in (0xA900, 0xC000), (keyword, statuses)
        # Deep nesting and a traversal AE title: answered, the association still works.
        deep = Dataset()
        inner = deep
        for _ in range(40):
            child = Dataset()
            inner.ScheduledProcedureStepSequence = [child]
            inner = child
        answers = list(assoc.send_c_find(deep, ModalityWorklistInformationFind))
        assert answers and int(answers[-1][0].Status) in (0x0000, 0xA900, 0xC000)
        query = Dataset()
        sps = Dataset()
        sps.ScheduledStationAETitle = "../../etc"
        query.ScheduledProcedureStepSequence = [sps]
        query.PatientName = ""
        answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
        assert [int(s.Status) for s, _ in answers] == [0x0000]
        assert assoc.send_c_echo().Status == 0
    finally:
        assoc.release()
