"""Worklist query speed, side by side: clinic, DCMTK wlmscpfs, Orthanc, and a canned floor.

For each size (default 1k, 10k, 100k bookings) the same bookings are loaded into clinic
(``clinic procedures import``), and as ``.wl`` files into DCMTK ``wlmscpfs`` and into
Orthanc's worklist plugin. Each typical modality query is timed as one whole
association (associate, C-FIND, release), the servers alternating, median of several
runs. A minimal pynetdicom SCP that answers from a prepared list gives the floor that
pynetdicom itself allows. Prints one table per size.

The queries are timed from a lean raw-socket SCU (``lean_scu.py``) so that the client's
own cost is small next to any server's; ``--client pynetdicom`` times them from a
pynetdicom SCU instead. Answers (accession numbers) are compared across the servers.

Usage::

    python benchmarks/mwl.py [--sizes 1000,10000,100000] [--runs 5] [--client lean]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dsutils import decode
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lean_scu  # noqa: E402
from common import (  # noqa: E402
    free_port,
    make_bookings,
    start_clinic,
    stop,
    wait_for_echo,
)

RETURN_TOP = [
    ("PatientName", ""),
    ("PatientID", ""),
    ("PatientBirthDate", ""),
    ("PatientSex", ""),
    ("AccessionNumber", ""),
    ("StudyInstanceUID", ""),
    ("RequestedProcedureID", ""),
    ("RequestedProcedureDescription", ""),
    ("ReferringPhysicianName", ""),
]
RETURN_SPS = [
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "Modality",
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepID",
]


def make_query(top: dict[str, str], sps: dict[str, str]) -> Dataset:
    """A typical modality worklist query with the given matching keys."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in RETURN_TOP:
        setattr(ds, keyword, top.get(keyword, value))
    item = Dataset()
    for keyword in RETURN_SPS:
        setattr(item, keyword, sps.get(keyword, ""))
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def queries(rows: list[dict[str, str]]) -> dict[str, Dataset]:
    """The five typical queries, with values taken from the generated bookings."""
    today = dt.date.today()
    in_two_days = today + dt.timedelta(days=2)
    sample = rows[len(rows) // 2]
    return {
        "station + today": make_query(
            {},
            {
                "ScheduledStationAETitle": "XRAY1",
                "ScheduledProcedureStepStartDate": today.strftime("%Y%m%d"),
            },
        ),
        "modality + 3 days": make_query(
            {},
            {
                "Modality": "PX",
                "ScheduledProcedureStepStartDate": f"{today:%Y%m%d}-{in_two_days:%Y%m%d}",
            },
        ),
        "name prefix": make_query({"PatientName": "SCHM*"}, {}),
        "patient ID": make_query({"PatientID": sample["patient_id"]}, {}),
        "accession": make_query({"AccessionNumber": sample["accession_number"]}, {}),
    }


def to_dataset(row: dict[str, str]) -> Dataset:
    """A booking as a worklist file's dataset (what wlmscpfs and Orthanc read)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = row["patient_name"]
    ds.PatientID = row["patient_id"]
    ds.PatientBirthDate = row["patient_birth_date"].replace("-", "")
    ds.PatientSex = row["patient_sex"]
    ds.AccessionNumber = row["accession_number"]
    ds.StudyInstanceUID = row["study_instance_uid"]
    ds.RequestedProcedureID = row["requested_procedure_id"]
    ds.RequestedProcedureDescription = row["procedure_description"]
    ds.ReferringPhysicianName = row["referring_physician"]
    start = dt.datetime.strptime(row["scheduled_start"], "%Y-%m-%dT%H:%M")
    item = Dataset()
    item.ScheduledStationAETitle = row["station_ae_title"]
    item.ScheduledProcedureStepStartDate = start.strftime("%Y%m%d")
    item.ScheduledProcedureStepStartTime = start.strftime("%H%M%S")
    item.Modality = row["modality"]
    item.ScheduledPerformingPhysicianName = ""
    item.ScheduledProcedureStepDescription = row["procedure_description"]
    item.ScheduledProcedureStepID = row["step_id"]
    item.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = [item]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
    ds.file_meta.MediaStorageSOPInstanceUID = row["study_instance_uid"]
    return ds


def write_wl_files(rows: list[dict[str, str]], folder: Path) -> None:
    """Write one ``.wl`` file per booking into ``folder`` (and wlmscpfs's lockfile)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lockfile").touch()
    for index, row in enumerate(rows):
        to_dataset(row).save_as(folder / f"wl{index:07d}.wl", enforce_file_format=True)


def _nodelay(event: evt.Event) -> None:
    # The modality side sends each PDU at once too (no Nagle delay), as C++ toolkits do.
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


SCU = AE(ae_title="XRAY1")
SCU.add_requested_context(ModalityWorklistInformationFind)


def pynetdicom_query(port: int, called: str, query: Dataset) -> list[str]:
    """One whole association from a pynetdicom SCU. Returns the accession numbers."""
    assoc = SCU.associate(
        "127.0.0.1", port, ae_title=called, evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)]
    )
    if not assoc.is_established:
        raise RuntimeError(f"association to {called} refused")
    found = []
    for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind):
        if status and status.Status in (0xFF00, 0xFF01) and ds is not None:
            found.append(str(ds.get("AccessionNumber", "")))
        elif status and status.Status not in (0x0000, 0xFF00, 0xFF01):
            raise RuntimeError(f"{called} answered 0x{status:04X}")
    assoc.release()
    return sorted(found)


def lean_query(port: int, called: str, query: Dataset) -> list[bytes]:
    """One whole association from the lean SCU; the identifiers stay undecoded."""
    return lean_scu.find("127.0.0.1", port, "XRAY1", called, query)


def accession_numbers(answers: list[str] | list[bytes]) -> list[str]:
    """The sorted accession numbers of a query's answers (decoding them if needed)."""
    found = []
    for answer in answers:
        if isinstance(answer, bytes):
            ds = decode(BytesIO(answer), False, True)
            found.append(str(ds.get("AccessionNumber", "")))
        else:
            found.append(answer)
    return sorted(found)


CLIENTS: dict[str, Callable[[int, str, Dataset], list[str] | list[bytes]]] = {
    "lean": lean_query,
    "pynetdicom": pynetdicom_query,
}


FLOOR_SCP = textwrap.dedent("""
    import pickle, socket, sys
    from pynetdicom import AE, evt, _config
    from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification
    _config.LOG_REQUEST_IDENTIFIERS = False
    answers = pickle.load(open(sys.argv[1], "rb"))
    def find(event):
        ident = event.identifier
        item = ident.ScheduledProcedureStepSequence[0]
        key = "|".join(str(ds.get(k, "")) for ds, k in (
            (ident, "AccessionNumber"), (ident, "PatientID"), (ident, "PatientName"),
            (item, "ScheduledStationAETitle"), (item, "Modality")))
        for ds in answers[key]:
            yield 0xFF00, ds
    ae = AE(ae_title="FLOOR")
    ae.add_supported_context(ModalityWorklistInformationFind)
    ae.add_supported_context(Verification)
    def nodelay(event):
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ae.start_server(("127.0.0.1", int(sys.argv[2])),
                    evt_handlers=[(evt.EVT_C_FIND, find), (evt.EVT_CONN_OPEN, nodelay)])
""")


def query_key(query: Dataset) -> str:
    """How the floor SCP recognises a query."""
    item = query.ScheduledProcedureStepSequence[0]
    return "|".join(
        [
            str(query.get("AccessionNumber", "")),
            str(query.get("PatientID", "")),
            str(query.get("PatientName", "")),
            str(item.get("ScheduledStationAETitle", "")),
            str(item.get("Modality", "")),
        ]
    )


def collect_answers(port: int, called: str, query: Dataset) -> list[Dataset]:
    """Every response identifier clinic gives for ``query`` (to replay from the floor)."""
    assoc = SCU.associate("127.0.0.1", port, ae_title=called)
    out = [
        ds
        for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind)
        if status and status.Status in (0xFF00, 0xFF01)
    ]
    assoc.release()
    return out


def bench_size(size: int, runs: int, work: Path, client: str = "lean") -> list[list[str]]:
    """Load ``size`` bookings everywhere, time every query; return the table rows."""
    rows = make_bookings(size)
    print(f"\n## {size} bookings", flush=True)
    t0 = time.monotonic()
    data = work / f"clinic-{size}"
    data.mkdir()
    (work / f"import-{size}.json").write_text(json.dumps(rows, ensure_ascii=False))
    subprocess.run(
        ["clinic", "procedures", "import", str(work / f"import-{size}.json")],
        env={
            **__import__("os").environ,
            "CLINIC_DATA_DIR": str(data),
            "CLINIC_LOG_LEVEL": "WARNING",
        },
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"clinic import: {time.monotonic() - t0:.1f} s", flush=True)
    t0 = time.monotonic()
    wldb = work / f"wldb-{size}"
    write_wl_files(rows, wldb / "WLMSCPFS")
    print(f"worklist files: {time.monotonic() - t0:.1f} s", flush=True)

    procs = []
    servers: dict[str, tuple[int, str]] = {}
    try:
        # The peers serve every booking whatever its day; so does clinic here, for the
        # answers to be the same (by default it leaves out last week's unperformed ones).
        clinic, ports = start_clinic(data, {"CLINIC_WORKLIST_PAST_DAYS": "36500"})
        procs.append(clinic)
        servers["clinic"] = (ports["worklist"], "CLINIC")

        wl_port = free_port()
        procs.append(
            subprocess.Popen(
                ["wlmscpfs", "-dfp", str(wldb), str(wl_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        servers["wlmscpfs"] = (wl_port, "WLMSCPFS")

        orthanc_port, http_port = free_port(), free_port()
        orthanc_dir = work / f"orthanc-{size}"
        orthanc_dir.mkdir()
        config = {
            "Name": "BENCH",
            "StorageDirectory": str(orthanc_dir / "db"),
            "IndexDirectory": str(orthanc_dir / "db"),
            "DicomAet": "ORTHANC",
            "DicomPort": orthanc_port,
            "HttpPort": http_port,
            "RemoteAccessAllowed": False,
            "Plugins": ["/usr/share/orthanc/plugins/libModalityWorklists.so"],
            "Worklists": {"Enable": True, "Database": str(wldb / "WLMSCPFS")},
            "DicomAlwaysAllowFindWorklist": True,
            "DicomCheckCalledAet": False,
            "DefaultEncoding": "Utf8",
        }
        (orthanc_dir / "orthanc.json").write_text(json.dumps(config))
        procs.append(
            subprocess.Popen(
                ["Orthanc", str(orthanc_dir / "orthanc.json")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        servers["orthanc"] = (orthanc_port, "ORTHANC")

        for port, called in servers.values():
            wait_for_echo(port, called)

        qs = queries(rows)
        answers = {query_key(q): collect_answers(*servers["clinic"], q) for q in qs.values()}
        floor_port = free_port()
        pickle_path = work / f"floor-{size}.pickle"
        pickle_path.write_bytes(pickle.dumps(answers))
        procs.append(
            subprocess.Popen([sys.executable, "-c", FLOOR_SCP, str(pickle_path), str(floor_port)])
        )
        servers["floor"] = (floor_port, "FLOOR")
        wait_for_echo(floor_port, "FLOOR")

        run_query = CLIENTS[client]
        table = []
        for label, query in qs.items():
            times: dict[str, list[float]] = {name: [] for name in servers}
            results: dict[str, list[str]] = {}
            for _ in range(runs):
                for name, (port, called) in servers.items():
                    t0 = time.perf_counter()
                    answers = run_query(port, called, query)
                    times[name].append(time.perf_counter() - t0)
                    results[name] = accession_numbers(answers)
            med = {name: statistics.median(v) * 1000 for name, v in times.items()}
            same = all(results[n] == results["clinic"] for n in ("wlmscpfs", "orthanc"))
            table.append(
                [
                    str(size),
                    label,
                    str(len(results["clinic"])),
                    *(f"{med[n]:.1f}" for n in ("clinic", "wlmscpfs", "orthanc", "floor")),
                    f"{med['clinic'] / med['wlmscpfs']:.2f}",
                    f"{med['clinic'] / med['orthanc']:.2f}",
                    f"{med['clinic'] / med['floor']:.2f}",
                    "yes"
                    if same
                    else "NO "
                    + ",".join(f"{n}={len(results[n])}" for n in ("wlmscpfs", "orthanc")),
                ]
            )
            print(" | ".join(table[-1]), flush=True)
        return table
    finally:
        for proc in procs:
            stop(proc)


HEADER = [
    "bookings",
    "query",
    "matches",
    "clinic ms",
    "wlmscpfs ms",
    "orthanc ms",
    "floor ms",
    "x wlmscpfs",
    "x orthanc",
    "x floor",
    "same answers",
]


def print_table(rows: list[list[str]], out: Callable[[str], None] = print) -> None:
    """Print a Markdown table."""
    out("| " + " | ".join(HEADER) + " |")
    out("|" + "---|" * len(HEADER))
    for row in rows:
        out("| " + " | ".join(row) + " |")


def main() -> None:
    """Parse arguments, run every size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="lean",
        help="the SCU that times the queries: the lean raw-socket SCU (default), whose own "
        "cost per answer is small, or pynetdicom's, which costs ~0.5 ms per answer received",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    all_rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="mwl-bench-") as tmp:
        for size in sizes:
            all_rows.extend(bench_size(size, args.runs, Path(tmp), args.client))
    print()
    print_table(all_rows)


if __name__ == "__main__":
    main()
