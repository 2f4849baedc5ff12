"""docs/conformance.md says what the running service does: its tables are checked here.

SOP classes and transfer syntaxes are negotiated with the running service; every return
key of the worklist tables is requested, its "always" promise checked on a booking with
no optional field, and its matching types tried (a single value that fits and one that
does not, a wild card, a range; a return-only key's value never narrows the answer);
every status of the status table is produced; every character set row is answered as
the table says.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pynetdicom import AE, build_context
from sqlalchemy import update

from clinic.config import Settings
from clinic.printing.scp import PRINT_SOP_CLASSES
from clinic.server import ClinicServer
from clinic.store.models import Station
from clinic.worklist.matching import CODE_ITEM_PARTS, SPS_KEYS, TOP_KEYS
from clinic.worklist.scp import TRANSFER_SYNTAXES, build_worklist_ae
from tests.support.charsets import SETS
from tests.support.mwl import check_c_cancel_stops_the_answers

STATEMENT = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
MWL_FIND = "1.2.840.10008.5.1.4.31"
TODAY = dt.date.today()


def table_after(heading: str) -> list[list[str]]:
    """The rows (header and separator left out) of the first table after ``heading``."""
    lines = STATEMENT.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    # The heading may be the table's own header line.
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    rows = []
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert rows, f"no table after {heading!r}"
    return rows


def uid_of(cell: str) -> str:
    found = re.match(r"[\d.]+", cell)
    assert found, cell
    return found.group(0)


def tag_of(cell: str) -> Any:
    group, element = re.fullmatch(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)", cell).groups()  # type: ignore[union-attr]
    return Tag(int(group, 16), int(element, 16))


def accepted(port: int, called: str, uids: list[str]) -> dict[str, bool]:
    """Propose each UID in its own context; return which the service accepted."""
    ae = AE(ae_title="CHECKER")
    ae.requested_contexts = [build_context(uid) for uid in uids]
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    try:
        assert assoc.is_established
        result = {uid: False for uid in uids}
        for context in assoc.accepted_contexts:
            result[str(context.abstract_syntax)] = True
        return result
    finally:
        assoc.release()


# -- SOP classes and transfer syntaxes ---------------------------------------------------------


def test_worklist_ae_sop_classes(server: ClinicServer, settings: Settings) -> None:
    documented = [uid_of(row[1]) for row in table_after("##### 4.2.1.1 SOP classes")]
    served = [str(cx.abstract_syntax) for cx in build_worklist_ae(settings).supported_contexts]
    assert sorted(documented) == sorted(served)
    overview = {uid_of(row[1]) for row in table_after("### 1.1 Network services") if row[1]}
    assert set(documented) <= overview
    study_root_find = "1.2.840.10008.5.1.4.1.2.2.1"
    result = accepted(server.mwl_port, "CLINIC", [*documented, study_root_find])
    assert result == {**{uid: True for uid in documented}, study_root_find: False}


def test_print_ae_sop_classes(server: ClinicServer) -> None:
    rows = table_after("### 5.2 SOP classes (SCP role)")
    negotiated = [uid_of(row[1]) for row in rows if not row[0].startswith("—")]
    assert sorted(negotiated) == sorted(["1.2.840.10008.1.1", *PRINT_SOP_CLASSES])
    overview = {uid_of(row[1]) for row in table_after("### 1.1 Network services") if row[1]}
    meta = {uid_of(row[1]) for row in rows if "Meta" in row[0]}
    assert meta <= overview
    result = accepted(server.print_port, "PDFPRINT", negotiated)
    assert all(result.values()), result


def test_transfer_syntaxes() -> None:
    heading = "##### 4.2.1.3 Presentation contexts"
    lines = STATEMENT.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    second = next(
        i for i in range(start, len(lines)) if lines[i].startswith("| Transfer syntax | UID")
    )
    rows = []
    for line in lines[second + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line.strip("|").split("|")[1].strip())
    assert rows == [str(uid) for uid in TRANSFER_SYNTAXES]


# -- worklist return keys and matching ------------------------------------------------------

TOP_TABLE = "**Patient and requested procedure level**"
SPS_TABLE = "**Scheduled Procedure Step level (inside (0040,0100))**"
CODE_TABLE = "| Attribute in the item | Tag | Matching | Notes |"

FULL: dict[str, Any] = {
    "accession_number": "FULL1",
    "patient_id": "PFULL1",
    "patient_name": "FULLER^ANNA",
    "patient_birth_date": "1970-05-06",
    "patient_sex": "F",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": f"{TODAY.isoformat()}T09:30",
    "procedure_description": "Chest two views",
    "referring_physician": "HOUSE^GREGORY",
    "performing_physician": "CUDDY^LISA",
    "priority": "ROUTINE",
    "notes": "bring the old films",
    "procedure_code": {"value": "36643-5", "scheme": "LN", "meaning": "XR Chest 2V"},
    "protocol_code": {"value": "P-CH2", "scheme": "99CLINIC", "meaning": "Chest PA+LAT"},
}
MINIMAL: dict[str, Any] = {
    "accession_number": "MIN1",
    "patient_id": "PMIN1",
    "patient_name": "MINIMAL^MO",
    "modality": "US",
    "station_ae_title": "US1",
    "scheduled_start": f"{TODAY.isoformat()}T10:00",
}


@pytest.fixture(scope="module")
def service(module_server: ClinicServer) -> ClinicServer:
    """The module's service with a full and a minimal booking (its tests only query)."""
    srv = module_server
    assert srv.scheduler is not None and srv.session_factory is not None
    srv.scheduler.book(FULL, actor="test")
    srv.scheduler.book(MINIMAL, actor="test")
    with srv.session_factory.begin() as session:
        session.execute(
            update(Station)
            .where(Station.ae_title == "XRAY1")
            .values(name="ROOM 1", location="GROUND")
        )
    return srv


def documented_keys(heading: str) -> list[tuple[str, str, str]]:
    """(keyword, matching, value in answers) of each row of an attribute table."""
    return [(keyword_for_tag(tag_of(row[1])), row[2], row[3]) for row in table_after(heading)]


def find(server: ClinicServer, ds: Dataset) -> tuple[list[Dataset], list[int]]:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(MWL_FIND)
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    try:
        answers, statuses = [], []
        for status, identifier in assoc.send_c_find(ds, MWL_FIND):
            statuses.append(int(status.Status))
            if identifier is not None:
                answers.append(identifier)
        return answers, statuses
    finally:
        assoc.release()


def request(top: dict[str, Any] | None = None, sps: dict[str, Any] | None = None) -> Dataset:
    ds = Dataset()
    ds.AccessionNumber = ""
    for keyword, value in (top or {}).items():
        setattr(ds, keyword, value)
    item = Dataset()
    for keyword, value in (sps or {}).items():
        setattr(item, keyword, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def every_key() -> Dataset:
    top = {k: ([] if dictionary_VR(k) == "SQ" else "") for k, _, _ in documented_keys(TOP_TABLE)}
    top.pop("ScheduledProcedureStepSequence")
    sps = {k: ([] if dictionary_VR(k) == "SQ" else "") for k, _, _ in documented_keys(SPS_TABLE)}
    return request(top, sps)


def test_documented_keys_are_the_served_keys() -> None:
    top = {k for k, _, _ in documented_keys(TOP_TABLE)} - {"ScheduledProcedureStepSequence"}
    sps = {k for k, _, _ in documented_keys(SPS_TABLE)}
    assert top == set(TOP_KEYS)
    assert sps == set(SPS_KEYS)
    item = {keyword_for_tag(tag_of(row[1])) for row in table_after(CODE_TABLE)}
    assert item == set(CODE_ITEM_PARTS)


def answers_by_accession(server: ClinicServer, ds: Dataset) -> dict[str, Dataset]:
    answers, statuses = find(server, ds)
    assert statuses[-1] == 0x0000, hex(statuses[-1])
    return {str(a.AccessionNumber): a for a in answers}


def test_always_means_a_value_even_for_a_minimal_booking(service: ClinicServer) -> None:
    answers = answers_by_accession(service, every_key())
    minimal, full = answers["MIN1"], answers["FULL1"]
    for heading, inside in ((TOP_TABLE, False), (SPS_TABLE, True)):
        for keyword, _, value in documented_keys(heading):
            for answer in (minimal, full):
                where = answer.ScheduledProcedureStepSequence[0] if inside else answer
                assert keyword in where, keyword
                if value == "always":
                    assert where[keyword].value not in (None, "", []), keyword
        # The full booking answers every attribute with a value.
        for keyword, _, _ in documented_keys(heading):
            where = full.ScheduledProcedureStepSequence[0] if inside else full
            assert where[keyword].value not in (None, "", []), keyword


def _other(value: str, vr: str) -> str:
    """A value of the same form that the full booking does not have."""
    if vr == "DA":
        return "19000101"
    if vr == "TM":
        return "000001"
    if vr == "UI":
        return "1.2.3.4"
    if vr == "CS" and value == "SCHEDULED":
        return "STARTED"
    return value[:-1] + ("Z" if value[-1] != "Z" else "Y")


def _cases() -> list[tuple[str, str, str, bool]]:
    cases = []
    for heading, inside in ((TOP_TABLE, False), (SPS_TABLE, True)):
        for keyword, matching, _ in documented_keys(heading):
            if dictionary_VR(keyword) != "SQ":
                cases.append((keyword, matching, "sps" if inside else "top", True))
    return cases


@pytest.mark.parametrize(("keyword", "matching", "level", "_"), _cases())
def test_matching_types_are_as_documented(
    service: ClinicServer, keyword: str, matching: str, level: str, _: bool
) -> None:
    full = answers_by_accession(service, every_key())["FULL1"]
    source = full.ScheduledProcedureStepSequence[0] if level == "sps" else full
    value = str(source[keyword].value)
    vr = dictionary_VR(keyword)
    kinds = {k.strip() for k in matching.split(",")}

    def matches(text: str) -> bool:
        keys = {keyword: text}
        ds = request(keys, None) if level == "top" else request(None, keys)
        return "FULL1" in answers_by_accession(service, ds)

    if kinds == {"—"}:
        # Return key only: whatever is sent, the booking is still answered.
        assert matches(_other(value, vr))
        return
    assert "U" in kinds and matches("")
    if "S" in kinds:
        assert matches(value), f"{keyword}={value}"
        assert not matches(_other(value, vr)), keyword
    if "W" in kinds:
        assert matches(value[:2] + "*")
        assert matches("?" + value[1:])
    if "R" in kinds:
        assert matches(f"{value}-{value}")
        assert matches(f"-{value}")
    if "L" in kinds:
        ds = request({keyword: [value, "1.2.3.4"]})
        assert "FULL1" in answers_by_accession(service, ds)


# -- statuses -----------------------------------------------------------------------------------


def test_status_table(
    service: ClinicServer,
    server: ClinicServer,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documented = {int(row[0], 16) for row in table_after("**Status codes**")}
    produced: set[int] = set()
    # Pending and success.
    produced.update(find(service, request({"PatientID": "PFULL1"}))[1])
    # Pending with warning: a key clinic does not support, sent with a value.
    produced.update(find(service, request({"PatientID": "PFULL1", "AdmissionID": "A7"}))[1])
    # Identifier does not match SOP class: two items in the SPS sequence.
    ds = request({"PatientID": "PFULL1"})
    ds.ScheduledProcedureStepSequence = [Dataset(), Dataset()]
    produced.update(find(service, ds)[1])
    # Unable to process: a date that is not a date.
    produced.update(find(service, request({"PatientBirthDate": "2026XX01"}))[1])
    # Cancel: the cancel scenario of the worklist tests, on a fresh service.
    check_c_cancel_stops_the_answers(server, monkeypatch)
    produced.add(0xFE00)
    # Out of resources: more matches than [worklist] max_matches allows.
    limited = ClinicServer(
        dataclasses.replace(settings, data_dir=tmp_path / "limited", mwl_max_matches=1)
    )
    limited.start()
    try:
        assert limited.scheduler is not None
        for n in (1, 2):
            limited.scheduler.book(
                {
                    "patient_id": f"LIM{n}",
                    "patient_name": f"LIMIT^N{n}",
                    "modality": "CR",
                    "station_ae_title": "XRAY1",
                    "scheduled_start": f"{TODAY.isoformat()}T1{n}:00",
                },
                actor="test",
            )
        produced.update(find(limited, request({"PatientID": ""}))[1])
    finally:
        limited.stop()
    assert produced == documented


# -- character sets -----------------------------------------------------------------------------


def _charset_rows() -> list[tuple[str, str, str]]:
    """(station set name, answered Specific Character Set, tested names) per row."""
    rows = []
    for row in table_after("## 8. Support of character sets"):
        answered = re.findall(r"`([^`]*)`", row[1])[0]
        named = re.findall(r"`([^`]*)`", row[0])
        rows.append((named[0] if named else answered, answered, row[2]))
    return rows


@pytest.mark.parametrize(("station_set", "answered", "names"), _charset_rows())
def test_character_set_table(
    server: ClinicServer, station_set: str, answered: str, names: str
) -> None:
    assert server.scheduler is not None and server.session_factory is not None
    server.scheduler.book(
        {**MINIMAL, "station_ae_title": "XRAY1", "patient_name": "Dvořák^Antonín"},
        actor="test",
    )
    with server.session_factory.begin() as session:
        session.execute(
            update(Station).where(Station.ae_title == "XRAY1").values(character_set=station_set)
        )
    (answer,), _ = find(server, request({"PatientID": "PMIN1"}))
    got = answer.SpecificCharacterSet
    terms = list(got) if isinstance(got, MultiValue) else [got]
    assert "\\".join(terms) == answered
    # The names the table says were tested are those the character set tests use.
    tested = {name for _, name, _ in SETS}
    for name in re.sub(r"\s*\([^)]*\)", "", names).split(", "):
        if name != "all below":
            assert name in tested, name


def test_every_station_set_has_a_row() -> None:
    from clinic.worklist.charsets import STATION_SETS

    assert {station for station, _, _ in _charset_rows()} == set(STATION_SETS)
