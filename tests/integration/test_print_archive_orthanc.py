"""The archive with Orthanc as the PACS: a film printed by a booked station lands in the exam.

Orthanc (Debian package ``orthanc``) runs with a configuration of its own on free ports,
its database in the test's folder; what it stored is read back through its REST API.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clinic.config import Settings
from clinic.domain.print_links import PrintLinks
from clinic.server import ClinicServer
from tests.support.archive import (
    ENCAPSULATED_PDF,
    PRINTER,
    SECONDARY_CAPTURE,
    free_port,
    job_row,
    listening,
    print_films,
    wait_archive,
)
from tests.support.exams import book, start_exam
from tests.support.tools import require_tool
from tests.support.waiting import wait_for

ORTHANC_AE = "ORTHANC"


@dataclasses.dataclass
class Orthanc:
    dicom_port: int
    http_port: int

    def raw(self, path: str) -> bytes:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            data: bytes = response.read()
            return data

    def get(self, path: str) -> Any:
        return json.loads(self.raw(path))

    def sop_class(self, instance: str) -> str:
        return self.raw(f"/instances/{instance}/metadata/SopClassUid").decode()


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    binary = require_tool("Orthanc")
    folder = tmp_path / "orthanc"
    folder.mkdir()
    server = Orthanc(free_port(), free_port())
    config = {
        "Name": "clinic-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "DicomAet": ORTHANC_AE,
        "DicomPort": server.dicom_port,
        "HttpPort": server.http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowStore": True,
        "DicomCheckCalledAet": True,
        "Plugins": [],
        "HttpServerEnabled": True,
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    process = subprocess.Popen(
        [binary, str(folder / "config.json")],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def up() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            if not (listening(server.http_port) and listening(server.dicom_port)):
                return False
            return bool(server.get("/system"))

        wait_for(up, timeout=60, what="Orthanc")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def archive_to_orthanc(settings: Settings, orthanc: Orthanc) -> ClinicServer:
    table = {
        "archive": f"{ORTHANC_AE}@127.0.0.1:{orthanc.dicom_port}",
        "archive_as": ["pdf", "sc"],
        "archive_retry_max_seconds": 1,
    }
    srv = ClinicServer(dataclasses.replace(settings, printers={PRINTER: table}, uid_root="1.2.3"))
    srv.start()
    return srv


def test_printed_film_lands_in_the_exam_in_orthanc(settings: Settings, orthanc: Orthanc) -> None:
    server = archive_to_orthanc(settings, orthanc)
    try:
        now = dt.datetime.now()
        pano = book(server, 1, now)
        other = book(server, 2, now + dt.timedelta(hours=5))
        start_exam(server, pano)
        job_id = print_films(server, films=1)
        wait_archive(server, job_id, "sent")

        (study_id,) = orthanc.get("/studies")
        study = orthanc.get(f"/studies/{study_id}")
        assert study["MainDicomTags"]["StudyInstanceUID"] == pano.study_instance_uid
        assert study["MainDicomTags"]["AccessionNumber"] == pano.accession_number
        assert study["PatientMainDicomTags"]["PatientID"] == pano.patient.patient_id
        assert study["PatientMainDicomTags"]["PatientName"] == pano.patient.name
        instances = orthanc.get(f"/studies/{study_id}/instances")
        classes = sorted(orthanc.sop_class(i["ID"]) for i in instances)
        assert classes == sorted([ENCAPSULATED_PDF, SECONDARY_CAPTURE])
        # The PDF Orthanc holds is the job's.
        pdf_instance = next(i for i in instances if orthanc.sop_class(i["ID"]) == ENCAPSULATED_PDF)
        stored = orthanc.raw(f"/instances/{pdf_instance['ID']}/pdf")
        assert stored.rstrip(b"\0") == Path(job_row(server, job_id).pdf_path).read_bytes()

        # Moved to another booking: a correction arrives under that patient and study.
        assert server.session_factory is not None and server.spool is not None
        PrintLinks(server.session_factory).set_link(job_id, other.id, "web:alice")
        server.spool.refile(job_id)

        def two_studies() -> list[str] | None:
            studies = orthanc.get("/studies")
            return studies if len(studies) == 2 else None

        studies = wait_for(two_studies, timeout=60, what="the correction in Orthanc")
        uids = {orthanc.get(f"/studies/{s}")["MainDicomTags"]["StudyInstanceUID"] for s in studies}
        assert uids == {pano.study_instance_uid, other.study_instance_uid}
    finally:
        server.stop()
