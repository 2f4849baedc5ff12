"""The worklist SCP on a free port, queried by a pynetdicom SCU as a modality would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import warnings
from typing import Any

import pytest
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
)
from sqlalchemy import select, update

from clinic.config import Settings
from clinic.server import ClinicServer
from clinic.store.models import Station, WorklistQueryLog
from clinic.worklist import scp as worklist_scp
from tests.support.mwl import (
    _send_raw_find,
    accessions,
    associate,
    at,
    book,
    check_c_cancel_stops_the_answers,
    find,
    mwl_query,
    query,
    wait_for_log_row,
)

TODAY = dt.date.today()
TOMORROW = TODAY + dt.timedelta(days=1)
#: General Purpose Worklist FIND (retired): another worklist model.
GENERAL_PURPOSE_WORKLIST_FIND = "1.2.840.10008.5.1.4.32.1"
PENDING = (0xFF00, 0xFF01)


def book_day(server: ClinicServer) -> ClinicServer:
    """Book a typical day on ``server``."""
    book(
        server,
        "T1",
        patient_name="MÜLLER^HANS",
        patient_id="PM1",
        scheduled_start=at(TODAY, "08:00"),
    )
    book(server, "T2", patient_name="MILLER^ANN", scheduled_start=at(TODAY, "11:30"))
    book(
        server,
        "T3",
        patient_name="Dvořák^Antonín",
        patient_id="PD3",
        modality="US",
        station_ae_title="US1",
    )
    book(
        server,
        "T4",
        patient_name="MULLER^EVA",
        modality="CR",
        station_ae_title="XRAY2",
        scheduled_start=at(TODAY, "14:00"),
    )
    book(server, "N1", patient_name="NEXT^DAY", scheduled_start=at(TOMORROW, "08:00"))
    book(
        server,
        "W1",
        patient_name="LAST^WEEK",
        scheduled_start=at(TODAY - dt.timedelta(days=7), "08:00"),
    )
    book(
        server,
        "P1",
        patient_name="PANO^RAMA",
        modality="PX",
        station_ae_title="PAN1",
        scheduled_start=at(TOMORROW, "10:00"),
    )
    return server


@pytest.fixture
def booked(server: ClinicServer) -> ClinicServer:
    """A fresh server with a typical day of bookings (for tests that change the store)."""
    return book_day(server)


@pytest.fixture(scope="module")
def day(module_server: ClinicServer) -> ClinicServer:
    """One server with a typical day of bookings, shared by the read-only tests."""
    return book_day(module_server)


# -- typical modality queries -----------------------------------------------------------

TYPICAL = [
    (
        "station and today",
        {},
        {
            "ScheduledStationAETitle": "XRAY1",
            "ScheduledProcedureStepStartDate": TODAY.strftime("%Y%m%d"),
        },
        ["T1", "T2"],
    ),
    (
        "modality and date range",
        {},
        {"Modality": "CR", "ScheduledProcedureStepStartDate": f"{TODAY:%Y%m%d}-{TOMORROW:%Y%m%d}"},
        ["T1", "T2", "T4", "N1"],
    ),
    (
        "today from now on, any station",
        {},
        {"ScheduledProcedureStepStartDate": f"{TODAY:%Y%m%d}-"},
        ["T1", "T3", "T2", "T4", "N1", "P1"],
    ),
    ("patient name prefix", {"PatientName": "MUL*"}, {}, ["T1", "T4"]),
    ("patient name lower case", {"PatientName": "m?ller*"}, {}, ["T1", "T2", "T4"]),
    ("patient id", {"PatientID": "PD3"}, {}, ["T3"]),
    ("accession", {"AccessionNumber": "N1"}, {}, ["N1"]),
    ("modality alone", {}, {"Modality": "PX"}, ["P1"]),
    ("nothing", {"PatientID": "NOBODY"}, {}, []),
]


@pytest.mark.parametrize(
    ("top", "sps", "expected"), [c[1:] for c in TYPICAL], ids=[c[0] for c in TYPICAL]
)
def test_typical_queries(
    day: ClinicServer, top: dict[str, Any], sps: dict[str, Any], expected: list[str]
) -> None:
    answers, final = query(day, mwl_query(top, sps))
    assert final.Status == 0x0000
    assert accessions(answers) == expected  # ordered by start


def _stale_day(server: ClinicServer) -> ClinicServer:
    """Bookings of yesterday and three days ago still scheduled, and one in progress."""
    book(server, "Y1", scheduled_start=at(TODAY - dt.timedelta(days=1), "16:00"))
    book(server, "D3", scheduled_start=at(TODAY - dt.timedelta(days=3), "09:00"))
    book(server, "R3", scheduled_start=at(TODAY - dt.timedelta(days=3), "10:00"))
    book(server, "T1", scheduled_start=at(TODAY, "08:00"))
    assert server.scheduler is not None
    [started] = [p for p in server.scheduler.list_procedures() if p.accession_number == "R3"]
    server.scheduler.set_status(started.id, "IN_PROGRESS", "test")
    return server


#: R3 is in progress: served whatever its day.
STALE_QUERIES: list[tuple[str, dict[str, str], set[str]]] = [
    ("no date", {}, {"Y1", "R3", "T1"}),
    ("station, no date", {"ScheduledStationAETitle": "XRAY1"}, {"Y1", "R3", "T1"}),
    (
        "the last week on",
        {"ScheduledProcedureStepStartDate": f"{(TODAY - dt.timedelta(days=7)):%Y%m%d}-"},
        {"Y1", "R3", "T1"},
    ),
    (
        "three days ago",
        {"ScheduledProcedureStepStartDate": f"{(TODAY - dt.timedelta(days=3)):%Y%m%d}"},
        {"R3"},
    ),
]


@pytest.mark.parametrize(
    ("sps", "expected"), [q[1:] for q in STALE_QUERIES], ids=[q[0] for q in STALE_QUERIES]
)
def test_a_booking_left_scheduled_for_days_leaves_the_worklist(
    server: ClinicServer, sps: dict[str, str], expected: set[str]
) -> None:
    """Default past_days = 1: yesterday's is still served, three days ago's is not."""
    _stale_day(server)
    answers, final = query(server, mwl_query(sps=sps))
    assert final.Status == 0x0000
    assert set(accessions(answers)) == expected


def test_past_days_is_configurable(settings: Settings) -> None:
    srv = ClinicServer(dataclasses.replace(settings, worklist_past_days=3))
    srv.start()
    try:
        _stale_day(srv)
        answers, _ = query(srv, mwl_query())
        assert set(accessions(answers)) == {"Y1", "D3", "R3", "T1"}
    finally:
        srv.stop()
    srv = ClinicServer(dataclasses.replace(settings, worklist_past_days=0))
    srv.start()
    try:
        answers, _ = query(srv, mwl_query())
        assert set(accessions(answers)) == {"R3", "T1"}
    finally:
        srv.stop()


def test_answer_carries_requested_keys(day: ClinicServer) -> None:
    ds = mwl_query(
        {
            "PatientID": "PM1",
            "PatientBirthDate": "",
            "StudyInstanceUID": "",
            "RequestedProcedureDescription": "",
        },
        {"ScheduledProcedureStepStartTime": "", "ScheduledProcedureStepID": ""},
    )
    answers, final = query(day, ds)
    assert final.Status == 0x0000
    assert len(answers) == 1
    answer = answers[0]
    assert set(answer.dir()) == {
        "SpecificCharacterSet",
        "PatientName",
        "PatientID",
        "AccessionNumber",
        "PatientBirthDate",
        "StudyInstanceUID",
        "RequestedProcedureDescription",
        "ScheduledProcedureStepSequence",
    }
    assert answer.PatientName == "MÜLLER^HANS"
    assert answer.PatientID == "PM1"
    assert answer.AccessionNumber == "T1"
    assert answer.StudyInstanceUID.startswith("2.25.")
    assert answer.RequestedProcedureDescription == "CR examination"
    item = answer.ScheduledProcedureStepSequence[0]
    assert set(item.dir()) == {
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
        "Modality",
        "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepID",
    }
    assert item.ScheduledStationAETitle == "XRAY1"
    assert item.ScheduledProcedureStepStartDate == TODAY.strftime("%Y%m%d")
    assert item.ScheduledProcedureStepStartTime == "080000"
    assert item.Modality == "CR"


@pytest.mark.parametrize(
    "transfer_syntax",
    [
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    ],
)
def test_every_uncompressed_transfer_syntax(day: ClinicServer, transfer_syntax: str) -> None:
    assoc = associate(day, transfer_syntax=transfer_syntax)
    try:
        assert assoc.accepted_contexts[0].transfer_syntax[0] == transfer_syntax
        answers, final = find(assoc, mwl_query({"PatientName": "dvo*"}, {"Modality": "US"}))
    finally:
        assoc.release()
    assert final.Status == 0x0000
    assert [(a.AccessionNumber, a.PatientName) for a in answers] == [("T3", "Dvořák^Antonín")]
    assert answers[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "US1"


@pytest.mark.parametrize(
    ("extra", "pending"),
    [
        ({"PatientWeight": ""}, 0xFF00),  # asked for and answered (empty)
        ({"PatientWeight": "70"}, 0xFF01),  # a value clinic cannot match on
        ({"AdmissionID": "ADM1"}, 0xFF01),
    ],
)
def test_unsupported_key_gives_pending_warning(
    day: ClinicServer, extra: dict[str, str], pending: int
) -> None:
    assoc = associate(day)
    try:
        answers = list(
            assoc.send_c_find(
                mwl_query({"AccessionNumber": "T1", **extra}), ModalityWorklistInformationFind
            )
        )
    finally:
        assoc.release()
    assert [s.Status for s, _ in answers] == [pending, 0x0000]
    keyword = next(iter(extra))
    assert answers[0][1] is not None
    assert answers[0][1][keyword].value in ("", None)


def test_echo(server: ClinicServer) -> None:
    assoc = associate(server)
    try:
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


def test_wrong_called_ae_title_rejected(server: ClinicServer) -> None:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.acse_timeout = 10
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="NOTCLINIC")
    assert assoc.is_rejected
    assert not assoc.is_established
    associate(server).release()  # the right title still works


def test_promiscuous_called_ae_title(settings: Settings) -> None:
    """With accept_any_called_ae_title, a modality set up with another title still works."""
    srv = ClinicServer(dataclasses.replace(settings, accept_any_called_ae_title=True))
    srv.start()
    try:
        book(srv, "Z1")
        ae = AE(ae_title="XRAY1")
        ae.add_requested_context(ModalityWorklistInformationFind)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        assoc = ae.associate("127.0.0.1", srv.mwl_port, ae_title="ANYTHING")
        assert assoc.is_established
        try:
            answers, final = find(assoc, mwl_query())
        finally:
            assoc.release()
        assert accessions(answers) == ["Z1"] and final.Status == 0x0000
    finally:
        srv.stop()


# -- character sets ---------------------------------------------------------------------


def raw_value(ds: Dataset, tag: int) -> bytes:
    """The element's bytes as they travelled (before pydicom decodes them)."""
    elem = ds.get_item(tag)
    assert isinstance(elem, RawDataElement)
    return bytes(elem.value).rstrip(b" ")


def test_utf8_by_default(day: ClinicServer) -> None:
    answers, _ = query(day, mwl_query({"PatientID": "PD3"}))
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"
    assert raw_value(answers[0], 0x00100010) == "Dvořák^Antonín".encode()
    assert answers[0].PatientName == "Dvořák^Antonín"


def test_latin1_when_query_asks(day: ClinicServer) -> None:
    answers, _ = query(day, mwl_query({"SpecificCharacterSet": "ISO_IR 100", "PatientID": "PD3"}))
    assert answers[0].SpecificCharacterSet == "ISO_IR 100"
    assert raw_value(answers[0], 0x00100010) == "Dvorák^Antonín".encode("latin-1")
    assert answers[0].PatientName == "Dvorák^Antonín"
    answers, _ = query(day, mwl_query({"SpecificCharacterSet": "ISO_IR 100", "PatientID": "PM1"}))
    assert raw_value(answers[0], 0x00100010) == "MÜLLER^HANS".encode("latin-1")


@pytest.mark.parametrize(
    ("text", "latin1"),
    [
        ("MÜLLER^HANS", "MÜLLER^HANS"),
        ("Dvořák^Antonín", "Dvorák^Antonín"),
        ("Mu\u0308ller^Hans", "Müller^Hans"),  # decomposed, as some keyboards type it
        ("Dvor\u030ca\u0301k", "Dvorák"),
        ("q\u0301", "q"),  # an accent without a composed letter
        ("Łukasz^Żółć", "Lukasz^Zólc"),
        ("Œuvre^Straße", "OEuvre^Straße"),
        ("Πέτρος", "Petros"),
        ("😀", "?"),
    ],
)
def test_to_latin1(text: str, latin1: str) -> None:
    assert worklist_scp.to_latin1(text) == latin1
    latin1.encode("latin-1")


def test_decomposed_name_answered_in_latin1(booked: ClinicServer) -> None:
    book(booked, "NFD", patient_id="PNFD", patient_name="Mu\u0308ller^Ju\u0308rgen")
    ds = mwl_query({"SpecificCharacterSet": "ISO_IR 100", "PatientID": "PNFD"})
    answers, _ = query(booked, ds)
    assert raw_value(answers[0], 0x00100010) == "Müller^Jürgen".encode("latin-1")
    # Matching sees the same name, composed or not.
    answers, _ = query(booked, mwl_query({"PatientName": "MÜLLER^JÜRGEN"}))
    assert accessions(answers) == ["NFD"]


def test_latin1_with_code_extensions(day: ClinicServer) -> None:
    """ISO 2022 IR 100 (Latin-1 with code extensions) is Latin-1 too."""
    ds = mwl_query({"SpecificCharacterSet": ["", "ISO 2022 IR 100"], "PatientName": "Mü*"})
    answers, final = query(day, ds)
    assert final.Status == 0x0000
    assert accessions(answers) == ["T1", "T4"]
    assert answers[0].SpecificCharacterSet == "ISO_IR 100"
    assert raw_value(answers[0], 0x00100010) == "MÜLLER^HANS".encode("latin-1")


def test_cyrillic_query_answered_in_cyrillic(day: ClinicServer) -> None:
    """A query in ISO_IR 144 is answered in it; letters Cyrillic lacks lose their accents."""
    ds = mwl_query({"SpecificCharacterSet": "ISO_IR 144", "PatientID": "PD3"})
    answers, _ = query(day, ds)
    assert answers[0].SpecificCharacterSet == "ISO_IR 144"
    assert answers[0].PatientName == "Dvorak^Antonin"


def test_unknown_character_set_answered_in_default(day: ClinicServer) -> None:
    ds = mwl_query({"PatientID": "PD3"})
    ds.add_new(0x00080005, "CS", "ISO_IR 999")
    answers, _ = query(day, ds)
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"
    assert answers[0].PatientName == "Dvořák^Antonín"


def test_latin1_query_value_decoded(day: ClinicServer) -> None:
    """A Latin-1 query's own text is read as Latin-1: MÜLLER* finds MÜLLER and MULLER."""
    ds = mwl_query({"SpecificCharacterSet": "ISO_IR 100", "PatientName": "MÜLLER*"})
    answers, final = query(day, ds)
    assert final.Status == 0x0000
    assert accessions(answers) == ["T1", "T4"]


def test_latin1_server_default(latin1_server: ClinicServer) -> None:
    book(latin1_server, "L1", patient_name="Dvořák^Antonín")
    answers, _ = query(latin1_server, mwl_query())
    assert answers[0].SpecificCharacterSet == "ISO_IR 100"
    assert raw_value(answers[0], 0x00100010) == "Dvorák^Antonín".encode("latin-1")
    answers, _ = query(latin1_server, mwl_query({"SpecificCharacterSet": "ISO_IR 192"}))
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"
    assert answers[0].PatientName == "Dvořák^Antonín"


def test_station_character_set(booked: ClinicServer) -> None:
    assert booked.session_factory is not None
    with booked.session_factory.begin() as session:
        session.execute(
            update(Station).where(Station.ae_title == "US1").values(character_set="ISO_IR 100")
        )
    answers, _ = query(booked, mwl_query({"PatientID": "PD3"}), calling="US1")
    assert answers[0].SpecificCharacterSet == "ISO_IR 100"
    assert raw_value(answers[0], 0x00100010) == "Dvorák^Antonín".encode("latin-1")
    answers, _ = query(booked, mwl_query({"PatientID": "PD3"}), calling="XRAY1")
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"
    assert answers[0].PatientName == "Dvořák^Antonín"
    # A query that names UTF-8 gets UTF-8 even from a Latin-1 station.
    answers, _ = query(
        booked, mwl_query({"SpecificCharacterSet": "ISO_IR 192", "PatientID": "PD3"}), calling="US1"
    )
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"


# -- cancel -----------------------------------------------------------------------------


# -- malformed queries ------------------------------------------------------------------


def _bad_person_name() -> Dataset:
    ds = mwl_query()
    del ds.PatientName
    ds.add(DataElement(0x00100010, "SQ", DicomSequence([Dataset()])))
    return ds


def _bad_sps_as_text() -> Dataset:
    ds = mwl_query()
    del ds.ScheduledProcedureStepSequence
    ds.add(DataElement(0x00400100, "LO", "XRAY1"))
    return ds


def _two_sps_items() -> Dataset:
    ds = mwl_query()
    first, second = Dataset(), Dataset()
    first.Modality = "CR"
    second.Modality = "US"
    ds.ScheduledProcedureStepSequence = [first, second]
    return ds


def _garbage_date() -> Dataset:
    ds = mwl_query()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid date
        ds.ScheduledProcedureStepSequence[0].add(DataElement(0x00400002, "DA", "2026XX01"))
    return ds


def _undecodable_ir87_name() -> Dataset:
    # JIS X 0208 designated, then bytes that are no JIS X 0208 characters.
    ds = mwl_query()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    del ds.PatientName
    ds.add(DataElement(0x00100010, "PN", b"\x1b$B\xff\xfe\x80\x81\x1b(B"))
    return ds


def _reversed_range() -> Dataset:
    return mwl_query({}, {"ScheduledProcedureStepStartDate": f"{TOMORROW:%Y%m%d}-{TODAY:%Y%m%d}"})


BAD = [
    ("person name as a sequence", _bad_person_name, 0xA900, "PatientName: VR SQ instead of PN"),
    (
        "sps sequence as text",
        _bad_sps_as_text,
        0xA900,
        "ScheduledProcedureStepSequence: VR LO instead of SQ",
    ),
    ("two sps items", _two_sps_items, 0xA900, "more than one item"),
    ("garbage date", _garbage_date, 0xC000, "ScheduledProcedureStepStartDate"),
    ("reversed range", _reversed_range, 0xC000, "ends before it starts"),
    ("undecodable ISO 2022 IR 87 name", _undecodable_ir87_name, 0xC000, "(0010,0010)"),
]


@pytest.mark.parametrize(("make", "status", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_identifier_gets_failure_status(
    day: ClinicServer, make: Any, status: int, words: str
) -> None:
    assoc = associate(day, calling="BADMOD", transfer_syntax=ExplicitVRLittleEndian)
    try:
        answers = list(assoc.send_c_find(make(), ModalityWorklistInformationFind))
        assert len(answers) == 1
        rsp, identifier = answers[0]
        assert identifier is None
        assert rsp.Status == status
        assert words in rsp.ErrorComment
        assert "2026XX01" not in rsp.ErrorComment
        # The same association answers the next, good query.
        good, final = find(assoc, mwl_query({"AccessionNumber": "T1"}))
        assert accessions(good) == ["T1"] and final.Status == 0x0000
    finally:
        assoc.release()
    answers, final = query(day, mwl_query({"AccessionNumber": "T2"}))
    assert accessions(answers) == ["T2"] and final.Status == 0x0000


def test_failure_recorded_in_diagnostics(
    booked: ClinicServer, caplog: pytest.LogCaptureFixture
) -> None:
    ds = _garbage_date()
    ds.PatientName = "SECRET^NAME*"
    ds.PatientID = "SECRETID"
    assoc = associate(booked, calling="BADMOD", transfer_syntax=ExplicitVRLittleEndian)
    try:
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            answers = list(assoc.send_c_find(ds, ModalityWorklistInformationFind))
    finally:
        assoc.release()
    assert answers[0][0].Status == 0xC000
    # The refusal is logged, naming the attribute but no value of the query.
    assert "worklist query from BADMOD refused (0xC000)" in caplog.text
    assert "ScheduledProcedureStepStartDate" in caplog.text
    for value in ("2026XX01", "SECRET"):
        assert value not in caplog.text
    row = wait_for_log_row(booked, "BADMOD", lambda r: r.status == 0xC000)
    assert (row.matches, row.character_set) == (0, "")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xfe\xff\x00\xe0\x10\x00\x00\x00",  # an item tag where an element belongs
        b"\x40\x00\x00\x01\x08\x00\x00\x00\xfe\xff\x00\xe0\xff\xff",  # broken item
        b"\x10\x00\x10\x00\x04\x00\x00\x00DOE^\x40\x00\x00\x01\xff\xff\xff\xff"
        b"\xfe\xff\x00\xe0\x08\x00\x00\x00\x08\x00\x60\x00",  # sequence cut short
    ],
)
def test_undecodable_identifier(day: ClinicServer, garbage: bytes) -> None:
    """Bytes pydicom cannot read get 0xC000. (pydicom reads some truncated data, e.g. a
    value shorter than its length, without complaint; such an identifier is matched.)"""
    assoc = associate(day, calling="GARBAGE")
    try:
        # Pause the association's reactor as pynetdicom's own send_c_find does, or
        # it may take the response off the queue first.
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            time.sleep(0.0001)
        try:
            _send_raw_find(assoc, ModalityWorklistInformationFind, garbage)
            _, rsp = assoc.dimse.get_msg(block=True)
        finally:
            assoc._reactor_checkpoint.set()
        assert isinstance(rsp, C_FIND)
        assert rsp.Status == 0xC000
        # The comment names the element that could not be read, or the identifier.
        assert rsp.ErrorComment.endswith("cannot be decoded")
        good, final = find(assoc, mwl_query({"AccessionNumber": "T1"}))
        assert accessions(good) == ["T1"] and final.Status == 0x0000
    finally:
        assoc.release()


@pytest.mark.parametrize(
    "sop_class",
    [GENERAL_PURPOSE_WORKLIST_FIND, PatientRootQueryRetrieveInformationModelFind, "1.2.3.4"],
)
def test_other_sop_class_on_the_worklist_context(day: ClinicServer, sop_class: str) -> None:
    """A request naming a SOP class other than the context's is not answered with a
    status: pynetdicom routes requests by that UID and aborts the association before any
    handler runs (a documented limitation). Only that association ends; the next works."""
    assoc = associate(day)
    _send_raw_find(assoc, sop_class, mwl_query())
    deadline = time.monotonic() + 10
    while assoc.is_alive() and not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert assoc.is_aborted
    answers, final = query(day, mwl_query({"AccessionNumber": "T1"}))
    assert accessions(answers) == ["T1"] and final.Status == 0x0000


# -- diagnostics --------------------------------------------------------------------------


def log_row(server: ClinicServer, calling: str) -> WorklistQueryLog:
    assert server.session_factory is not None
    with server.session_factory() as session:
        row = session.scalar(
            select(WorklistQueryLog).where(WorklistQueryLog.calling_ae_title == calling)
        )
    assert row is not None, f"no diagnostics row for {calling}"
    return row


def test_query_recorded_per_calling_ae(booked: ClinicServer) -> None:
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
    ds = mwl_query({"PatientName": "MUL*"}, {"Modality": "CR"})
    answers, _ = query(booked, ds, calling="MODA")
    assert len(answers) == 2
    query(
        booked,
        mwl_query({"SpecificCharacterSet": "ISO_IR 100", "AccessionNumber": "T3"}),
        calling="MODB",
    )
    assert booked._query_log is not None
    booked._query_log.flush()
    row = log_row(booked, "MODA")
    assert row.matches == 2
    assert row.status == 0
    assert row.matching_keys.split(",") == ["PatientName", "Modality"]
    assert row.return_keys.split(",") == ["AccessionNumber", "PatientName", "PatientID"]
    assert row.character_set == "ISO_IR 192"
    assert row.peer.startswith("127.0.0.1:")
    assert row.at >= before
    assert "MUL" not in row.matching_keys + row.return_keys  # keys only, never values
    other = log_row(booked, "MODB")
    assert (other.matches, other.character_set, other.matching_keys) == (
        1,
        "ISO_IR 100",
        "AccessionNumber",
    )

    # The next query of the same AE replaces its row.
    query(booked, mwl_query({"PatientID": "NOBODY"}), calling="MODA")
    booked._query_log.flush()
    row = log_row(booked, "MODA")
    assert (row.matches, row.matching_keys) == (0, "PatientID")


def test_concurrent_associations(day: ClinicServer) -> None:
    first = associate(day, calling="A1")
    second = associate(day, calling="A2")
    try:
        a, _ = find(first, mwl_query({"AccessionNumber": "T1"}))
        b, _ = find(second, mwl_query({"AccessionNumber": "T2"}))
        assert accessions(a) == ["T1"] and accessions(b) == ["T2"]
    finally:
        first.release()
        second.release()


def test_c_cancel_stops_the_answers(server: ClinicServer, monkeypatch: pytest.MonkeyPatch) -> None:
    check_c_cancel_stops_the_answers(server, monkeypatch)
