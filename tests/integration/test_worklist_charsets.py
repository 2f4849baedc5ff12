"""Every character set a worklist speaks: the answer in the query's set, real names.

Each set of PS3.3 C.12.1.1.2 that clinic answers in is checked three ways: a pynetdicom
SCU (pydicom decodes the answer by its Specific Character Set), DCMTK's ``findscu``
(the query's name written in the set as raw bytes, the answer saved to a file) and
DCMTK's ``dcmdump +U8`` (DCMTK's own decoder turns the answer into UTF-8).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.charset import convert_encodings, encode_string
from pydicom.valuerep import PersonName
from sqlalchemy import update

from clinic.config import CHARACTER_SETS
from clinic.server import ClinicServer
from clinic.store.models import Station
from clinic.worklist.charsets import STATION_SETS, transliterator
from tests.support.charsets import SETS
from tests.support.findscu import findscu, raw_bytes
from tests.support.mwl import book, mwl_query, query
from tests.support.tools import require_tool

#: Sets DCMTK 3.6.7 with glibc's iconv cannot convert (dcmdump +U8 refuses them).
DCMTK_CANNOT_CONVERT = {"ISO_IR 203", "ISO 2022 IR 87", "ISO 2022 IR 13"}
IDS = [f"{'+'.join(t for t in terms if t) or 'default'}:{name[:6]}" for terms, name, _ in SETS]


@pytest.fixture(scope="module")
def named(module_server: ClinicServer) -> ClinicServer:
    """One service, booked once with a patient per name (its tests only query)."""
    for number, (_, name, _) in enumerate(SETS):
        book(module_server, f"CS{number}", patient_name=name, patient_id=f"PCS{number}")
    return module_server


def _raw(text: str, terms: tuple[str, ...]) -> bytes:
    """``text`` written in the set as pydicom writes it (escape sequences included)."""
    return encode_string(text, convert_encodings([t or "ISO 2022 IR 6" for t in terms]))


@pytest.mark.parametrize(("terms", "name", "pattern"), SETS, ids=IDS)
def test_answer_in_the_querys_set_pynetdicom(
    named: ClinicServer, terms: tuple[str, ...], name: str, pattern: str
) -> None:
    number = next(i for i, s in enumerate(SETS) if s[0] == terms and s[1] == name)
    charset: str | list[str] = list(terms) if len(terms) > 1 else terms[0]
    answers, final = query(
        named, mwl_query({"SpecificCharacterSet": charset, "PatientID": f"PCS{number}"})
    )
    assert final.Status == 0x0000
    (answer,) = answers
    got = answer.SpecificCharacterSet
    assert (list(got) if isinstance(got, pydicom.multival.MultiValue) else [got]) == list(terms)
    # pydicom decodes the answer by its Specific Character Set: the name as booked.
    assert str(answer.PatientName) == name
    # Matching on a name written in the set (pydicom encodes the query in it).
    found, final = query(
        named, mwl_query({"SpecificCharacterSet": charset, "PatientName": pattern})
    )
    assert final.Status == 0x0000
    assert f"CS{number}" in [a.AccessionNumber for a in found]


@pytest.mark.parametrize(("terms", "name", "pattern"), SETS, ids=IDS)
def test_findscu_and_dcmdump_read_the_answer(
    named: ClinicServer, tmp_path: Path, terms: tuple[str, ...], name: str, pattern: str
) -> None:
    number = next(i for i, s in enumerate(SETS) if s[0] == terms and s[1] == name)
    keys: list[str | bytes] = [
        "SpecificCharacterSet=" + "\\".join(terms),
        b"PatientName=" + _raw(pattern, terms),
        "PatientID",
        "AccessionNumber",
    ]
    answers, result = findscu(named, tmp_path / "out", keys)
    mine = [a for a in answers if a.AccessionNumber == f"CS{number}"]
    assert len(mine) == 1, result.stderr.decode(errors="replace")
    assert str(mine[0].PatientName) == name
    assert isinstance(mine[0].filename, str)
    # The name's bytes are the standard's encoding of it in the set (escape sequences too).
    encodings = convert_encodings([t or "ISO 2022 IR 6" for t in terms])
    assert raw_bytes(mine[0], 0x00100010) == PersonName(name).encode(encodings).rstrip(b" ")
    dump = subprocess.run(
        [require_tool("dcmdump"), "+U8", "+P", "PatientName", mine[0].filename],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if DCMTK_CANNOT_CONVERT.intersection(terms):
        # DCMTK 3.6.7 on glibc's iconv cannot convert these sets to UTF-8 at all: it says
        # so and stops (the bytes above are checked against pydicom's encoder instead).
        assert dump.returncode != 0 and b"not supported" in dump.stderr, dump.stderr
        return
    assert dump.returncode == 0, dump.stderr
    assert f"[{name}]" in dump.stdout.decode("utf-8"), dump.stdout.decode("utf-8", "replace")
    assert b"W: " not in dump.stderr and b"E: " not in dump.stderr, dump.stderr


def test_japanese_bytes_are_the_standards_example(server: ClinicServer, tmp_path: Path) -> None:
    """PS3.5 H.3.1: Yamada^Tarou=山田^太郎=やまだ^たろう in ISO 2022 IR 87, byte for byte."""
    book(server, "JP1", patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう", patient_id="PJP1")
    keys: list[str | bytes] = [
        "SpecificCharacterSet=\\ISO 2022 IR 87",
        "PatientID=PJP1",
        "PatientName",
    ]
    answers, _ = findscu(server, tmp_path / "jp", keys)
    expected = (
        b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
    )
    assert raw_bytes(answers[0], 0x00100010) == expected


@pytest.mark.parametrize("station_set", list(STATION_SETS))
def test_station_default_set(server: ClinicServer, station_set: str) -> None:
    """A query without Specific Character Set is answered in its station's set."""
    book(server, "ST1", patient_name="Dvořák^Antonín=山田^太郎", patient_id="PST1")
    assert server.session_factory is not None
    with server.session_factory.begin() as session:
        session.execute(
            update(Station).where(Station.ae_title == "XRAY1").values(character_set=station_set)
        )
    answers, final = query(server, mwl_query({"PatientID": "PST1"}))
    assert final.Status == 0x0000
    got = answers[0].SpecificCharacterSet
    terms = list(got) if isinstance(got, pydicom.multival.MultiValue) else [got]
    assert tuple(terms) == STATION_SETS[station_set]
    # What the set cannot hold is transliterated, the rest kept.
    expected = transliterator("\\".join(terms))("Dvořák^Antonín=山田^太郎")
    # (pydicom drops the padding a transliteration may end in: 郎 is "Lang ".)
    assert str(answers[0].PatientName) == expected.rstrip()


def test_configurable_sets_are_the_station_sets() -> None:
    assert set(CHARACTER_SETS) == set(STATION_SETS)


@pytest.mark.parametrize(
    ("charset", "text", "expected"),
    [
        ("ISO_IR 101", "Ødegård^Åse", "Odegard^Ase"),
        ("ISO_IR 144", "Dvořák^Иван", "Dvorak^Иван"),
        ("ISO_IR 126", "Müller^Γιώργος", "Muller^Γιώργος"),
        ("ISO 2022 IR 6\\ISO 2022 IR 87", "Dvořák=山田", "Dvorak=山田"),
        ("ISO 2022 IR 6\\ISO 2022 IR 149", "홍^길동 ř", "홍^길동 r"),
        ("ISO_IR 100", "Łukasz Œ", "Lukasz OE"),
        ("ISO_IR 192", "Łukasz", "Łukasz"),
    ],
)
def test_only_what_the_set_cannot_hold_is_transliterated(
    charset: str, text: str, expected: str
) -> None:
    assert transliterator(charset)(text) == expected
