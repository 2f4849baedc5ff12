"""DCMTK as a real modality: dcmpsprt builds a stored print, dcmprscu sends it to clinic serve.

The job ends as a PDF with the right gray in each box, and as a job in a real CUPS queue.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from clinic.printing.layout import Rect, film_dimensions, image_boxes, parse_display_format
from clinic.printing.render import HEADER_MM
from tests.support.printing import (
    Cups,
    page_sizes_mm,
    rasterize,
    running_cups,
    sample,
    wait_for_job,
)
from tests.support.serve import ServeProcess, serve_process
from tests.support.tools import require_tool
from tests.support.waiting import wait_for

pytestmark = pytest.mark.dcmtk

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
VALUES = [40, 100, 160, 220]


def write_image(path: Path, value: int) -> None:
    """A 64x64 8-bit image: a square of ``value`` on black, an identity VOI window."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "PRINT^TEST"
    ds.PatientID = "PRINT1"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate, ds.StudyTime = "20260101", "120000"
    ds.AccessionNumber = ds.ReferringPhysicianName = ""
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.Modality, ds.ConversionType = "OT", "WSD"
    pixels = np.zeros((64, 64), np.uint8)
    pixels[0, 0] = 255
    pixels[16:48, 16:48] = value
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = 64, 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.WindowCenter, ds.WindowWidth = "127.5", "256"
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


PRINT_CFG = """\
[[GENERAL]]
[DATABASE]
Directory = {db}
[PRINT]
Directory = {spool}
DetailedLog = false
BinaryLog = false
[[COMMUNICATION]]
[TARGET]
Type = PRINTER
Aetitle = PDFPRINT
Description = clinic print SCP
Hostname = 127.0.0.1
Port = {port}
MaxPDU = 32768
ImplicitOnly = false
DisableNewVRs = false
DisplayFormat = 1,1\\2,1\\2,2\\3,3
FilmSizeID = 8INX10IN\\14INX17IN\\A4
MagnificationType = REPLICATE\\BILINEAR\\CUBIC\\NONE
BorderDensity = BLACK\\WHITE
EmptyImageDensity = BLACK\\WHITE
Supports12Bit = {twelve}
SupportsPresentationLUT = true
SupportsImageSize = true
SupportsTrim = true
Annotation = true
"""


@pytest.fixture
def cups(tmp_path: Path) -> Iterator[Cups]:
    with running_cups(tmp_path) as daemon:
        yield daemon


@pytest.fixture
def serve(tmp_path: Path, cups: Cups) -> Iterator[ServeProcess]:
    # The default printer sends every job on to the CUPS queue as well.
    config = tmp_path / "clinic.toml"
    config.write_text(
        f'[printers.PDFPRINT]\ncups_queue = "{cups.queue}"\ncups_server = "{cups.socket}"\n',
        encoding="utf-8",
    )
    with serve_process(tmp_path / "var", config, tmp_path) as process:
        yield process
        assert process.stop() == 0, process.log()


@pytest.mark.parametrize("twelve", ["true", "false"])
def test_dcmpsprt_and_dcmprscu_print_on_clinic_serve(
    serve: ServeProcess, cups: Cups, tmp_path: Path, twelve: str, database_url: str
) -> None:
    dcmpsprt, dcmprscu = require_tool("dcmpsprt"), require_tool("dcmprscu")
    images = []
    for n, value in enumerate(VALUES):
        path = tmp_path / f"img{n}.dcm"
        write_image(path, value)
        images.append(str(path))
    db, spool = tmp_path / "db", tmp_path / "spool"
    db.mkdir()
    spool.mkdir()
    cfg = tmp_path / "print.cfg"
    cfg.write_text(
        PRINT_CFG.format(db=db, spool=spool, port=serve.print_port, twelve=twelve),
        encoding="utf-8",
    )
    built = subprocess.run(
        [dcmpsprt, "-c", str(cfg), "-p", "TARGET", "--layout", "2", "2"]
        + ["--filmsize", "14INX17IN", *images],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert built.returncode == 0, built.stderr
    (stored_print,) = db.glob("SP_*.dcm")
    sent = subprocess.run(
        [dcmprscu, "-c", str(cfg), "-p", "TARGET", str(stored_print)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    assert "error" not in sent.stderr.lower(), sent.stderr

    engine = create_engine(database_url or f"sqlite:///{tmp_path / 'var' / 'clinic.db'}")
    try:
        job = wait_for_job(sessionmaker(engine))
    finally:
        engine.dispose()
    assert job.calling_ae_title == "DCMPSTAT" and job.films == 1
    pdf = Path(job.pdf_path)
    assert page_sizes_mm(pdf) == [pytest.approx((355.6, 431.8), abs=0.2)]
    page = rasterize(pdf, 30)[0]
    width, height = film_dimensions("14INX17IN", "PORTRAIT")
    boxes = image_boxes(
        parse_display_format("STANDARD\\2,2"), Rect(0, HEADER_MM, width, height - HEADER_MM)
    )
    # dcmpsprt applies the image's VOI window and sends P-values: the squares keep their gray.
    for box, value in zip(boxes, VALUES, strict=True):
        assert sample(page, *box.center, 30) == pytest.approx((value,) * 3, abs=3)
    # ... and the same PDF reached the CUPS queue.
    (received,) = wait_for(lambda: sorted(cups.out.glob("*.prn")), what="the CUPS job file")
    assert received.read_bytes() == pdf.read_bytes()
