"""Printed films into the patient's record: DICOM instances of a print job, sent with C-STORE.

A job linked to a booking (:mod:`clinic.domain.print_links`) is filed under that booking's
patient and study: its PDF as one Encapsulated PDF instance and, where the printer profile
asks for it, each film as a Secondary Capture image. :func:`build_instances` makes the
datasets (no I/O but reading the PDF), :func:`store_instances` sends them to a Storage SCP.

The UIDs of a send are derived from the Print Job SOP Instance UID and the number of
earlier sends of the job, so an attempt repeated after a crash or a lost answer sends the
very same instances (the PACS keeps one copy), while a correction (the job moved to
another booking) makes new ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE

from clinic import __version__
from clinic.config import ArchiveTarget
from clinic.printing.layout import (
    Rect,
    film_dimensions,
    fit_image,
    image_boxes,
    inset,
    parse_display_format,
    shrink_to,
)
from clinic.printing.render import FilmSpec, density_to_gray, image_to_pil, named_density

ENCAPSULATED_PDF = UID("1.2.840.10008.5.1.4.1.1.104.1")
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
#: Series numbers of the two series a job's instances go into.
PDF_SERIES_NUMBER = 9001
SC_SERIES_NUMBER = 9002
#: Film pixels per millimetre in a Secondary Capture image: about 100 to 300 dpi.
MIN_PX_PER_MM = 4.0
MAX_PX_PER_MM = 12.0
#: Largest side of a Secondary Capture image, pixels.
MAX_SIDE = 8000
CONNECT_TIMEOUT_S = 10.0
DIMSE_TIMEOUT_S = 60.0
#: C-STORE statuses that mean the instance was kept (success and warnings).
STORED = {0x0000, 0x0001, 0xB000, 0xB006, 0xB007}


class ArchiveError(Exception):
    """A send failed; ``transient`` says whether trying again later may succeed."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Filing:
    """Whose record the instances go into: the linked booking's patient and study."""

    patient_id: str
    patient_name: str
    birth_date: dt.date | None
    sex: str
    accession_number: str
    study_instance_uid: str
    study_id: str = ""
    study_date: dt.date | None = None
    study_time: dt.time | None = None
    referring_physician: str = ""
    study_description: str = ""


@dataclass(frozen=True)
class JobInfo:
    """The print job the instances come from."""

    job_uid: str
    job_id: int
    calling_ae_title: str
    printer_ae_title: str
    printer_name: str
    printed_at: dt.datetime
    generation: int = 0


def instance_uid(root: str, job: JobInfo, kind: str) -> str:
    """A UID under ``root`` (or 2.25) derived from the job, its send number and ``kind``.

    The same job, send number and kind always give the same UID.
    """
    sources = [job.job_uid, str(job.generation), kind]
    if root:
        return str(generate_uid(prefix=f"{root}.", entropy_srcs=sources))
    return str(generate_uid(prefix=None, entropy_srcs=sources))


def _da(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _common(filing: Filing, job: JobInfo, sop_class: UID, sop_uid: str) -> Dataset:
    """Patient, General Study, General Equipment, SC Equipment and SOP Common modules."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = UID(sop_uid)
    now = dt.datetime.now()
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    # Patient
    ds.PatientName = filing.patient_name
    ds.PatientID = filing.patient_id
    ds.PatientBirthDate = _da(filing.birth_date)
    ds.PatientSex = filing.sex if filing.sex in ("M", "F", "O") else ""
    # General Study: the booking's study, so the prints sit beside the exam's images.
    ds.StudyInstanceUID = filing.study_instance_uid
    ds.StudyDate = _da(filing.study_date)
    ds.StudyTime = filing.study_time.strftime("%H%M%S") if filing.study_time else ""
    ds.ReferringPhysicianName = filing.referring_physician
    ds.StudyID = filing.study_id[:16]
    ds.AccessionNumber = filing.accession_number
    if filing.study_description:
        ds.StudyDescription = filing.study_description[:64]
    # General Equipment and SC Equipment
    ds.Manufacturer = "clinic"
    ds.InstitutionName = ""
    ds.StationName = job.printer_ae_title[:16]
    ds.SoftwareVersions = __version__
    ds.ConversionType = "WSD"
    printed = job.printed_at
    ds.ContentDate = printed.strftime("%Y%m%d")
    ds.ContentTime = printed.strftime("%H%M%S")
    return ds


def encapsulated_pdf(
    pdf: bytes, filing: Filing, job: JobInfo, uid_root: str, series_uid: str
) -> Dataset:
    """The job's PDF as an Encapsulated PDF instance (PS3.3 A.45.1).

    Parameters
    ----------
    pdf : bytes
        The rendered job.
    filing : Filing
        Patient and study.
    job : JobInfo
        The print job.
    uid_root : str
        The clinic's UID root.
    series_uid : str
        Series Instance UID of the job's document series.
    """
    ds = _common(filing, job, ENCAPSULATED_PDF, instance_uid(uid_root, job, "pdf"))
    # Encapsulated Document Series
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = PDF_SERIES_NUMBER
    ds.SeriesDescription = "Printed films"
    # Encapsulated Document
    ds.InstanceNumber = 1
    ds.AcquisitionDateTime = job.printed_at.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the films may carry what the modality drew on them
    ds.DocumentTitle = f"Films printed by {job.calling_ae_title}"[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    # OB must have an even length: a PDF of odd length is padded with one NUL.
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return ds


def film_pixels(film: FilmSpec, printer_max: int) -> NDArray[np.uint8]:
    """One film as the printer puts it on paper: its image boxes at their places.

    Returns a ``(rows, columns)`` gray array, or ``(rows, columns, 3)`` RGB when the
    film holds a colour image. The header line and annotations are not drawn.
    """
    width_mm, height_mm = film_dimensions(film.film_size, film.orientation)
    area = Rect(0, 0, width_mm, height_mm)
    boxes = image_boxes(parse_display_format(film.display_format), area)
    by_position = {image.position: image for image in film.images}
    placed: list[tuple[Rect, Rect, Any]] = []
    scale = MIN_PX_PER_MM
    for position, whole_box in enumerate(boxes, start=1):
        image = by_position.get(position)
        if image is None:
            continue
        box = inset(whole_box)
        rows, columns = image.pixels.shape[0], image.pixels.shape[1]
        rect, too_large = fit_image(box, columns, rows, image.pixel_aspect, image.requested_size_mm)
        if too_large and not image.crop:
            rect = shrink_to(rect, box)
        placed.append((box, rect, image))
        scale = max(scale, columns / max(rect.width, 1e-3))
    scale = min(scale, MAX_PX_PER_MM, MAX_SIDE / max(width_mm, height_mm))
    color = any(image.photometric == "RGB" for image in film.images)
    mode = "RGB" if color else "L"

    def gray(value: str) -> int:
        return int(round(float(density_to_gray(named_density(value, printer_max), printer_max))))

    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    border = gray(film.border_density)
    empty = gray(film.empty_density)
    canvas = Image.new(mode, size, (border,) * 3 if color else border)

    def px(r: Rect) -> tuple[int, int, int, int]:
        return (
            round(r.x * scale),
            round(r.y * scale),
            round((r.x + r.width) * scale),
            round((r.y + r.height) * scale),
        )

    for position, whole_box in enumerate(boxes, start=1):
        if position not in by_position:
            canvas.paste((empty,) * 3 if color else empty, px(inset(whole_box)))
    for box, rect, image in placed:
        pil = image_to_pil(image, film, printer_max).convert(mode)
        left, top, right, bottom = px(rect)
        pil = pil.resize((max(1, right - left), max(1, bottom - top)), Image.Resampling.LANCZOS)
        # Only what falls inside the image box shows (a cropped true-size image).
        bl, bt, br, bb = px(box)
        cl, ct, cr, cb = (
            max(left, bl),
            max(top, bt),
            min(left + pil.width, br),
            min(top + pil.height, bb),
        )
        if cr > cl and cb > ct:
            canvas.paste(pil.crop((cl - left, ct - top, cr - left, cb - top)), (cl, ct))
    result: NDArray[np.uint8] = np.asarray(canvas, dtype=np.uint8)
    return result


def secondary_capture(
    pixels: NDArray[np.uint8],
    number: int,
    filing: Filing,
    job: JobInfo,
    uid_root: str,
    series_uid: str,
) -> Dataset:
    """One film as a Secondary Capture Image instance (PS3.3 A.8.1).

    Parameters
    ----------
    pixels : ndarray
        From :func:`film_pixels`: gray (MONOCHROME2) or RGB, 8 bits.
    number : int
        The film's number in the job (Instance Number).
    filing, job, uid_root, series_uid
        As for :func:`encapsulated_pdf`.
    """
    ds = _common(filing, job, SECONDARY_CAPTURE, instance_uid(uid_root, job, f"sc{number}"))
    # General Series
    ds.Modality = "OT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = SC_SERIES_NUMBER
    ds.SeriesDescription = "Printed films"
    ds.Laterality = ""  # Type 2C; a film may show both sides (dciodvfy only warns on empty)
    # General Image and SC Image
    ds.InstanceNumber = number
    ds.PatientOrientation = ""
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    ds.DateOfSecondaryCapture = job.printed_at.strftime("%Y%m%d")
    ds.TimeOfSecondaryCapture = job.printed_at.strftime("%H%M%S")
    # Image Pixel
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    if pixels.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
    data = np.ascontiguousarray(pixels).tobytes()
    ds.PixelData = data + (b"\0" if len(data) % 2 else b"")
    return ds


def build_instances(
    filing: Filing,
    job: JobInfo,
    uid_root: str,
    forms: Sequence[str],
    pdf: Path | None,
    films: Sequence[FilmSpec] = (),
    printer_max: int = 300,
) -> tuple[list[Dataset], dict[str, str]]:
    """Every instance of one send of a job.

    Parameters
    ----------
    filing : Filing
        Patient and study (the linked booking).
    job : JobInfo
        The print job and the number of earlier sends.
    uid_root : str
        The clinic's UID root (empty: 2.25).
    forms : sequence of str
        ``pdf`` and/or ``sc``.
    pdf : Path or None
        The job's PDF (needed for ``pdf``).
    films : sequence of FilmSpec
        The job's films (needed for ``sc``).
    printer_max : int
        The printer's black, hundredths of optical density.

    Returns
    -------
    tuple of (list of Dataset, dict)
        The datasets and the series they belong to (``pdf``/``sc`` -> Series Instance UID).

    Raises
    ------
    ArchiveError
        (not transient) When the PDF or the films needed are gone.
    """
    datasets: list[Dataset] = []
    series: dict[str, str] = {}
    if "pdf" in forms:
        if pdf is None or not pdf.is_file():
            raise ArchiveError("the job's PDF does not exist any more", transient=False)
        series["pdf"] = instance_uid(uid_root, job, "pdf-series")
        datasets.append(encapsulated_pdf(pdf.read_bytes(), filing, job, uid_root, series["pdf"]))
    if "sc" in forms:
        if not films:
            raise ArchiveError("the job's spooled films do not exist any more", transient=False)
        series["sc"] = instance_uid(uid_root, job, "sc-series")
        for number, film in enumerate(films, start=1):
            pixels = film_pixels(film, printer_max)
            datasets.append(secondary_capture(pixels, number, filing, job, uid_root, series["sc"]))
    return datasets, series


def store_instances(
    target: ArchiveTarget,
    datasets: Sequence[Dataset],
    calling_ae_title: str,
    timeout: float = DIMSE_TIMEOUT_S,
) -> None:
    """Send ``datasets`` to ``target`` with C-STORE on one association.

    Each SOP class is proposed with Explicit and Implicit VR Little Endian; the
    instances go in the transfer syntax the SCP accepts.

    Raises
    ------
    ArchiveError
        ``transient`` when the SCP cannot be reached, refuses or drops the association,
        does not answer, or is out of resources (0xA7xx); not transient when it refuses
        an instance for another reason or accepts none of the SOP classes.
    """
    ae = AE(ae_title=calling_ae_title)
    ae.connection_timeout = CONNECT_TIMEOUT_S
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    for sop_class in dict.fromkeys(str(ds.SOPClassUID) for ds in datasets):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(target.host, target.port, ae_title=target.ae_title)
    if not assoc.is_established:
        if assoc.is_rejected:
            raise ArchiveError(f"{target.ae_title} refused the association", transient=True)
        raise ArchiveError(f"{target} cannot be reached", transient=True)
    try:
        for ds in datasets:
            try:
                status = assoc.send_c_store(ds)
            except ValueError as exc:  # no accepted presentation context for this class
                raise ArchiveError(
                    f"{target.ae_title} does not accept {ds.SOPClassUID.name}: {exc}",
                    transient=False,
                ) from None
            if "Status" not in status:
                raise ArchiveError(f"{target.ae_title} did not answer the C-STORE", transient=True)
            code = int(status.Status)
            if code not in STORED:
                raise ArchiveError(
                    f"{target.ae_title} refused {ds.SOPClassUID.name}: status 0x{code:04X}",
                    transient=0xA700 <= code <= 0xA7FF,
                )
    finally:
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()
