"""Reference comparison of the worklist with DCMTK's ``wlmscpfs``.

Debian's dcmtk ships an example worklist database (``examples/wlistdb/OFFIS``, ten
entries) and example queries (``examples/wlistqry``, thirteen of them) as text
dumps. The same entries are served by ``wlmscpfs`` (from the converted files) and
by clinic (booked through the scheduler); every example query and a set of our own
queries go to both, and the sets of matched entries must be equal wherever
``wlmscpfs`` supports the key.

How the example entries become bookings (``booking_from``):

* Entries are identified on both sides by Requested Procedure ID (0040,1001): it
  is unique in the examples (checked below) and both servers return it. It is
  added to each query as an empty return key when the query lacks it; universal
  matching (PS3.4 C.2.2.2.3) does not change which entries match.
* Accession numbers in the examples are ``00000`` to ``00009``, unique and never
  empty, so they are kept as they are. ``wklist2.dump`` lists (0008,0050) twice
  (``00002`` and ``345345``); ``dump2dcm`` keeps the first, and so do we.
* Scheduled Station AE Title is multi-valued in five entries (``AA32\\AA33``,
  ``FG56\\ER67\\JJ56\\TZ77``, ...). Clinic keeps one station per step: the first
  value is booked. Queries on the first value agree; queries on a later value
  differ (see ``test_multi_valued_station_ae_title``).
* Requesting Physician (0032,1032) is booked as clinic's one ordering physician,
  which clinic answers as Referring Physician's Name (0008,0090); the example files
  have no (0008,0090), so that key is not compared.
* Requested Procedure Description (0032,1060) becomes the booking's description;
  clinic answers it for the SPS Description too (the files carry a different one).
* Scheduled Station Name and SPS Location (0040,0010/0011) are per station in
  clinic (its station registry), not per step, and are not loaded from the files.
* The start time keeps its seconds (``085607`` -> ``08:56:07``) so time ranges
  compare at full precision.
* No example value fails clinic's value representation checks
  (``clinic.domain.bookings.clean_procedure``); a test below asserts that.

Where the two differ, an explicit test states each server's behaviour and the
PS3.4 rule clinic follows: later values of a multi-valued station AE title; case-
and accent-insensitive person names and trailing empty name components; wild
cards on AE, LO and CS keys; optional keys only clinic matches on (Study Instance
UID, SPS ID, SPS Status, Scheduled Station Name, SPS Location: wlmscpfs ignores
them) and the one only wlmscpfs matches on (Requesting Physician); times given to
the minute or hour; the status for a value that cannot be parsed. A time-only
range crossing midnight is a deviation of clinic's, marked xfail.

Everything runs on loopback: wlmscpfs on a free port found by binding port 0, clinic
through the ``server`` fixture (port 0).
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.config import Settings
from clinic.domain.fields import clean_procedure
from clinic.server import ClinicServer
from clinic.store.models import Station
from tests.support.tools import require_tool

pytestmark = pytest.mark.dcmtk

EXAMPLES = Path("/usr/share/doc/dcmtk/examples")
WLISTDB = EXAMPLES / "wlistdb" / "OFFIS"
WLISTQRY = EXAMPLES / "wlistqry"
REFERENCE_AE = "OFFIS"  # wlmscpfs serves the folder named after the called AE title
EXTRA_AE = "EXTRA"  # a second folder for the accent test, so OFFIS stays as shipped
CLINIC_AE = "CLINIC"
PENDING = (0xFF00, 0xFF01)
START_TIMEOUT = 10.0


# -- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    """A free loopback port: bind to port 0, read the port, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FindResult:
    """What one C-FIND returned: the pending statuses, the identifiers, the final status."""

    pending: list[int]
    identifiers: list[Dataset]
    final: int | None

    @property
    def keys(self) -> set[str]:
        """The Requested Procedure IDs of the matched entries."""
        return {str(ds.RequestedProcedureID).strip() for ds in self.identifiers}


def open_association(port: int, called_ae: str) -> Association:
    """An association for worklist C-FINDs; the caller releases it."""
    ae = AE(ae_title="REFTEST")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    assert assoc.is_established, f"no association with {called_ae} on port {port}"
    return assoc


def find_on(assoc: Association, identifier: Dataset) -> FindResult:
    """Send one worklist C-FIND on an open association and collect the answers."""
    result = FindResult([], [], None)
    for status, answer in assoc.send_c_find(identifier, ModalityWorklistInformationFind):
        assert status is not None, "C-FIND timed out or the association was aborted"
        if status.Status in PENDING:
            assert answer is not None, "a pending response without an identifier"
            result.pending.append(int(status.Status))
            result.identifiers.append(answer)
        else:
            result.final = int(status.Status)
    return result


def c_find(port: int, called_ae: str, identifier: Dataset) -> FindResult:
    """Send one worklist C-FIND on an association of its own."""
    assoc = open_association(port, called_ae)
    try:
        return find_on(assoc, identifier)
    finally:
        assoc.release()


def echo_ok(port: int, called_ae: str) -> bool:
    """True when the peer accepts an association and answers C-ECHO with success."""
    ae = AE(ae_title="REFTEST")
    ae.add_requested_context(Verification)
    ae.acse_timeout = 2
    ae.network_timeout = 2
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return status is not None and int(status.Status) == 0x0000
    finally:
        assoc.release()


def dump2dcm(source: Path, target: Path) -> None:
    """Convert a DCMTK text dump into a DICOM file (explicit VR little endian)."""
    subprocess.run(
        [require_tool("dump2dcm"), "--write-xfer-little", str(source), str(target)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def query(**keys: Any) -> Dataset:
    """A worklist identifier: top-level keys by keyword, SPS item keys prefixed ``sps_``.

    Patient's Name and Requested Procedure ID are always returned (empty keys), and
    the SPS sequence is always present, as modalities send it.
    """
    ds = Dataset()
    ds.PatientName = ""
    ds.RequestedProcedureID = ""
    item = Dataset()
    for name, value in keys.items():
        if name.startswith("sps_"):
            setattr(item, name[4:], value)
        else:
            setattr(ds, name, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def with_identity(identifier: Dataset) -> Dataset:
    """Add Requested Procedure ID as an empty (universal) return key if it is missing."""
    if "RequestedProcedureID" not in identifier:
        identifier.RequestedProcedureID = ""
    return identifier


def read_query(path: Path) -> Dataset:
    """An example query file as a plain identifier (no file meta information)."""
    ds = pydicom.dcmread(path)
    identifier = Dataset()
    identifier.update(ds)  # drops the file meta
    return with_identity(identifier)


def first_value(value: Any) -> str:
    """The first value of a possibly multi-valued element, as text."""
    if isinstance(value, pydicom.multival.MultiValue):
        return str(value[0]) if len(value) else ""
    return "" if value is None else str(value)


def booking_from(ds: Dataset) -> dict[str, str]:
    """Map one example worklist file to clinic's booking fields (see the module notes)."""
    sps = ds.ScheduledProcedureStepSequence[0]
    birth = str(ds.get("PatientBirthDate", ""))
    date, clock = str(sps.ScheduledProcedureStepStartDate), str(sps.ScheduledProcedureStepStartTime)
    clock = clock.split(".")[0].ljust(6, "0")
    booking = {
        "patient_id": str(ds.PatientID),
        "patient_name": str(ds.PatientName),
        "patient_birth_date": f"{birth[:4]}-{birth[4:6]}-{birth[6:8]}" if birth else "",
        "patient_sex": str(ds.get("PatientSex", "")),
        "accession_number": str(ds.get("AccessionNumber", "")),
        "modality": str(sps.Modality),
        # Clinic keeps one station per step: the first of a multi-valued AE title.
        "station_ae_title": first_value(sps.ScheduledStationAETitle),
        "scheduled_start": (
            f"{date[:4]}-{date[4:6]}-{date[6:8]}T{clock[:2]}:{clock[2:4]}:{clock[4:6]}"
        ),
        "procedure_description": str(ds.get("RequestedProcedureDescription", "")),
        "referring_physician": str(ds.get("RequestingPhysician", "")),
        "requested_procedure_id": str(ds.RequestedProcedureID),
        "step_id": str(sps.ScheduledProcedureStepID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "performing_physician": str(sps.get("ScheduledPerformingPhysicianName", "")),
        "priority": str(ds.get("RequestedProcedurePriority", "")),
    }
    return booking


# -- fixtures -----------------------------------------------------------------------------


@dataclass
class Reference:
    """The converted example data and the running wlmscpfs."""

    db: Path
    queries: Path
    entries: list[Dataset]
    port: int


def _extra_entry(template: Dataset) -> Dataset:
    """An entry with an accented name (Latin-1), for the accent test only."""
    ds = Dataset()
    ds.update(template)
    ds.file_meta = template.file_meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "MÜLLER^HANS"
    ds.PatientID = "MH0001"
    ds.AccessionNumber = "EXTRA1"
    ds.RequestedProcedureID = "RPEXTRA1"
    ds.StudyInstanceUID = "1.2.276.0.7230010.3.2.999"
    ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle = "EXTRA1"
    ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID = "SPDEXTRA1"
    return ds


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """wlmscpfs serving the converted example database on a free loopback port."""
    wlmscpfs = require_tool("wlmscpfs")
    require_tool("dump2dcm")
    dumps = sorted(WLISTDB.glob("*.dump"))
    query_dumps = sorted(WLISTQRY.glob("wlistqry*.dump"))
    if len(dumps) != 10 or len(query_dumps) != 13:
        pytest.fail(f"DCMTK's example worklist data is missing under {EXAMPLES} (package dcmtk)")

    root = tmp_path_factory.mktemp("wlmscpfs")
    db = root / "db"
    offis = db / REFERENCE_AE
    offis.mkdir(parents=True)
    (offis / "lockfile").touch()
    for dump in dumps:
        dump2dcm(dump, offis / f"{dump.stem}.wl")
    queries = root / "queries"
    queries.mkdir()
    for dump in query_dumps:
        dump2dcm(dump, queries / f"{dump.stem}.dcm")
    entries: list[Dataset] = [pydicom.dcmread(path) for path in sorted(offis.glob("*.wl"))]

    extra = db / EXTRA_AE
    extra.mkdir()
    (extra / "lockfile").touch()
    _extra_entry(entries[0]).save_as(extra / "accent.wl", enforce_file_format=True)

    port = free_port()
    log = (root / "wlmscpfs.log").open("wb")
    proc = subprocess.Popen(
        [wlmscpfs, "-dfp", str(db), str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not echo_ok(port, REFERENCE_AE):
            if proc.poll() is not None:
                pytest.fail(f"wlmscpfs exited with {proc.returncode}; see {root / 'wlmscpfs.log'}")
            if time.monotonic() > deadline:
                pytest.fail(f"wlmscpfs did not answer C-ECHO within {START_TIMEOUT} s")
            time.sleep(0.05)
        yield Reference(db=db, queries=queries, entries=entries, port=port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The examples are dated years back, and wlmscpfs serves every date: so does clinic here."""
    return dataclasses.replace(settings, worklist_past_days=365_000)


@pytest.fixture
def clinic(server: ClinicServer, reference: Reference) -> ClinicServer:
    """The running clinic service with the example entries booked."""
    assert server.scheduler is not None
    bookings = [booking_from(ds) for ds in reference.entries]
    result = server.scheduler.import_procedures(bookings, actor="wlmscpfs-reference")
    assert result.created == len(bookings)
    return server


Compare = Callable[[Dataset], tuple[FindResult, FindResult]]


@pytest.fixture
def both(reference: Reference, clinic: ClinicServer) -> Iterator[Compare]:
    """Send identifiers to wlmscpfs and to clinic: ``(reference, clinic)`` results.

    One association to each server carries all the queries of a test.
    """
    ref_assoc = open_association(reference.port, REFERENCE_AE)
    our_assoc = open_association(clinic.mwl_port, CLINIC_AE)

    def run(identifier: Dataset) -> tuple[FindResult, FindResult]:
        ref = find_on(ref_assoc, identifier)
        ours = find_on(our_assoc, identifier)
        assert ref.final == 0x0000, f"wlmscpfs answered 0x{ref.final or 0:04X}"
        assert ours.final == 0x0000, f"clinic answered 0x{ours.final or 0:04X}"
        return ref, ours

    try:
        yield run
    finally:
        ref_assoc.release()
        our_assoc.release()


ALL = {
    "RP454G234",
    "RP4474",
    "RP488M9439",
    "RP56567",
    "RP634265",
    "RP4734734",
    "RP57463",
    "RP44580",
    "RP472",
    "RP34734H328",
}


# -- the data -----------------------------------------------------------------------------


def test_example_entries_load_unchanged(reference: Reference) -> None:
    """The identity keys are unique and every entry passes clinic's VR checks as mapped."""
    bookings = [booking_from(ds) for ds in reference.entries]
    assert {b["requested_procedure_id"] for b in bookings} == ALL
    accessions = [b["accession_number"] for b in bookings]
    assert all(accessions) and len(set(accessions)) == len(accessions)
    assert len({b["step_id"] for b in bookings}) == len(bookings)
    for booking in bookings:
        clean_procedure(booking)  # raises ValidationError naming the field


# -- the example queries ------------------------------------------------------------------

# What wlmscpfs matches for each shipped query (Requested Procedure IDs), so a change
# in either server, or in the example data, shows up as a clear failure.
EXAMPLE_EXPECTED: dict[str, set[str]] = {
    "wlistqry0": ALL,  # Patient's Name + Requested Procedure Code Sequence, all universal
    "wlistqry1": ALL,  # every top-level return key, empty SPS item
    "wlistqry2": set(),  # station AE title AA2, station name A2
    "wlistqry3": ALL,  # Patient's Name, empty SPS item
    "wlistqry4": set(),  # Modality DD
    "wlistqry5": {"RP44580", "RP56567", "RP4474", "RP488M9439", "RP634265", "RP57463"},
    "wlistqry6": set(),  # station AE title AA2
    "wlistqry7": set(),  # station AE title AA2, all return keys
    "wlistqry8": set(),  # station AE title AA2, station name A2
    "wlistqry9": set(),  # station AE title AA2, station name A2
    "wlistqry10": ALL,  # Scheduled Protocol Code Sequence inside the SPS item
    "wlistqry11": ALL,  # every key empty
    "wlistqry12": set(),  # station AE title AA4, station name A2, comments "*"
}


def compare_all(both: Compare, queries: dict[str, tuple[Dataset, set[str] | int]]) -> list[str]:
    """Run every query on both servers; return one line per query that disagrees.

    Each query's expectation is the set (or the number) of entries wlmscpfs matches,
    so a change in either server, or in the example data, fails clearly. The table
    of all results is printed (``pytest -s`` shows it).
    """
    problems = []
    for name, (identifier, expected) in queries.items():
        ref, ours = both(identifier)
        same = ours.keys == ref.keys and len(ours.identifiers) == len(ref.identifiers)
        print(
            f"{name:40} wlmscpfs {len(ref.identifiers):2}  clinic {len(ours.identifiers):2}"
            f"  {'equal' if same else 'DIFFERENT'}"
        )
        wanted = expected if isinstance(expected, int) else len(expected)
        if len(ref.keys) != wanted or (isinstance(expected, set) and ref.keys != expected):
            problems.append(f"{name}: wlmscpfs matched {sorted(ref.keys)}, expected {expected}")
        if not same:
            problems.append(
                f"{name}: wlmscpfs matched {sorted(ref.keys)}, clinic {sorted(ours.keys)}"
            )
    return problems


def test_example_queries(reference: Reference, both: Compare) -> None:
    """Every shipped query, keys as given: both servers match the same entries."""
    queries: dict[str, tuple[Dataset, set[str] | int]] = {
        name: (read_query(reference.queries / f"{name}.dcm"), expected)
        for name, expected in EXAMPLE_EXPECTED.items()
    }
    assert compare_all(both, queries) == []


# -- our own queries on keys both servers match on ---------------------------------------

OWN_QUERIES: dict[str, tuple[dict[str, Any], int]] = {
    # Patient's Name: single value and wildcards (C.2.2.2.1, C.2.2.2.4).
    "name-exact": ({"PatientName": "VIVALDI^ANTONIO"}, 3),
    "name-family-only-is-not-a-match": ({"PatientName": "VIVALDI"}, 0),
    "name-prefix": ({"PatientName": "VIVALDI*"}, 3),
    "name-suffix": ({"PatientName": "*AMADEUS"}, 2),
    "name-question-mark": ({"PatientName": "H?YDN*"}, 3),
    "name-infix": ({"PatientName": "*^FRANZ^*"}, 3),
    "name-star-only": ({"PatientName": "*"}, 10),
    # Patient ID, birth date range, sex.
    "patient-id": ({"PatientID": "HF"}, 3),
    "birth-date-range": ({"PatientBirthDate": "17000101-17991231"}, 5),
    "birth-date-from": ({"PatientBirthDate": "18000101-"}, 2),
    "birth-date-single": ({"PatientBirthDate": "17320331"}, 3),
    "patient-sex": ({"PatientSex": "M"}, 10),
    # Accession number, Requested Procedure ID and Priority.
    "accession": ({"AccessionNumber": "00002"}, 1),
    "accession-wildcard": ({"AccessionNumber": "0000?"}, 10),
    "requested-procedure-id": ({"RequestedProcedureID": "RP472"}, 1),
    "requested-procedure-id-wildcard": ({"RequestedProcedureID": "RP4*"}, 6),
    "requested-procedure-id-question-mark": ({"RequestedProcedureID": "RP47?"}, 1),
    # Wild cards on SH are case-sensitive too, and SQL's own % and _ are plain text.
    "requested-procedure-id-suffix": ({"RequestedProcedureID": "*H328"}, 1),
    "requested-procedure-id-suffix-lower-case": ({"RequestedProcedureID": "*h328"}, 0),
    "requested-procedure-id-percent": ({"RequestedProcedureID": "RP%"}, 0),
    "requested-procedure-id-underscore": ({"RequestedProcedureID": "RP_72"}, 0),
    "priority-question-mark": ({"RequestedProcedurePriority": "?IGH"}, 4),
    "priority": ({"RequestedProcedurePriority": "HIGH"}, 4),
    # SH is case-sensitive for both (only PN may ignore case).
    "priority-lower-case": ({"RequestedProcedurePriority": "high"}, 0),
    # Modality and station AE title (first values only: see the multi-value test).
    "modality": ({"sps_Modality": "CT"}, 4),
    "modality-none": ({"sps_Modality": "DX"}, 0),
    "station": ({"sps_ScheduledStationAETitle": "AA32"}, 2),
    "station-shared": ({"sps_ScheduledStationAETitle": "AB45"}, 2),
    "station-single": ({"sps_ScheduledStationAETitle": "TT67"}, 1),
    "performing-physician": ({"sps_ScheduledPerformingPhysicianName": "ROSS"}, 3),
    "performing-physician-wildcard": ({"sps_ScheduledPerformingPhysicianName": "JOHN*"}, 3),
    "performing-physician-infix": ({"sps_ScheduledPerformingPhysicianName": "J*N"}, 3),
    # SPS Start Date: single value, range, open-ended ranges (C.2.2.2.5).
    "date": ({"sps_ScheduledProcedureStepStartDate": "19960406"}, 1),
    "date-range": ({"sps_ScheduledProcedureStepStartDate": "19960101-19960430"}, 4),
    "date-from": ({"sps_ScheduledProcedureStepStartDate": "19960101-"}, 6),
    "date-until": ({"sps_ScheduledProcedureStepStartDate": "-19951231"}, 4),
    # SPS Start Time alone: every day, inclusive at the precision given.
    "time-range": ({"sps_ScheduledProcedureStepStartTime": "1000-1600"}, 4),
    "time-until-inclusive": ({"sps_ScheduledProcedureStepStartTime": "-1607"}, 8),
    "time-exact": ({"sps_ScheduledProcedureStepStartTime": "160700"}, 1),
    "time-with-fraction": ({"sps_ScheduledProcedureStepStartTime": "085607.000000"}, 1),
    # Date and time together: one combined date-time range (C.2.2.2.5.1).
    "date-time-window": (
        {
            "sps_ScheduledProcedureStepStartDate": "19960101-19960430",
            "sps_ScheduledProcedureStepStartTime": "1200-1500",
        },
        4,
    ),
    "date-time-window-crossing-days": (
        {
            "sps_ScheduledProcedureStepStartDate": "19960406-19960502",
            "sps_ScheduledProcedureStepStartTime": "1500-1200",
        },
        2,
    ),
    "date-with-time-range": (
        {
            "sps_ScheduledProcedureStepStartDate": "19960406",
            "sps_ScheduledProcedureStepStartTime": "1600-1700",
        },
        1,
    ),
    "date-with-time-range-outside": (
        {
            "sps_ScheduledProcedureStepStartDate": "19960406",
            "sps_ScheduledProcedureStepStartTime": "1700-1800",
        },
        0,
    ),
    "date-range-with-time-from": (
        {
            "sps_ScheduledProcedureStepStartDate": "19960101-19960430",
            "sps_ScheduledProcedureStepStartTime": "1200-",
        },
        4,
    ),
    "date-from-with-time-from": (
        {
            "sps_ScheduledProcedureStepStartDate": "19960101-",
            "sps_ScheduledProcedureStepStartTime": "1500-",
        },
        6,
    ),
    "date-until-with-time-until": (
        {
            "sps_ScheduledProcedureStepStartDate": "-19951231",
            "sps_ScheduledProcedureStepStartTime": "-0900",
        },
        4,
    ),
    # Several keys at once: all must match.
    "patient-and-modality": ({"PatientID": "HF", "sps_Modality": "CR"}, 1),
    "name-and-date": (
        {"PatientName": "BEETHOVEN*", "sps_ScheduledProcedureStepStartDate": "19960501-"},
        1,
    ),
}


def test_own_queries(both: Compare) -> None:
    """Our queries on every key both servers match on: the same entries match."""
    queries: dict[str, tuple[Dataset, set[str] | int]] = {
        name: (query(**keys), expected) for name, (keys, expected) in OWN_QUERIES.items()
    }
    assert compare_all(both, queries) == []


# -- where clinic deliberately differs ----------------------------------------------------


def test_multi_valued_station_ae_title(both: Compare) -> None:
    """A later value of a multi-valued Scheduled Station AE Title finds the entry in
    wlmscpfs only.

    PS3.4 C.2.2.3: when an entity's attribute has several values, it matches if any
    value matches. wlmscpfs keeps all values; clinic books one station per step
    (the first value here), so ``AA33`` (second of ``AA32\\AA33``) finds nothing.
    """
    ref, ours = both(query(sps_ScheduledStationAETitle="AA33"))
    assert ref.keys == {"RP454G234"}
    assert ours.keys == set()
    ref, ours = both(query(sps_ScheduledStationAETitle="NN77"))
    assert ref.keys == {"RP56567", "RP472"}
    assert ours.keys == set()
    ref, ours = both(query(sps_ScheduledStationAETitle="AA32"))
    assert ref.keys == ours.keys == {"RP454G234", "RP634265"}
    answer = next(ds for ds in ours.identifiers if ds.RequestedProcedureID == "RP454G234")
    assert answer.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "AA32"


def test_person_names_ignore_case(both: Compare) -> None:
    """Clinic matches PN ignoring case; wlmscpfs compares literally.

    PS3.4 C.2.2.2.1 (and C.2.2.2.4 for wild cards): for a PN value "an application
    may perform literal matching that is either case-sensitive, or that is
    insensitive to some or all aspects of case, position, ideographic/phonetic,
    accent, or other factors"; front desks expect ``vivaldi`` to find VIVALDI.
    """
    cases = [
        ({"PatientName": "vivaldi*"}, {"RP454G234", "RP488M9439", "RP56567"}),
        ({"PatientName": "Haydn^Franz^Joseph"}, {"RP634265", "RP4734734", "RP57463"}),
        ({"sps_ScheduledPerformingPhysicianName": "ross"}, {"RP488M9439", "RP57463", "RP472"}),
    ]
    for keys, expected in cases:
        ref, ours = both(query(**keys))
        assert ref.keys == set(), keys
        assert ours.keys == expected, keys


def test_person_names_ignore_accents(reference: Reference, clinic: ClinicServer) -> None:
    """``MULLER*`` finds MÜLLER in clinic; wlmscpfs needs the accent (PS3.4 C.2.2.2.4).

    The same accented entry is served by wlmscpfs from a second folder (called AE
    EXTRA), so the example database stays as shipped.
    """
    assert clinic.scheduler is not None
    extra = pydicom.dcmread(reference.db / EXTRA_AE / "accent.wl")
    clinic.scheduler.book(booking_from(extra), actor="wlmscpfs-reference")

    plain = query(PatientName="MULLER*")
    assert c_find(reference.port, EXTRA_AE, plain).keys == set()
    assert c_find(clinic.mwl_port, CLINIC_AE, plain).keys == {"RPEXTRA1"}

    accented = query(PatientName="MÜLLER*")
    accented.SpecificCharacterSet = "ISO_IR 100"
    assert c_find(reference.port, EXTRA_AE, accented).keys == {"RPEXTRA1"}
    ours = c_find(clinic.mwl_port, CLINIC_AE, accented)
    assert ours.keys == {"RPEXTRA1"}
    assert ours.identifiers[0].PatientName == "MÜLLER^HANS"


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_wildcards_on_more_value_representations(both: Compare) -> None:
    """Clinic applies wild cards to AE, LO and CS keys too; wlmscpfs finds nothing.

    PS3.4 C.2.2.2.4 allows wild card matching on AE, CS, LO, LT, PN, SH, ST, UC, UR
    and UT values; wlmscpfs applies ``*`` and ``?`` to some keys only (Patient's
    Name, Accession Number, Requested Procedure ID ...) and compares Scheduled
    Station AE Title, Patient ID and Modality literally.
    """
    cases = [
        ({"sps_ScheduledStationAETitle": "AA3*"}, {"RP454G234", "RP634265"}),
        ({"PatientID": "AV*"}, {"RP454G234", "RP488M9439", "RP56567"}),
        ({"sps_Modality": "M?"}, {"RP454G234", "RP4474"}),
    ]
    for keys, expected in cases:
        ref, ours = both(query(**keys))
        assert ref.keys == set(), keys
        assert ours.keys == expected, keys


def _name_station(server: ClinicServer, ae_title: str, name: str, location: str) -> None:
    assert server.session_factory is not None
    with server.session_factory() as session:
        station = session.query(Station).filter_by(ae_title=ae_title).one()
        station.name = name
        station.location = location
        session.commit()


def test_keys_only_clinic_matches(both: Compare, clinic: ClinicServer) -> None:
    """Optional keys clinic matches on and wlmscpfs ignores (it returns every entry).

    PS3.4 Table K.6-1 lists them as optional matching keys; an SCP may support
    matching on them. Clinic does, with single value matching (C.2.2.2.1) and, for
    Study Instance UID, List of UID Matching (C.2.2.2.2). Station name and location
    come from clinic's station registry, so the test names station TT67 first.
    """
    _name_station(clinic, "TT67", "STN94594", "B58F56")
    uids = ["1.2.276.0.7230010.3.2.101", "1.2.276.0.7230010.3.2.102"]
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"StudyInstanceUID": uids[0]}, {"RP454G234"}),
        ({"StudyInstanceUID": uids}, {"RP454G234", "RP488M9439"}),
        ({"sps_ScheduledProcedureStepID": "SPD3445"}, {"RP454G234"}),
        ({"sps_ScheduledProcedureStepStatus": "STARTED"}, set()),
        ({"sps_ScheduledProcedureStepStatus": "SCHEDULED"}, ALL),
        ({"sps_ScheduledStationName": "STN94594"}, {"RP4474"}),
        ({"sps_ScheduledProcedureStepLocation": "B58F56"}, {"RP4474"}),
    ]
    for keys, expected in cases:
        ref, ours = both(query(**keys))
        assert ref.keys == ALL, keys
        assert ours.keys == expected, keys


def test_time_values_cover_their_precision(both: Compare) -> None:
    """A time given to the minute or the hour covers that whole minute or hour in clinic.

    PS3.4 C.2.2.2.5.2 matches times "between <time1> and <time2> inclusive"; clinic
    reads ``0856`` (a TM value of minute precision, PS3.5 6.2) as the whole minute
    08:56, so ``0856-0856`` includes 08:56:07 and ``08-09`` runs to 09:59:59.
    wlmscpfs reads the same values as 08:56:00 and 09:00:00. The example data keep
    seconds, so only queries written with less precision differ.
    """
    time_key = "sps_ScheduledProcedureStepStartTime"
    cases: list[tuple[dict[str, str], set[str], set[str]]] = [
        ({time_key: "0856-0856"}, set(), {"RP454G234"}),
        ({time_key: "08"}, set(), {"RP454G234"}),
        ({time_key: "08-09"}, {"RP454G234"}, {"RP454G234", "RP4734734"}),
        (
            {"sps_ScheduledProcedureStepStartDate": "19951015", time_key: "0856"},
            set(),
            {"RP454G234"},
        ),
    ]
    for keys, reference_keys, clinic_keys in cases:
        ref, ours = both(query(**keys))
        assert ref.keys == reference_keys, keys
        assert ours.keys == clinic_keys, keys


def test_time_range_crossing_midnight(reference: Reference, clinic: ClinicServer) -> None:
    """``1700-0800`` without a date: wlmscpfs matches nothing; clinic refuses it (0xC000).

    PS3.4 C.2.2.2.5.2: "<time1> - <time2>, where <time1> is less or equal to
    <time2>" ... "Range Matching crossing midnight is not supported". clinic says so
    with an Error Comment, as it does for any range that ends before it starts,
    rather than answering an empty list the modality would read as "no work". A night
    window is written with dates (combined date-time range, C.2.2.2.5.1), which both
    servers match alike (``date-time-window-crossing-days`` above).
    """
    night = query(sps_ScheduledProcedureStepStartTime="1700-0800")
    ref = c_find(reference.port, REFERENCE_AE, night)
    assert (ref.keys, ref.final) == (set(), 0x0000)
    ours = c_find(clinic.mwl_port, CLINIC_AE, night)
    assert (ours.keys, ours.final) == (set(), 0xC000)


def test_trailing_empty_name_components(both: Compare) -> None:
    """``VIVALDI^ANTONIO^^`` is VIVALDI^ANTONIO for clinic; wlmscpfs compares literally.

    PS3.5 6.2.1: empty trailing components of a PN may be left out, so both spell
    the same name; PS3.4 C.2.2.2.1 lets PN matching ignore such encoding factors.
    """
    ref, ours = both(query(PatientName="VIVALDI^ANTONIO^^"))
    assert ref.keys == set()
    assert ours.keys == {"RP454G234", "RP488M9439", "RP56567"}


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_malformed_value_statuses(reference: Reference, clinic: ClinicServer) -> None:
    """A date that cannot be parsed: wlmscpfs answers 0xA900, clinic 0xC000.

    PS3.4 K.4.1.1.4: 0xA900 is "Identifier does not match SOP Class", 0xC000
    "Unable to process"; clinic keeps 0xA900 for structural errors (a wrong VR, a
    sequence where a value belongs) and answers a value it cannot parse with 0xC000
    and an Error Comment.
    """
    bad = query(PatientBirthDate="1800-")
    assert c_find(reference.port, REFERENCE_AE, bad).final == 0xA900
    assert c_find(clinic.mwl_port, CLINIC_AE, bad).final == 0xC000


def test_requesting_physician_is_not_a_clinic_key(both: Compare) -> None:
    """wlmscpfs matches Requesting Physician (0032,1032); clinic does not support it.

    Clinic ignores the optional key, answers it empty and says so with pending
    status 0xFF01 (PS3.4 K.4.1.1.4: one or more optional keys not supported), as
    C.2.2.2 leaves matching on optional keys to the SCP.
    """
    ref, ours = both(query(RequestingPhysician="SMITH"))
    assert ref.keys == {"RP454G234"}
    assert ours.keys == ALL
    assert set(ours.pending) == {0xFF01}
    assert all(ds.RequestingPhysician in (None, "") for ds in ours.identifiers)


def test_called_ae_title_is_checked(clinic: ClinicServer) -> None:
    """Clinic refuses an association that calls another AE title (the default policy)."""
    ae = AE(ae_title="REFTEST")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", clinic.mwl_port, ae_title="NOTCLINIC")
    assert assoc.is_rejected
