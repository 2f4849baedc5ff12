"""HL7 order intake over a real MLLP socket: orders reach the worklist, bad ones write nothing."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]
from sqlalchemy import func, select
from sqlalchemy import text as sql

from clinic.config import Settings
from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.hl7.intake import OrderIntake, content_digest
from clinic.hl7.mllp import MllpListener
from clinic.server import ClinicServer
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from clinic.store.models import AuditEntry, Hl7Message, Patient, Procedure, Station
from tests.support.hl7 import (
    DEADLINE,
    END,
    HL7_DAY,
    START,
    TOMORROW,
    ZDS,
    MllpClient,
    ack_code,
    ack_of,
    error_location,
    message,
    msh,
    new_order,
    obr,
    orc,
    pid,
    segment,
)
from tests.support.serve import run_clinic, serve_process


@pytest.fixture
def client(server: ClinicServer) -> Iterator[MllpClient]:
    mllp = MllpClient(server.hl7_port)
    yield mllp
    mllp.close()


# -- reading the store and the worklist ------------------------------------------------------


def row_counts(server: ClinicServer) -> dict[str, int]:
    assert server.session_factory is not None
    with server.session_factory() as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Patient, Procedure, Station, AuditEntry, Hl7Message)
        }


def bookings(server: ClinicServer) -> list[Procedure]:
    assert server.scheduler is not None
    return server.scheduler.list_procedures()


def worklist(server: ClinicServer, station: str = "") -> dict[str, Dataset]:
    """Ask the worklist as a modality does; return the answers by accession number."""
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    query = Dataset()
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "StudyInstanceUID",
        "ReferringPhysicianName",
    ):
        setattr(query, keyword, "")
    item = Dataset()
    item.ScheduledStationAETitle = station
    for keyword in (
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "Modality",
        "ScheduledProcedureStepID",
        "ScheduledProcedureStepStatus",
    ):
        setattr(item, keyword, "")
    query.ScheduledProcedureStepSequence = [item]
    answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    assoc.release()
    assert answers[-1][0].Status == 0x0000
    return {
        str(ds.AccessionNumber): ds for status, ds in answers if status.Status in (0xFF00, 0xFF01)
    }


# -- orders ------------------------------------------------------------------------------


def test_new_order_is_booked_and_on_the_worklist(server: ClinicServer, client: MllpClient) -> None:
    answer = client.send(new_order())
    ack = ack_of(answer)
    assert str(ack["MSA.F1"]) == "AA"
    assert str(ack["MSA.F2"]) == "MSG1"
    assert str(ack["MSH.F5"]) == "PMS"

    [proc] = bookings(server)
    assert proc.patient.patient_id == "P100"
    assert proc.patient.name == "Doe^John^Q"
    assert proc.patient.birth_date == dt.date(1980, 1, 2)
    assert proc.patient.sex == "M"
    assert (proc.placer_order_number, proc.filler_order_number) == ("PL100", "FL100")
    assert proc.accession_number == "ACC100"
    assert proc.requested_procedure_id == "RP100"
    assert proc.step_id == "SPS100"
    assert proc.study_instance_uid == "1.2.826.0.1.3680043.10.543.100"
    assert proc.procedure_description == "Chest X-ray two views"
    assert proc.referring_physician == "House^Gregory^^Dr"
    assert (proc.modality, proc.station_ae_title) == ("CR", "XRAY1")
    assert proc.scheduled_start == dt.datetime.combine(TOMORROW, dt.time(10, 30))
    assert proc.status == "SCHEDULED"

    entry = worklist(server)["ACC100"]
    assert entry.PatientName == "Doe^John^Q"
    assert entry.PatientID == "P100"
    assert entry.StudyInstanceUID == "1.2.826.0.1.3680043.10.543.100"
    assert entry.RequestedProcedureID == "RP100"
    step = entry.ScheduledProcedureStepSequence[0]
    assert step.ScheduledProcedureStepID == "SPS100"
    assert step.Modality == "CR"
    assert step.ScheduledProcedureStepStartDate == HL7_DAY
    assert step.ScheduledProcedureStepStartTime.startswith("1030")

    assert server.session_factory is not None
    with server.session_factory() as session:
        actors = set(session.scalars(select(AuditEntry.actor)))
    assert actors == {"hl7:PMS"}


def test_catalog_code_picks_modality_description_and_default_station(
    server: ClinicServer, client: MllpClient
) -> None:
    assert server.session_factory is not None
    Catalog(server.session_factory).save_entry(
        {"code": "PAN", "description": "Panoramic", "modality": "PX", "default_station": "PANO1"},
        actor="test",
    )
    answer = client.send(new_order(f4="PAN^Panorama", f21="", f24=""))
    assert ack_code(answer) == "AA"
    [proc] = bookings(server)
    assert (proc.modality, proc.station_ae_title) == ("PX", "PANO1")
    assert proc.procedure_description == "Panoramic"
    assert "ACC100" in worklist(server, station="PANO1")


def test_change_order_moves_the_booking(server: ClinicServer, client: MllpClient) -> None:
    assert ack_code(client.send(new_order())) == "AA"
    change = message(
        msh("MSG2"),
        pid(f5="Doe^John^Quincy"),
        orc("XO"),
        obr(f21="XRAY2", f27=f"^^^{HL7_DAY}1415"),
    )
    assert ack_code(client.send(change)) == "AA"
    [proc] = bookings(server)
    assert proc.station_ae_title == "XRAY2"
    assert proc.scheduled_start == dt.datetime.combine(TOMORROW, dt.time(14, 15))
    assert proc.patient.name == "Doe^John^Quincy"
    entry = worklist(server, station="XRAY2")["ACC100"]
    assert entry.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime.startswith(
        "1415"
    )
    assert "ACC100" not in worklist(server, station="XRAY1")


def test_cancel_order_takes_it_off_the_worklist(server: ClinicServer, client: MllpClient) -> None:
    assert ack_code(client.send(new_order())) == "AA"
    assert "ACC100" in worklist(server)
    cancel = message(msh("MSG2"), pid(), segment("ORC", {1: "CA", 2: "PL100^PMS", 16: "^Ill"}))
    assert ack_code(client.send(cancel)) == "AA"
    [proc] = bookings(server)
    assert proc.status == "CANCELLED"
    assert proc.cancel_reason == "Ill"
    assert "ACC100" not in worklist(server)
    # Cancelling again (a new message) changes nothing and is no error.
    counts = row_counts(server)
    assert ack_code(client.send(cancel.replace(b"MSG2", b"MSG3"))) == "AA"
    assert row_counts(server)["audit_log"] == counts["audit_log"]


def test_omi_order_with_tq1_and_ipc(server: ClinicServer, client: MllpClient) -> None:
    omi = message(
        msh("OMI1", kind="OMI^O23^OMI_O23", version="2.5.1"),
        pid(),
        orc(placer="PL200"),
        segment("TQ1", {1: "1", 7: f"{HL7_DAY}0800"}),
        obr(f2="PL200", f18="", f27=""),
        segment("IPC", {1: "ACC200", 2: "RP200", 3: "1.2.3.200", 4: "SPS200", 5: "US", 9: "ECHO1"}),
    )
    assert ack_code(client.send(omi)) == "AA"
    [proc] = bookings(server)
    assert (proc.accession_number, proc.modality, proc.station_ae_title) == (
        "ACC200",
        "US",
        "ECHO1",
    )
    assert proc.scheduled_start == dt.datetime.combine(TOMORROW, dt.time(8, 0))
    assert "ACC200" in worklist(server, station="ECHO1")


def test_retransmission_is_not_booked_twice(server: ClinicServer, client: MllpClient) -> None:
    first = client.send(new_order())
    counts = row_counts(server)
    again = client.send(new_order())
    assert again == first  # the very same acknowledgement, control ID included
    assert ack_code(again) == "AA"
    assert row_counts(server) == counts
    assert len(bookings(server)) == 1

    # From another connection too.
    other = MllpClient(server.hl7_port)
    try:
        assert other.send(new_order()) == first
    finally:
        other.close()

    # The same order under a new control ID is a duplicate, not a second booking.
    duplicate = client.send(new_order("MSG9"))
    assert ack_code(duplicate) == "AE"
    assert error_location(duplicate) == "ORC^1^2"
    assert str(ack_of(duplicate)["ERR.F3.R1.C1"]) == "205"
    assert row_counts(server) == counts


def test_a_resend_with_a_new_message_time_and_lf_endings_is_a_retransmission(
    server: ClinicServer, client: MllpClient
) -> None:
    first = client.send(new_order())
    counts = row_counts(server)
    resend = new_order().replace(b"20261126090000", b"20261126091500").replace(b"\r", b"\r\n")
    assert resend != new_order()
    assert client.send(resend) == first
    assert row_counts(server) == counts
    assert len(bookings(server)) == 1


def test_a_reused_control_id_with_another_order_is_booked(
    server: ClinicServer, client: MllpClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A practice system whose counter restarted sends MSG1 again, for another exam."""
    assert ack_code(client.send(new_order())) == "AA"
    other = message(
        msh("MSG1"),
        pid(f3="P200^^^PMS^MR", f5="Roe^Richard", f7="19750304"),
        orc(placer="PL200", filler="FL200"),
        obr(f2="PL200^PMS", f18="ACC200", f19="RP200", f20="SPS200"),
    )
    with caplog.at_level(logging.INFO, logger="clinic.hl7"):
        answer = client.send(other)
    assert ack_code(answer) == "AA"
    assert str(ack_of(answer)["MSA.F2"]) == "MSG1"
    assert sorted(p.accession_number for p in bookings(server)) == ["ACC100", "ACC200"]
    entry = worklist(server)["ACC200"]
    assert entry.PatientID == "P200"
    assert "control ID reused" in caplog.text and "MSG1" in caplog.text
    for private in ("Roe", "Richard", "P200", "19750304"):
        assert private not in caplog.text

    # Each of the two messages, sent again, is a retransmission of itself.
    counts = row_counts(server)
    assert counts["hl7_messages"] == 2
    assert client.send(other) == answer
    assert ack_code(client.send(new_order())) == "AA"
    assert row_counts(server) == counts


def test_a_stored_message_without_digest_answers_its_control_id_as_before(
    settings: Settings,
) -> None:
    """Rows stored by an earlier version (no digest) keep the earlier rule."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine, "0005_orders")
    with engine.begin() as conn:
        conn.execute(
            sql(
                "INSERT INTO hl7_messages (sending_application, sending_facility, control_id, "
                "message_type, order_control, ack, received_at) VALUES "
                "('PMS', 'PRAXIS', 'OLD1', 'ORM^O01', 'NW', 'MSH|old ack', '2026-11-01')"
            )
        )
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        [row] = session.scalars(select(Hl7Message))
        assert row.digest is None
    intake = OrderIntake(Scheduler(factory), Catalog(factory))
    assert intake.handle(new_order("OLD1")) == b"MSH|old ack"
    assert ack_code(intake.handle(new_order("NEW1"))) == "AA"
    with factory() as session:
        digests = list(session.scalars(select(Hl7Message.digest).order_by(Hl7Message.id)))
    assert digests[0] is None and digests[1] == content_digest(new_order("NEW1"))
    engine.dispose()


def test_content_digest_leaves_out_message_time_and_segment_ends() -> None:
    base = new_order()
    digest = content_digest(base)
    assert len(digest) == 64
    assert content_digest(base.replace(b"20261126090000", b"20300101000000")) == digest
    assert content_digest(base.replace(b"\r", b"\n")) == digest
    assert content_digest(base.replace(b"\r", b"\r\n") + b"\r\n") == digest
    assert content_digest(base.replace(b"ACC100", b"ACC101")) != digest
    assert content_digest(base.replace(b"|PMS|PRAXIS|", b"|PMS|OTHER|")) != digest
    assert content_digest(b"not HL7 at all") != digest


def test_latin1_names_are_decoded(server: ClinicServer, client: MllpClient) -> None:
    raw = message(
        msh("L1", charset="8859/1"),
        pid(f5="Müller^Jürgen"),
        orc(),
        obr(f16="D1^Größ^Anna"),
        encoding="latin-1",
    )
    assert b"M\xfcller" in raw
    assert ack_code(client.send(raw)) == "AA"
    [proc] = bookings(server)
    assert proc.patient.name == "Müller^Jürgen"
    assert proc.referring_physician == "Größ^Anna"
    assert worklist(server)["ACC100"].PatientName == "Müller^Jürgen"


def test_utf8_names_are_decoded(server: ClinicServer, client: MllpClient) -> None:
    raw = message(
        msh("U1", charset="UNICODE UTF-8"), pid(f5="Dvořák^Antonín"), orc(), obr(), encoding="utf-8"
    )
    assert ack_code(client.send(raw)) == "AA"
    assert bookings(server)[0].patient.name == "Dvořák^Antonín"


# -- bad messages ------------------------------------------------------------------------

BAD_MESSAGES: list[tuple[str, bytes, str, str]] = [
    ("not HL7", b"hello, world", "AR", "MSH^1"),
    ("no MSH", message(pid(), orc(), obr()), "AR", "MSH^1"),
    ("unknown message type", message(msh("B1", kind="ADT^A01"), pid()), "AR", "MSH^1^9"),
    ("unknown trigger", message(msh("B1", kind="ORM^O02"), pid(), orc(), obr()), "AR", "MSH^1^9"),
    ("old version", message(msh("B1", version="2.1"), pid(), orc(), obr()), "AR", "MSH^1^12"),
    ("no control ID", message(msh(""), pid(), orc(), obr()), "AR", "MSH^1^10"),
    ("unknown charset", message(msh("B1", charset="KOI8"), pid(), orc(), obr()), "AR", "MSH^1^18"),
    (
        "Latin-1 bytes declared as ASCII",
        message(msh("B1"), pid(f5="Müller^Jo"), orc(), obr(), encoding="latin-1"),
        "AR",
        "MSH^1^18",
    ),
    ("order control", message(msh("B1"), pid(), orc("SC"), obr()), "AR", "ORC^1^1"),
    ("no patient name", message(msh("B1"), pid(f5=""), orc(), obr()), "AE", "PID^1^5"),
    ("no patient ID", message(msh("B1"), pid(f3=""), orc(), obr()), "AE", "PID^1^3"),
    ("bad birth date", message(msh("B1"), pid(f7="19801340"), orc(), obr()), "AE", "PID^1^7"),
    ("birth in the future", message(msh("B1"), pid(f7="29990101"), orc(), obr()), "AE", "PID^1^7"),
    ("bad sex", message(msh("B1"), pid(f8="Q"), orc(), obr()), "AE", "PID^1^8"),
    ("no start time", message(msh("B1"), pid(), orc(), obr(f27="")), "AE", "OBR^1^27"),
    ("bad start time", message(msh("B1"), pid(), orc(), obr(f27="^^^2026")), "AE", "OBR^1^27"),
    ("bad modality", message(msh("B1"), pid(), orc(), obr(f24="C-R")), "AE", "OBR^1^24"),
    (
        "long accession",
        message(msh("B1"), pid(), orc(), obr(f18="A" * 17)),
        "AE",
        "OBR^1^18",
    ),
    (
        "no station for the modality",
        message(msh("B1"), pid(), orc(), obr(f21="", f24="MR")),
        "AE",
        "OBR^1^21",
    ),
    (
        "bad Study Instance UID",
        message(msh("B1"), pid(), orc(), obr(), segment("ZDS", {1: "1.02.x^CLINIC"})),
        "AE",
        "ZDS^1^1",
    ),
    ("no PID", message(msh("B1"), orc(), obr()), "AE", "PID^1"),
    ("no OBR", message(msh("B1"), pid(), orc()), "AE", "OBR^1"),
    (
        "change of an unknown order",
        message(msh("B1"), pid(), orc("XO", "NOPE"), obr(f18="")),
        "AE",
        "ORC^1^2",
    ),
    ("cancel of an unknown order", message(msh("B1"), orc("CA", "NOPE")), "AE", "ORC^1^2"),
]


@pytest.mark.parametrize(
    ("raw", "code", "location"),
    [pytest.param(raw, code, where, id=name) for name, raw, code, where in BAD_MESSAGES],
)
def test_bad_message_gets_its_ack_and_writes_nothing(
    server: ClinicServer, client: MllpClient, raw: bytes, code: str, location: str
) -> None:
    before = row_counts(server)
    answer = client.send(raw)
    assert ack_code(answer) == code
    assert error_location(answer) == location
    ack = ack_of(answer)
    assert str(ack["ERR.F8"])  # a readable message
    assert str(ack["ERR.F4"]) == "E"
    assert row_counts(server) == before
    # The connection and the listener go on.
    assert ack_code(client.send(new_order("OK1"))) == "AA"


def test_rejected_message_can_be_sent_again_once_fixed(
    server: ClinicServer, client: MllpClient
) -> None:
    bad = message(msh("MSG1"), pid(f5=""), orc(), obr(), ZDS)
    assert ack_code(client.send(bad)) == "AE"
    assert ack_code(client.send(new_order("MSG1"))) == "AA"
    assert len(bookings(server)) == 1


def test_oversized_message_is_refused_and_the_listener_goes_on(
    server: ClinicServer, client: MllpClient
) -> None:
    before = row_counts(server)
    filler = segment("NTE", {1: "1", 3: "x" * (1_600_000)})
    answer = client.send(message(msh("BIG1"), pid(), orc(), obr(), filler))
    ack = ack_of(answer)
    assert str(ack["MSA.F1"]) == "AR"
    assert str(ack["MSA.F2"]) == "BIG1"
    assert "larger than" in str(ack["ERR.F8"])
    assert row_counts(server) == before
    # The same connection and a new one are both served.
    assert ack_code(client.send(new_order("AFTER1"))) == "AA"
    fresh = MllpClient(server.hl7_port)
    try:
        change = message(msh("AFTER2"), pid(), orc("XO"), obr(f21="XRAY3"))
        assert ack_code(fresh.send(change)) == "AA"
    finally:
        fresh.close()
    assert bookings(server)[0].station_ae_title == "XRAY3"


def test_unframed_data_gets_a_reject_and_the_connection_closes(server: ClinicServer) -> None:
    with MllpClient(server.hl7_port) as mllp:
        mllp.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ack_code(mllp.receive()) == "AR"
        assert mllp.closed_by_peer()
    with MllpClient(server.hl7_port) as again:
        assert ack_code(again.send(new_order())) == "AA"


def test_several_messages_in_one_write(server: ClinicServer, client: MllpClient) -> None:
    second = message(msh("MSG2"), pid(), orc("XO"), obr(f21="XRAY2"))
    client.sock.sendall(START + new_order() + END + START + second + END)
    assert ack_code(client.receive()) == "AA"
    assert ack_code(client.receive()) == "AA"
    assert bookings(server)[0].station_ae_title == "XRAY2"


def test_log_names_control_ids_not_patients(
    server: ClinicServer, client: MllpClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert ack_code(client.send(new_order("LOG1"))) == "AA"
        assert ack_code(client.send(message(msh("LOG2"), pid(f7="1980"), orc(), obr()))) == "AE"
        assert ack_code(client.send(message(pid(), orc(), obr()))) == "AR"
    assert "LOG1" in caplog.text and "LOG2" in caplog.text
    for private in ("Doe", "John", "P100", "19800102", "House"):
        assert private not in caplog.text


# -- the listener itself -----------------------------------------------------------------


class Echo:
    """A stand-in message handler."""

    def handle(self, raw: bytes) -> bytes:
        return b"ECHO " + raw[:16]

    def refuse(self, prefix: bytes, reason: str) -> bytes:
        return b"REFUSED " + reason.encode()


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[MllpListener]:
    options: dict[str, Any] = getattr(request, "param", {})
    mllp = MllpListener("127.0.0.1", 0, Echo(), **options)
    mllp.start()
    yield mllp
    mllp.stop(grace=1.0)


@pytest.mark.parametrize("listener", [{"read_timeout": 0.2}], indirect=True)
def test_a_stalled_frame_is_dropped(listener: MllpListener) -> None:
    with MllpClient(listener.port) as mllp:
        mllp.sock.sendall(START + b"MSH|^~\\&|half a mess")
        assert mllp.closed_by_peer()


@pytest.mark.parametrize("listener", [{"idle_timeout": 0.2}], indirect=True)
def test_an_idle_connection_is_closed(listener: MllpListener) -> None:
    with MllpClient(listener.port) as mllp:
        assert mllp.send(b"MSH|1") == b"ECHO MSH|1"
        assert mllp.closed_by_peer()


@pytest.mark.parametrize("listener", [{"max_message_bytes": 1000}], indirect=True)
def test_the_size_limit_is_configurable(listener: MllpListener) -> None:
    with MllpClient(listener.port) as mllp:
        assert mllp.send(b"x" * 1001) == b"REFUSED message is larger than 1000 bytes"
        assert mllp.send(b"x" * 1000) == b"ECHO " + b"x" * 16


@pytest.mark.parametrize("listener", [{"max_connections": 1}], indirect=True)
def test_connections_beyond_the_limit_are_closed(listener: MllpListener) -> None:
    with MllpClient(listener.port) as first:
        assert first.send(b"one") == b"ECHO one"
        with MllpClient(listener.port) as second:
            assert second.closed_by_peer()
        assert first.send(b"two") == b"ECHO two"


def test_stop_closes_idle_connections_promptly(listener: MllpListener) -> None:
    with MllpClient(listener.port) as mllp:
        assert mllp.send(b"hello") == b"ECHO hello"
        port = listener.port
        began = time.monotonic()
        listener.stop(grace=DEADLINE)
        assert time.monotonic() - began < DEADLINE / 2
        assert mllp.closed_by_peer()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()


class Breaks(Echo):
    def handle(self, raw: bytes) -> bytes:
        if raw == b"boom":
            raise RuntimeError("handler bug")
        return super().handle(raw)


def test_a_failing_handler_ends_only_its_connection() -> None:
    mllp = MllpListener("127.0.0.1", 0, Breaks())
    mllp.start()
    try:
        with MllpClient(mllp.port) as client:
            client.sock.sendall(START + b"boom" + END)
            assert client.closed_by_peer()
        with MllpClient(mllp.port) as client:
            assert client.send(b"fine") == b"ECHO fine"
    finally:
        mllp.stop(grace=1.0)


# -- clinic serve ------------------------------------------------------------------------


def test_clinic_serve_takes_orders(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serve_process(data_dir) as service:
        with MllpClient(service.hl7_port) as client:
            assert ack_code(client.send(new_order())) == "AA"
        listing = run_clinic("procedures", "list", "--json", env=service.env, cwd=tmp_path)
        assert listing.returncode == 0, listing.stderr
        [booked] = json.loads(listing.stdout)
        assert booked["placer_order_number"] == "PL100"
        assert booked["accession_number"] == "ACC100"
        assert service.stop() == 0


def test_overlapping_order_is_booked_as_sent_with_the_catalog_duration(
    server: ClinicServer, client: MllpClient
) -> None:
    assert server.session_factory is not None
    Catalog(server.session_factory).save_entry(
        {"code": "PAN", "description": "Panoramic", "modality": "PX", "duration_minutes": 25},
        actor="test",
    )
    first = new_order("OV1", f4="PAN^Panorama", f24="", f21="PANO1")
    assert ack_code(client.send(first)) == "AA"
    second = message(
        msh("OV2"),
        pid(),
        orc(placer="PL200", filler="FL200"),
        obr(
            f2="PL200^PMS",
            f4="PAN^Panorama",
            f18="ACC200",
            f19="RP200",
            f20="SPS200",
            f21="PANO1",
            f24="",
            f27=f"^^^{HL7_DAY}1040",
        ),
    )
    assert ack_code(client.send(second)) == "AA"  # 10:30 + 25 min overlaps 10:40: accepted
    procs = sorted(bookings(server), key=lambda p: p.scheduled_start)
    assert [p.duration_minutes for p in procs] == [25, 25]
    assert [p.scheduled_start.strftime("%H:%M") for p in procs] == ["10:30", "10:40"]


def test_new_order_with_other_demographics_updates_the_patient(
    server: ClinicServer, client: MllpClient
) -> None:
    """HL7 is the practice system's word on demographics: the patient follows, audited."""
    assert ack_code(client.send(new_order())) == "AA"
    second = message(
        msh("MSG2"),
        pid(f7="19800201", f8="F"),
        orc(placer="PL200", filler="FL200"),
        obr(f2="PL200^PMS", f18="ACC200", f19="RP200", f20="SPS200"),
    )
    assert ack_code(client.send(second)) == "AA"
    procs = bookings(server)
    assert len(procs) == 2
    assert {(p.patient.birth_date, p.patient.sex) for p in procs} == {(dt.date(1980, 2, 1), "F")}
    # Both bookings' worklist answers follow the corrected patient.
    entries = worklist(server)
    assert {entries[acc].PatientBirthDate for acc in ("ACC100", "ACC200")} == {"19800201"}
    assert server.session_factory is not None
    with server.session_factory() as session:
        change = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity == "patient", AuditEntry.action == "update")
            .order_by(AuditEntry.id.desc())
        ).first()
    assert change is not None and change.actor == "hl7:PMS"
