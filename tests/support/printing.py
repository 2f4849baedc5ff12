"""A pynetdicom Basic Print SCU, PDF-to-pixels helpers and a private CUPS for the print tests."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from reportlab.pdfgen import canvas
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.printing import session as s
from clinic.store.models import PrintJob
from tests.support.tools import require_tool
from tests.support.waiting import wait_for

FILM_SESSION = s.FILM_SESSION
FILM_BOX = s.FILM_BOX
GRAY_BOX = s.GRAYSCALE_IMAGE_BOX
COLOR_BOX = s.COLOR_IMAGE_BOX


def gray_image(
    rows: int,
    columns: int,
    value: int,
    bits: int = 8,
    photometric: str = "MONOCHROME2",
) -> Dataset:
    """A uniform grayscale image item for a Basic Grayscale Image Sequence."""
    item = Dataset()
    item.SamplesPerPixel = 1
    item.PhotometricInterpretation = photometric
    item.Rows = rows
    item.Columns = columns
    item.PixelAspectRatio = [1, 1]
    if bits == 8:
        item.BitsAllocated, item.BitsStored, item.HighBit = 8, 8, 7
        item.PixelData = np.full((rows, columns), value, dtype=np.uint8).tobytes()
    else:
        item.BitsAllocated, item.BitsStored, item.HighBit = 16, 12, 11
        item.PixelData = np.full((rows, columns), value, dtype="<u2").tobytes()
    item.PixelRepresentation = 0
    return item


def color_image(rows: int, columns: int, rgb: tuple[int, int, int], planar: int = 1) -> Dataset:
    """A uniform RGB image item for a Basic Color Image Sequence."""
    item = Dataset()
    item.SamplesPerPixel = 3
    item.PhotometricInterpretation = "RGB"
    item.PlanarConfiguration = planar
    item.Rows = rows
    item.Columns = columns
    item.BitsAllocated, item.BitsStored, item.HighBit = 8, 8, 7
    item.PixelRepresentation = 0
    pixels = np.empty((rows, columns, 3), dtype=np.uint8)
    pixels[...] = rgb
    item.PixelData = (pixels.transpose(2, 0, 1) if planar else pixels).tobytes()
    return item


class PrintScu:
    """A modality's print client on one association, remembering assigned UIDs."""

    def __init__(
        self,
        port: int,
        called: str = "PDFPRINT",
        calling: str = "MODALITY",
        color: bool = False,
        transfer_syntax: str | None = None,
    ) -> None:
        self.meta = s.COLOR_META if color else s.GRAYSCALE_META
        self.box_class = COLOR_BOX if color else GRAY_BOX
        ae = AE(ae_title=calling)
        if transfer_syntax:
            ae.add_requested_context(self.meta, [transfer_syntax])
        else:
            ae.add_requested_context(self.meta)
        ae.add_requested_context(s.PRESENTATION_LUT)
        ae.add_requested_context(s.ANNOTATION_BOX)
        ae.add_requested_context(s.PRINT_JOB)
        self.last_created_uid: str | None = None
        handlers: list[Any] = [(evt.EVT_DIMSE_RECV, self._on_receive)]
        self.assoc = ae.associate("127.0.0.1", port, ae_title=called, evt_handlers=handlers)
        assert self.assoc.is_established

    def _on_receive(self, event: evt.Event) -> None:
        command = event.message.command_set
        if "AffectedSOPInstanceUID" in command and command.CommandField == 0x8140:
            self.last_created_uid = str(command.AffectedSOPInstanceUID)

    def create(
        self, sop_class: str, ds: Dataset, uid: str | None = None, meta: bool = True
    ) -> tuple[int, str | None, Dataset | None]:
        """N-CREATE; returns status, the instance UID (assigned or own) and attributes."""
        self.last_created_uid = None
        status, attrs = self.assoc.send_n_create(
            ds, sop_class, uid, meta_uid=self.meta if meta else None
        )
        return int(status.Status), uid or self.last_created_uid, attrs

    def set(self, sop_class: str, uid: str, ds: Dataset, meta: bool = True) -> int:
        status, _ = self.assoc.send_n_set(ds, sop_class, uid, meta_uid=self.meta if meta else None)
        return int(status.Status)

    def action(self, sop_class: str, uid: str, action_type: int = 1) -> tuple[int, Dataset | None]:
        status, reply = self.assoc.send_n_action(
            None, action_type, sop_class, uid, meta_uid=self.meta
        )
        return int(status.Status), reply

    def delete(self, sop_class: str, uid: str, meta: bool = True) -> int:
        status = self.assoc.send_n_delete(sop_class, uid, meta_uid=self.meta if meta else None)
        return int(status.Status)

    def get(
        self, sop_class: str, uid: str, tags: list[int], meta: bool = True
    ) -> tuple[int, Dataset | None]:
        status, attrs = self.assoc.send_n_get(
            tags, sop_class, uid, meta_uid=self.meta if meta else None
        )
        return int(status.Status), attrs

    def session(self, **attrs: Any) -> str:
        ds = Dataset()
        ds.NumberOfCopies = "1"
        for key, value in attrs.items():
            setattr(ds, key, value)
        status, uid, _ = self.create(FILM_SESSION, ds)
        assert status == 0 and uid
        return uid

    def film_box(self, session_uid: str, display: str, **attrs: Any) -> tuple[int, str, list[str]]:
        """N-CREATE a film box; returns status, its UID and its image box UIDs."""
        ds = film_box_request(session_uid, display, **attrs)
        status, uid, reply = self.create(FILM_BOX, ds)
        assert uid is not None and reply is not None, hex(status)
        boxes = [str(item.ReferencedSOPInstanceUID) for item in reply.ReferencedImageBoxSequence]
        return status, uid, boxes

    def fill(self, box_uid: str, position: int, image: Dataset, **attrs: Any) -> int:
        ds = Dataset()
        ds.ImageBoxPosition = position
        for key, value in attrs.items():
            setattr(ds, key, value)
        if self.box_class == COLOR_BOX:
            ds.BasicColorImageSequence = [image]
        else:
            ds.BasicGrayscaleImageSequence = [image]
        return self.set(self.box_class, box_uid, ds)

    def release(self) -> None:
        self.assoc.release()


def film_box_request(session_uid: str, display: str, **attrs: Any) -> Dataset:
    ds = Dataset()
    ds.ImageDisplayFormat = display
    ref = Dataset()
    ref.ReferencedSOPClassUID = FILM_SESSION
    ref.ReferencedSOPInstanceUID = session_uid
    ds.ReferencedFilmSessionSequence = [ref]
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def wait_for_job(
    factory: sessionmaker[Session], job_id: int | None = None, status: str = "done"
) -> PrintJob:
    """Wait until the job (or the newest job) leaves the queue; assert its final status."""

    def finished() -> PrintJob | None:
        with factory() as session:
            query = select(PrintJob).order_by(PrintJob.id.desc())
            if job_id is not None:
                query = query.where(PrintJob.id == job_id)
            job = session.scalars(query).first()
            return job if job is not None and job.status != "queued" else None

    job: PrintJob = wait_for(finished, what="print job")
    assert job.status == status, job.error
    return job


def make_pdf(path: Path, pages: int) -> None:
    """Write a PDF of ``pages`` numbered pages, as a printed job's file."""
    pdf = canvas.Canvas(str(path))
    for n in range(pages):
        pdf.drawString(100, 700, f"page {n + 1}")
        pdf.showPage()
    pdf.save()


def rasterize(pdf: Path, dpi: int = 30) -> list[Image.Image]:
    """Render every page of ``pdf`` to an RGB image with poppler's pdftoppm."""
    tool = require_tool("pdftoppm")
    out = pdf.parent / f"{pdf.stem}-raster"
    subprocess.run(
        [tool, "-r", str(dpi), "-png", str(pdf), str(out)], check=True, capture_output=True
    )
    pages = sorted(pdf.parent.glob(f"{out.name}-*.png"))
    return [Image.open(p).convert("RGB") for p in pages]


def page_sizes_mm(pdf: Path) -> list[tuple[float, float]]:
    """Every page's size in millimetres, read with poppler's pdfinfo."""
    tool = require_tool("pdfinfo")
    text = subprocess.run(
        [tool, "-f", "1", "-l", "999", str(pdf)], check=True, capture_output=True, text=True
    ).stdout
    sizes = []
    for line in text.splitlines():
        if line.startswith("Page") and "size:" in line:
            parts = line.split("size:")[1].split()
            sizes.append((float(parts[0]) * 25.4 / 72, float(parts[2]) * 25.4 / 72))
    return sizes


def sample(page: Image.Image, x_mm: float, y_mm: float, dpi: int = 30) -> tuple[int, ...]:
    """The mean colour of a 3x3 pixel patch at ``(x_mm, y_mm)`` from the top-left."""
    x = round(x_mm / 25.4 * dpi)
    y = round(y_mm / 25.4 * dpi)
    patch = np.asarray(page)[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3)
    return tuple(int(round(v)) for v in patch.mean(axis=0))


CAPTURE_BACKEND = """#!/bin/sh
# CUPS backend: store each job's data as a file in the folder named by the device URI.
if [ $# -eq 0 ]; then echo 'direct capture "Unknown" "Capture to a folder"'; exit 0; fi
dir="${DEVICE_URI#capture:}"
if [ $# -ge 6 ]; then cp "$6" "$dir/job-$1.part"; else cat > "$dir/job-$1.part"; fi
mv "$dir/job-$1.part" "$dir/job-$1-copies-$4.prn"
"""

CUPSD_CONF = """\
Listen {socket}
LogLevel info
Browsing No
WebInterface No
DefaultAuthType None
<Location />
  Order allow,deny
  Allow all
</Location>
<Policy default>
  JobPrivateAccess all
  JobPrivateValues none
  SubscriptionPrivateAccess all
  SubscriptionPrivateValues none
  <Limit All>
    Order allow,deny
    Allow all
  </Limit>
</Policy>
"""

CUPS_FILES_CONF = """\
ServerRoot {root}
RequestRoot {root}/spool
TempDir {root}/tmp
CacheDir {root}/cache
StateDir {root}/state
ServerBin {root}/lib
DataDir /usr/share/cups
ErrorLog {root}/log/error_log
AccessLog {root}/log/access_log
PageLog {root}/log/page_log
Sandboxing Relaxed
SystemGroup root
"""


@dataclass
class Cups:
    """Where the test cupsd listens, its queue, and the folder its jobs land in."""

    socket: str
    queue: str
    out: Path


@contextlib.contextmanager
def running_cups(tmp_path: Path) -> Iterator[Cups]:
    """A private cupsd (own socket and folders) with a raw queue OFFICE that writes files."""
    cupsd = require_tool("cupsd")
    lpadmin, lpstat = require_tool("lpadmin"), require_tool("lpstat")
    require_tool("lp")
    root = tmp_path / "cups"
    for sub in ("spool", "tmp", "cache", "state", "log", "ppd", "lib/backend", "out"):
        (root / sub).mkdir(parents=True)
    # The system's filters and helpers; our own backend, run as root (mode 0700).
    for sub in ("filter", "daemon", "cgi-bin", "notifier", "driver", "monitor"):
        if Path("/usr/lib/cups", sub).exists():
            (root / "lib" / sub).symlink_to(Path("/usr/lib/cups", sub))
    backend = root / "lib" / "backend" / "capture"
    backend.write_text(CAPTURE_BACKEND, encoding="utf-8")
    backend.chmod(0o700)
    socket = str(root / "cups.sock")
    (root / "cupsd.conf").write_text(CUPSD_CONF.format(socket=socket), encoding="utf-8")
    (root / "cups-files.conf").write_text(CUPS_FILES_CONF.format(root=root), encoding="utf-8")
    daemon = subprocess.Popen(
        [cupsd, "-f", "-c", str(root / "cupsd.conf"), "-s", str(root / "cups-files.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def running() -> bool:
            assert daemon.poll() is None, "cupsd exited"
            done = subprocess.run([lpstat, "-h", socket, "-r"], capture_output=True, text=True)
            return done.returncode == 0 and "is running" in done.stdout

        wait_for(running, timeout=30, what="cupsd")
        subprocess.run(
            [lpadmin, "-h", socket, "-p", "OFFICE", "-E", "-v", f"capture:{root / 'out'}"]
            + ["-m", "raw"],
            check=True,
            capture_output=True,
        )
        yield Cups(socket=socket, queue="OFFICE", out=root / "out")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
