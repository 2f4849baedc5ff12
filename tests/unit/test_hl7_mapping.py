"""HL7 order messages -> booking fields, header checks and acknowledgements (no network)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from dataclasses import dataclass

import hl7
import pytest

from clinic.hl7.ack import build_ack
from clinic.hl7.orders import (
    Location,
    MessageError,
    Order,
    Problem,
    dicom_person_name,
    hl7_datetime,
    parse_message,
    peek_header,
    problems_for,
    read_order,
)


def segment(name: str, fields: dict[int, str]) -> str:
    """Return one segment with ``fields`` (HL7 field number -> raw text) in place."""
    if name == "MSH":
        values = ["MSH", "^~\\&"] + [""] * max(0, max(fields) - 2)
        for number, text in fields.items():
            values[number - 1] = text
        return "|".join(values[:1]) + "|" + "|".join(values[1:])
    values = [name] + [""] * max(fields)
    for number, text in fields.items():
        values[number] = text
    return "|".join(values)


def message(*segments: str, encoding: str = "utf-8") -> bytes:
    return ("\r".join(segments) + "\r").encode(encoding)


def msh(
    control_id: str = "C1",
    kind: str = "ORM^O01",
    version: str = "2.3.1",
    charset: str = "",
) -> str:
    fields = {3: "PMS", 4: "PRAXIS", 5: "CLINIC", 7: "20261126090000", 9: kind}
    fields |= {10: control_id, 11: "P", 12: version}
    if charset:
        fields[18] = charset
    return segment("MSH", fields)


PID = segment(
    "PID", {1: "1", 3: "P123^^^PMS^MR~OLD7", 5: "Doe^John^Q^Jr^Dr^^L", 7: "19800102", 8: "M"}
)
ORC_NW = segment("ORC", {1: "NW", 2: "PL1^PMS", 3: "FL1"})
OBR = segment(
    "OBR",
    {
        1: "1",
        2: "PL1^PMS",
        4: "CR01^Chest X-ray^L",
        16: "D77^House^Gregory^^^Dr",
        18: "ACC1",
        19: "RP1",
        20: "SPS1",
        21: "XRAY1",
        24: "CR",
        27: "^^^202611261030",
    },
)
ZDS = segment("ZDS", {1: "1.2.826.0.1.3680043.10.543.9^CLINIC^Application^DICOM"})


@dataclass
class Entry:
    description: str
    modality: str
    default_station: str
    code: str = ""
    code_scheme: str = ""
    code_meaning: str = ""


def no_catalog(code: str) -> Entry | None:
    return None


def order(*segments: str, catalog: object = no_catalog) -> Order:
    return read_order(parse_message(message(*segments)), catalog)  # type: ignore[arg-type]


def rejected(raw: bytes) -> MessageError:
    with pytest.raises(MessageError) as caught:
        parse_message(raw)
    return caught.value


# -- mapping ---------------------------------------------------------------------------


def test_new_order_maps_every_field() -> None:
    got = order(msh(), PID, ORC_NW, OBR, ZDS)
    assert got.control == "NW"
    assert (got.placer_order_number, got.filler_order_number, got.accession_number) == (
        "PL1",
        "FL1",
        "ACC1",
    )
    assert got.fields == {
        "placer_order_number": "PL1",
        "filler_order_number": "FL1",
        "accession_number": "ACC1",
        "patient_id": "P123",
        # XPN suffix (4) and prefix (5) swap places in DICOM PN (prefix 4, suffix 5).
        "patient_name": "Doe^John^Q^Dr^Jr",
        "patient_birth_date": "19800102",
        "patient_sex": "M",
        "procedure_description": "Chest X-ray",
        # OBR-4 in HL7's local coding system "L": the clinic's private scheme designator.
        "procedure_code": '{"value": "CR01", "scheme": "99CLINIC", "meaning": "Chest X-ray"}',
        "modality": "CR",
        "station_ae_title": "XRAY1",
        "requested_procedure_id": "RP1",
        "step_id": "SPS1",
        "study_instance_uid": "1.2.826.0.1.3680043.10.543.9",
        "referring_physician": "House^Gregory^^Dr",
        "scheduled_start": "2026-11-26T10:30:00",
    }
    assert got.locations["patient_name"] == Location("PID", 5)
    assert got.locations["scheduled_start"] == Location("OBR", 27, 4)
    assert str(got.locations["scheduled_start"]) == "OBR-27.4"


def test_catalog_code_gives_description_modality_and_default_station() -> None:
    obr = segment("OBR", {1: "1", 2: "PL2", 4: "pan^ignored text", 27: "^^^202611261100"})
    entries = {"PAN": Entry("Panoramic", "PX", "PANO1")}
    got = order(msh(), PID, segment("ORC", {1: "NW", 2: "PL2"}), obr, catalog=entries.get)
    assert got.fields["procedure_description"] == "Panoramic"
    assert got.fields["modality"] == "PX"
    assert got.fields["station_ae_title"] == "PANO1"
    assert got.locations["station_ae_title"] == Location("OBR", 4)


@pytest.mark.parametrize(
    ("obr4", "expected"),
    [
        ("36643-5^XR Chest 2V^LN", ("36643-5", "LN", "XR Chest 2V")),
        ("RPID1234^Panoramic^RADLEX", ("RPID1234", "RADLEX", "Panoramic")),
        ("PX1^Pano^L", ("PX1", "99CLINIC", "Pano")),
        ("PX1^Pano", ("PX1", "99CLINIC", "Pano")),
        ("PX1^Pano^99PRAXIS", ("PX1", "99PRAXIS", "Pano")),
        ("PX1", ("PX1", "99CLINIC", "PX1")),
        # No primary code: the alternate triplet (components 4-6).
        ("^^^71651007^Mammography^SCT", ("71651007", "SCT", "Mammography")),
    ],
)
def test_obr4_becomes_the_procedure_code(obr4: str, expected: tuple[str, str, str]) -> None:
    obr = segment("OBR", {1: "1", 2: "PL2", 4: obr4, 24: "PX", 27: "^^^202611261100"})
    got = order(msh(), PID, segment("ORC", {1: "NW", 2: "PL2"}), obr)
    value, scheme, meaning = expected
    assert json.loads(got.fields["procedure_code"]) == {
        "value": value,
        "scheme": scheme,
        "meaning": meaning,
    }
    assert got.locations["procedure_code"] == Location("OBR", 4)


def test_catalog_code_names_scheme_and_meaning() -> None:
    obr = segment("OBR", {1: "1", 2: "PL2", 4: "pan^their text^L", 27: "^^^202611261100"})
    entries = {"PAN": Entry("Panoramic", "PX", "PANO1", "PAN", "", "")}
    got = order(msh(), PID, segment("ORC", {1: "NW", 2: "PL2"}), obr, catalog=entries.get)
    assert json.loads(got.fields["procedure_code"]) == {
        "value": "PAN",
        "scheme": "99CLINIC",
        "meaning": "Panoramic",
    }
    entries = {"PAN": Entry("Panoramic", "PX", "PANO1", "PAN", "RADLEX", "Pano X-ray")}
    got = order(msh(), PID, segment("ORC", {1: "NW", 2: "PL2"}), obr, catalog=entries.get)
    assert json.loads(got.fields["procedure_code"])["scheme"] == "RADLEX"
    assert json.loads(got.fields["procedure_code"])["meaning"] == "Pano X-ray"


def test_omi_obr44_and_ipc6_give_procedure_and_protocol_codes() -> None:
    obr = segment(
        "OBR",
        {
            1: "1",
            2: "PL9",
            4: "US01^Ultrasound^L",
            27: "^^^202611261100",
            44: "45036-1^US Abdomen^LN",
        },
    )
    ipc = segment("IPC", {1: "ACC9", 2: "RP9", 3: "1.2.3.9", 4: "SPS9", 5: "US", 6: "P7^Liver^L"})
    got = order(msh(kind="OMI^O23", version="2.5.1"), PID, ORC_NW, obr, ipc)
    assert json.loads(got.fields["procedure_code"]) == {
        "value": "45036-1",
        "scheme": "LN",
        "meaning": "US Abdomen",
    }
    assert got.locations["procedure_code"] == Location("OBR", 44)
    assert json.loads(got.fields["protocol_code"]) == {
        "value": "P7",
        "scheme": "99CLINIC",
        "meaning": "Liver",
    }
    assert got.locations["protocol_code"] == Location("IPC", 6)


def test_obr_fields_win_over_the_catalog() -> None:
    obr = segment("OBR", {1: "1", 2: "PL2", 4: "PAN", 21: "PANO2", 24: "DX", 27: "^^^202611261100"})
    entries = {"PAN": Entry("Panoramic", "PX", "PANO1")}
    got = order(msh(), PID, segment("ORC", {1: "NW", 2: "PL2"}), obr, catalog=entries.get)
    assert (got.fields["modality"], got.fields["station_ae_title"]) == ("DX", "PANO2")


def test_unknown_code_keeps_the_text_and_a_long_text_is_cut_to_64() -> None:
    obr = segment("OBR", {1: "1", 4: "X9^" + "Very long " * 10, 24: "US", 27: "^^^202611261100"})
    got = order(msh(), PID, ORC_NW, obr)
    assert got.fields["procedure_description"] == ("Very long " * 10)[:64]


def test_omi_with_tq1_and_ipc() -> None:
    tq1 = segment("TQ1", {1: "1", 7: "20261126143000", 9: "S"})
    ipc = segment(
        "IPC",
        {1: "ACC9", 2: "RP9", 3: "1.2.3.9", 4: "SPS9", 5: "US", 9: "ECHO1"},
    )
    obr = segment("OBR", {1: "1", 2: "PL9", 4: "US01^Ultrasound", 27: "^^^202601010000"})
    got = order(
        msh(kind="OMI^O23^OMI_O23", version="2.5.1"),
        PID,
        segment("ORC", {1: "NW", 2: "PL9"}),
        tq1,
        obr,
        ipc,
    )
    # TQ1-7 wins over OBR-27; IPC carries the DICOM identifiers and the station.
    assert got.fields["scheduled_start"] == "2026-11-26T14:30:00"
    assert got.fields["priority"] == "STAT"
    assert got.fields["accession_number"] == "ACC9"
    assert got.fields["requested_procedure_id"] == "RP9"
    assert got.fields["study_instance_uid"] == "1.2.3.9"
    assert got.fields["step_id"] == "SPS9"
    assert got.fields["modality"] == "US"
    assert got.fields["station_ae_title"] == "ECHO1"
    assert got.locations["scheduled_start"] == Location("TQ1", 7)


def test_cancel_needs_only_the_order_numbers() -> None:
    got = order(msh(), segment("ORC", {1: "CA", 2: "PL1", 16: "PAT^Patient request"}))
    assert got.control == "CA"
    assert got.placer_order_number == "PL1"
    assert got.cancel_reason == "Patient request"


def test_legal_name_and_ideographic_group() -> None:
    pid = segment(
        "PID",
        {
            3: "P5",
            5: "Nick^Name^^^^^N~Yamada^Tarou^^^^^L^A~山田^太郎^^^^^L^I~やまだ^たろう^^^^^L^P",
        },
    )
    got = order(msh(charset="UNICODE UTF-8"), pid, ORC_NW, OBR)
    assert got.fields["patient_name"] == "Yamada^Tarou=山田^太郎=やまだ^たろう"


def test_escaped_delimiters_do_not_shift_name_components() -> None:
    pid = segment("PID", {3: "P6", 5: "O\\S\\Brien^Ann", 8: "U"})
    got = order(msh(), pid, ORC_NW, OBR)
    assert got.fields["patient_name"] == "O Brien^Ann"
    # U (unknown) leaves the sex empty.
    assert got.fields["patient_sex"] == ""


@pytest.mark.parametrize(
    ("hl7_sex", "dicom"), [("M", "M"), ("F", "F"), ("O", "O"), ("A", "O"), ("N", "O")]
)
def test_sex_codes(hl7_sex: str, dicom: str) -> None:
    pid = segment("PID", {3: "P7", 5: "Doe^Jo", 8: hl7_sex})
    assert order(msh(), pid, ORC_NW, OBR).fields["patient_sex"] == dicom


def test_hl7_null_clears_a_field_in_a_change() -> None:
    pid = segment("PID", {3: "P8", 5: "Doe^Jo", 7: '""'})
    got = order(msh(), pid, segment("ORC", {1: "XO", 2: "PL1"}), OBR)
    assert got.fields["patient_birth_date"] == ""


@pytest.mark.parametrize(
    ("pid_field", "text", "where"),
    [(7, "1980", "PID-7"), (7, "19800230x", "PID-7"), (8, "X", "PID-8")],
)
def test_bad_patient_values_name_their_field(pid_field: int, text: str, where: str) -> None:
    pid = segment("PID", {3: "P9", 5: "Doe^Jo", pid_field: text})
    with pytest.raises(MessageError) as caught:
        order(msh(), pid, ORC_NW, OBR)
    assert caught.value.ack_code == "AE"
    assert [str(p.location) for p in caught.value.problems] == [where]


def test_bad_start_time_names_obr_27() -> None:
    obr = segment("OBR", {1: "1", 4: "X", 24: "CR", 27: "^^^2026112"})
    with pytest.raises(MessageError) as caught:
        order(msh(), PID, ORC_NW, obr)
    assert caught.value.problems[0].location == Location("OBR", 27, 4)
    assert caught.value.problems[0].code == "102"


@pytest.mark.parametrize(
    ("segments", "ack_code", "where"),
    [
        ((PID, OBR), "AE", "ORC"),
        ((PID, ORC_NW, OBR, ORC_NW, OBR), "AE", "ORC"),
        ((ORC_NW, OBR), "AE", "PID"),
        ((PID, ORC_NW), "AE", "OBR"),
        ((PID, segment("ORC", {1: "SC", 2: "PL1"}), OBR), "AR", "ORC-1"),
    ],
)
def test_structure_problems(segments: tuple[str, ...], ack_code: str, where: str) -> None:
    with pytest.raises(MessageError) as caught:
        order(msh(), *segments)
    assert caught.value.ack_code == ack_code
    assert str(caught.value.problems[0].location) == where


def test_datetime_forms() -> None:
    assert hl7_datetime("202611261030") == dt.datetime(2026, 11, 26, 10, 30)
    assert hl7_datetime("20261126103045.123") == dt.datetime(2026, 11, 26, 10, 30, 45)
    utc = hl7_datetime("202611261030+0000")
    expected = dt.datetime(2026, 11, 26, 10, 30, tzinfo=dt.UTC).astimezone().replace(tzinfo=None)
    assert utc == expected
    for bad in ("20261126", "2026-11-26T10:30", "202613261030", ""):
        with pytest.raises(ValueError):
            hl7_datetime(bad)


def test_person_name_drops_trailing_empty_components() -> None:
    assert dicom_person_name("Doe", "", "", "", "") == "Doe"
    assert dicom_person_name("Doe", "Jo", "", "Dr", "") == "Doe^Jo^^Dr"
    assert dicom_person_name("A^B", "C=D") == "A B^C D"


# -- header and decoding -----------------------------------------------------------------


def test_latin1_is_decoded_by_msh18() -> None:
    pid = segment("PID", {3: "P1", 5: "Müller^Jürgen"})
    raw = ("\r".join((msh(charset="8859/1"), pid, ORC_NW, OBR)) + "\r").encode("latin-1")
    assert order_from(raw).fields["patient_name"] == "Müller^Jürgen"


def test_utf8_is_decoded_by_msh18() -> None:
    pid = segment("PID", {3: "P1", 5: "Dvořák^Antonín"})
    raw = ("\r".join((msh(charset="UNICODE UTF-8"), pid, ORC_NW, OBR)) + "\r").encode()
    assert order_from(raw).fields["patient_name"] == "Dvořák^Antonín"


def test_newline_segment_ends_are_accepted() -> None:
    raw = "\r\n".join((msh(), PID, ORC_NW, OBR)).encode("ascii") + b"\n\n"
    assert order_from(raw).fields["patient_id"] == "P123"


def order_from(raw: bytes) -> Order:
    return read_order(parse_message(raw), no_catalog)


@pytest.mark.parametrize(
    ("raw", "where", "code"),
    [
        (b"hello", "MSH", "100"),
        (message(PID, ORC_NW), "MSH", "100"),
        (message(msh(kind="ADT^A01")), "MSH-9.1", "200"),
        (message(msh(kind="ORM^O02")), "MSH-9.2", "201"),
        (message(msh(version="2.2")), "MSH-12", "203"),
        (message(msh(kind="OMI^O23", version="2.3")), "MSH-12", "203"),
        (message(msh(control_id="")), "MSH-10", "101"),
        (message(msh(charset="ISO IR87")), "MSH-18", "103"),
        ((msh() + "\rPID|||1||Müller\r").encode("latin-1"), "MSH-18", "102"),
        (
            (msh(charset="UNICODE UTF-8") + "\rPID|||1||M\xfcller\r").encode("latin-1"),
            "MSH-18",
            "102",
        ),
    ],
)
def test_messages_not_taken_are_rejected(raw: bytes, where: str, code: str) -> None:
    err = rejected(raw)
    assert err.ack_code == "AR"
    assert str(err.problems[0].location) == where
    assert err.problems[0].code == code


def test_peek_header_reads_what_it_can() -> None:
    header = peek_header(message(msh(control_id="X77")) + b"\xff" * 10)
    assert header is not None and header.control_id == "X77"
    assert peek_header(b"\x00garbage") is None


# -- domain errors and acknowledgements -----------------------------------------------------


def test_domain_errors_name_the_fields_they_came_from() -> None:
    problems = problems_for(
        {
            "accession_number": "must be at most 16 characters",
            "modality": "is required",
            "station_ae_title": "is required (no single station does this modality)",
            "study_instance_uid": "is already used by another booking",
        },
        {"accession_number": Location("IPC", 1)},
    )
    assert [(str(p.location), p.code) for p in problems] == [
        ("IPC-1", "102"),
        ("OBR-24", "101"),
        ("OBR-21", "101"),
        ("ZDS-1", "205"),
    ]
    assert problems[0].text == "IPC-1 accession number must be at most 16 characters"


def test_ack_echoes_the_sender_and_names_the_field() -> None:
    header = parse_message(message(msh(control_id="M\\F\\1", charset="8859/1"))).header
    text = build_ack(
        "AE",
        header,
        [Problem(Location("PID", 5), "101", "PID-5 patient name is required")],
        now=dt.datetime(2026, 11, 26, 9, 0),
    )
    assert text.isascii() and text.endswith("\r")
    ack = hl7.parse(text)
    assert str(ack.segment("MSH")(3)) == "CLINIC"
    assert str(ack["MSH.F5"]) == "PMS"
    assert str(ack["MSH.F6"]) == "PRAXIS"
    assert str(ack["MSH.F7"]) == "20261126090000"
    assert str(ack["MSH.F9.R1.C1"]) == "ACK"
    assert str(ack["MSH.F9.R1.C2"]) == "O01"
    assert str(ack["MSH.F18"]) == "8859/1"
    assert str(ack["MSA.F1"]) == "AE"
    assert str(ack["MSA.F2"]) == "M|1"  # escaped on the wire, the same after parsing
    assert str(ack["ERR.F2.R1.C1"]) == "PID"
    assert str(ack["ERR.F2.R1.C2"]) == "1"
    assert str(ack["ERR.F2.R1.C3"]) == "5"
    assert str(ack["ERR.F3.R1.C1"]) == "101"
    assert str(ack["ERR.F4"]) == "E"
    assert str(ack["ERR.F8"]) == "PID-5 patient name is required"
    assert str(ack["ERR.F1.R1.C1"]) == "PID"
    assert str(ack["ERR.F1.R1.C4.S1"]) == "101"


def test_ack_without_a_header() -> None:
    ack = hl7.parse(build_ack("AR", None, [Problem(None, "100", "not HL7")]))
    assert str(ack["MSA.F1"]) == "AR"
    assert str(ack["MSA.F2"]) == ""
    assert str(ack["ERR.F8"]) == "not HL7"


@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
def test_unparseable_escapes_do_not_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    # python-hl7 would log the raw field on a broken escape sequence.
    pid = segment("PID", {3: "P1", 5: "Secretname\\\\^Jo\\Zbad"})
    with caplog.at_level(logging.DEBUG), contextlib.suppress(MessageError):
        order(msh(), pid, ORC_NW, OBR)
    assert "Secretname" not in caplog.text
