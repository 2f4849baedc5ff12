"""DCMTK's ``findscu -W`` (a real modality's worklist client) against the SCP.

Responses are extracted to files (``-X``) and read back with pydicom, which decodes
them by their Specific Character Set; the raw bytes are checked as well.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pydicom
import pytest

from clinic.server import ClinicServer
from tests.support.findscu import findscu, raw_bytes
from tests.support.tools import require_tool

TODAY = dt.date.today()

#: What a modality typically asks for.
RETURN_KEYS = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
]


@pytest.fixture
def booked(server: ClinicServer) -> ClinicServer:
    scheduler = server.scheduler
    assert scheduler is not None
    for accession, name, pid, station, hhmm, performing in [
        ("F1", "MÜLLER^HANS", "PF1", "XRAY1", "08:00", "Šťastný^Jiří"),
        ("F2", "Dvořák^Antonín", "PF2", "XRAY1", "09:15", ""),
        ("F3", "Ødegård^Åse", "PF3", "XRAY1", "10:30", ""),
        ("F4", "SMITH^JOHN", "PF4", "US1", "11:00", ""),
    ]:
        scheduler.book(
            {
                "accession_number": accession,
                "patient_id": pid,
                "patient_name": name,
                "patient_birth_date": "1970-01-01",
                "patient_sex": "M",
                "modality": "US" if station == "US1" else "CR",
                "station_ae_title": station,
                "scheduled_start": f"{TODAY.isoformat()}T{hhmm}",
                "performing_physician": performing,
            },
            actor="test",
        )
    return server


def test_station_today_utf8(booked: ClinicServer, tmp_path: Path) -> None:
    keys = [
        *RETURN_KEYS,
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=XRAY1",
        f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={TODAY:%Y%m%d}",
    ]
    answers, result = findscu(booked, tmp_path / "utf8", keys)
    assert [a.AccessionNumber for a in answers] == ["F1", "F2", "F3"]
    for answer in answers:
        assert answer.SpecificCharacterSet == "ISO_IR 192"
    names = [str(a.PatientName) for a in answers]
    assert names == ["MÜLLER^HANS", "Dvořák^Antonín", "Ødegård^Åse"]
    assert raw_bytes(answers[1], 0x00100010) == "Dvořák^Antonín".encode()
    sps = answers[0].ScheduledProcedureStepSequence[0]
    assert sps.ScheduledPerformingPhysicianName == "Šťastný^Jiří"
    assert sps.ScheduledStationAETitle == "XRAY1"
    assert sps.ScheduledProcedureStepStartDate == TODAY.strftime("%Y%m%d")
    assert sps.ScheduledProcedureStepStartTime == "080000"
    assert sps.Modality == "CR"
    assert sps.ScheduledProcedureStepDescription == "CR examination"
    assert answers[0].PatientBirthDate == "19700101"
    assert answers[0].StudyInstanceUID.startswith("2.25.")
    assert b"Error" not in result.stderr


def test_latin1_answers(booked: ClinicServer, tmp_path: Path) -> None:
    keys = [*RETURN_KEYS, "SpecificCharacterSet=ISO_IR 100", "PatientName="]
    answers, _ = findscu(booked, tmp_path / "latin1", keys)
    assert [a.AccessionNumber for a in answers] == ["F1", "F2", "F3", "F4"]
    for answer in answers:
        assert answer.SpecificCharacterSet == "ISO_IR 100"
    by_accession = {a.AccessionNumber: a for a in answers}
    # Latin-1 has Ü, á, í, Ø, å: kept; ř, Š, ť, ý... are transliterated, never dropped.
    assert by_accession["F1"].PatientName == "MÜLLER^HANS"
    assert by_accession["F2"].PatientName == "Dvorák^Antonín"
    assert by_accession["F3"].PatientName == "Ødegård^Åse"
    assert raw_bytes(by_accession["F2"], 0x00100010) == "Dvorák^Antonín".encode("latin-1")
    assert raw_bytes(by_accession["F1"], 0x00100010) == "MÜLLER^HANS".encode("latin-1")
    sps = by_accession["F1"].ScheduledProcedureStepSequence[0]
    assert sps.ScheduledPerformingPhysicianName == "Stastný^Jirí"


def test_latin1_query_text(booked: ClinicServer, tmp_path: Path) -> None:
    """The query's own name is Latin-1 bytes; MÜLLER* matches MÜLLER^HANS."""
    keys: list[str | bytes] = [
        "SpecificCharacterSet=ISO_IR 100",
        "PatientName=M\u00dcLLER*".encode("latin-1"),
        "AccessionNumber",
    ]
    answers, _ = findscu(booked, tmp_path / "query", keys)
    assert [a.AccessionNumber for a in answers] == ["F1"]
    assert answers[0].PatientName == "MÜLLER^HANS"


def test_name_prefix_ignores_case_and_accents(booked: ClinicServer, tmp_path: Path) -> None:
    answers, _ = findscu(booked, tmp_path / "prefix", ["PatientName=dvor*", "AccessionNumber"])
    assert [a.AccessionNumber for a in answers] == ["F2"]
    assert answers[0].PatientName == "Dvořák^Antonín"


def test_modality_query_nothing_for_other_station(booked: ClinicServer, tmp_path: Path) -> None:
    keys = [
        "AccessionNumber",
        "ScheduledProcedureStepSequence[0].Modality=MR",
    ]
    answers, result = findscu(booked, tmp_path / "none", keys)
    assert answers == []
    assert result.returncode == 0


def test_many_answers_fragmented_under_a_small_pdu(server: ClinicServer, tmp_path: Path) -> None:
    """Answers larger than the modality's maximum PDU arrive whole, in order, all of them."""
    scheduler = server.scheduler
    assert scheduler is not None
    notes = "Bring previous films. " * 300  # 6,600 characters: more than one 4 KiB PDU
    for n in range(120):
        scheduler.book(
            {
                "accession_number": f"M{n:03d}",
                "patient_id": f"PM{n:03d}",
                "patient_name": f"Nováková^Eva{n:03d}",
                "modality": "CR",
                "station_ae_title": "XRAY1",
                "scheduled_start": f"{TODAY.isoformat()}T{8 + n // 60:02d}:{n % 60:02d}",
                "notes": notes if n % 3 == 0 else "",
            },
            actor="test",
        )
    keys = [
        "PatientName",
        "AccessionNumber",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=XRAY1",
        "ScheduledProcedureStepSequence[0].CommentsOnTheScheduledProcedureStep",
    ]
    out = tmp_path / "small-pdu"
    out.mkdir()
    args = [require_tool("findscu"), "-W", "-aet", "XRAY1", "-aec", "CLINIC", "-to", "20"]
    args += ["--max-pdu", "4096", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    result = subprocess.run(
        [*args, "127.0.0.1", str(server.mwl_port)], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    answers = [pydicom.dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]
    assert [a.AccessionNumber for a in answers] == [f"M{n:03d}" for n in range(120)]
    for n, answer in enumerate(answers):
        assert str(answer.PatientName) == f"Nováková^Eva{n:03d}"
        comment = answer.ScheduledProcedureStepSequence[0].CommentsOnTheScheduledProcedureStep
        assert comment == (notes.rstrip() if n % 3 == 0 else "")
