"""Pixels -> page gray (numpy) and films -> one PDF (reportlab), one page per film.

The gray model: the page is paper whose white is optical density 0 and whose black is
the printer's maximum density. A density ``D`` (hundredths of OD) is the reflectance
``10**-D``, written to the PDF in sRGB encoding and stretched so that the printer's
black is gray 0. P-values (after MONOCHROME1 and Polarity inversion) run from the
film's Max Density (P = 0) to its Min Density (P = max); with the Presentation LUT
IDENTITY they are spaced evenly in that encoding, with LIN OD evenly in density.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from reportlab import rl_config
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from clinic.printing.layout import (
    MM_PER_INCH,
    Rect,
    film_dimensions,
    fit_image,
    image_boxes,
    inset,
    parse_display_format,
    shrink_to,
)

# Image streams go into the PDF as binary Flate data. reportlab's default wraps them in
# ASCII85 as well, in pure Python: 5 s for a 20-image film instead of 1 s, and a file
# a quarter larger.
rl_config.useA85 = 0

POINTS_PER_MM = 72 / MM_PER_INCH
HEADER_MM = 7.0
ANNOTATION_MM = 8.0
TRIM_MM = 0.35
#: Interpolated magnification never makes an embedded image larger than this (pixels).
MAX_INTERPOLATED_SIDE = 6000


@dataclass
class LutSpec:
    """A Presentation LUT: a shape (``IDENTITY``, ``LIN OD``) or an explicit table."""

    shape: str = "IDENTITY"
    first_mapped: int = 0
    bits: int = 0
    table: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain-data form for the spool."""
        return {
            "shape": self.shape,
            "first_mapped": self.first_mapped,
            "bits": self.bits,
            "table": self.table,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LutSpec:
        """Inverse of :meth:`to_json`."""
        return cls(**data)


@dataclass
class ImageSpec:
    """One filled image box, ready to render (no DICOM left in it)."""

    position: int
    pixels: NDArray[Any]
    photometric: str = "MONOCHROME2"
    bits_stored: int = 8
    polarity: str = "NORMAL"
    magnification: str = ""
    min_density: int | None = None
    max_density: int | None = None
    requested_size_mm: float | None = None
    crop: bool = False
    pixel_aspect: float = 1.0
    lut: LutSpec | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain-data form for the spool (pixels are stored separately)."""
        return {
            "position": self.position,
            "photometric": self.photometric,
            "bits_stored": self.bits_stored,
            "polarity": self.polarity,
            "magnification": self.magnification,
            "min_density": self.min_density,
            "max_density": self.max_density,
            "requested_size_mm": self.requested_size_mm,
            "crop": self.crop,
            "pixel_aspect": self.pixel_aspect,
            "lut": self.lut.to_json() if self.lut else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], pixels: NDArray[Any]) -> ImageSpec:
        """Inverse of :meth:`to_json`."""
        values = dict(data)
        lut = values.pop("lut", None)
        return cls(pixels=pixels, lut=LutSpec.from_json(lut) if lut else None, **values)


@dataclass
class FilmSpec:
    """One film (page): its Film Box attributes, image boxes and annotations."""

    display_format: str
    film_size: str = "A4"
    orientation: str = "PORTRAIT"
    magnification: str = "REPLICATE"
    border_density: str = "WHITE"
    empty_density: str = "WHITE"
    min_density: int | None = None
    max_density: int | None = None
    trim: bool = False
    lut: LutSpec | None = None
    images: list[ImageSpec] = field(default_factory=list)
    annotations: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain-data form for the spool (image pixels are stored separately)."""
        return {
            "display_format": self.display_format,
            "film_size": self.film_size,
            "orientation": self.orientation,
            "magnification": self.magnification,
            "border_density": self.border_density,
            "empty_density": self.empty_density,
            "min_density": self.min_density,
            "max_density": self.max_density,
            "trim": self.trim,
            "lut": self.lut.to_json() if self.lut else None,
            "annotations": {str(k): v for k, v in self.annotations.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], images: list[ImageSpec]) -> FilmSpec:
        """Inverse of :meth:`to_json`."""
        values = dict(data)
        lut = values.pop("lut", None)
        annotations = {int(k): str(v) for k, v in values.pop("annotations", {}).items()}
        return cls(
            images=images,
            annotations=annotations,
            lut=LutSpec.from_json(lut) if lut else None,
            **values,
        )


@dataclass(frozen=True)
class PageOptions:
    """Printer-wide rendering options (from the printer profile)."""

    max_density: int = 300
    resolution_dpi: int = 300
    paper: dict[str, str] = field(default_factory=dict)
    fit: str = "scale"
    header: bool = True
    printer_name: str = ""
    calling_ae_title: str = ""
    # The linked booking (clinic.domain.print_links), written to the PDF's metadata only.
    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""


def _srgb(linear: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def density_to_gray(density: float | NDArray[np.float64], printer_max: int) -> NDArray[np.float64]:
    """Map optical density (hundredths of OD) to page gray 0-255.

    Parameters
    ----------
    density : float or ndarray
        Density in hundredths of OD (0 = paper white).
    printer_max : int
        The printer's black, in hundredths of OD; it maps to gray 0.

    Returns
    -------
    ndarray
        Gray values in [0, 255] (float).
    """
    d = np.clip(np.asarray(density, dtype=np.float64), 0, printer_max)
    encoded = _srgb(np.power(10.0, -d / 100.0))
    black = float(_srgb(np.array(10.0 ** (-printer_max / 100.0))))
    gray: NDArray[np.float64] = 255.0 * (encoded - black) / (1.0 - black)
    return gray


def named_density(value: str, printer_max: int) -> float:
    """Resolve a Border/Empty Image Density: ``BLACK``, ``WHITE`` or hundredths of OD."""
    if value == "BLACK":
        return float(printer_max)
    if value == "WHITE":
        return 0.0
    return float(int(value))


def p_values(image: ImageSpec) -> NDArray[np.float64]:
    """Return P-values in [0, 1] (1 = lightest) for a grayscale image.

    MONOCHROME1 and Polarity REVERSE each invert; an explicit Presentation LUT table
    maps stored values to P-values before that.
    """
    bits = image.bits_stored
    values = image.pixels.astype(np.int64) & ((1 << bits) - 1)
    lut = image.lut
    if lut is not None and lut.table:
        table = np.asarray(lut.table, dtype=np.float64) / float((1 << lut.bits) - 1)
        index = np.clip(values - lut.first_mapped, 0, len(table) - 1)
        p = table[index]
    else:
        p = values.astype(np.float64) / float((1 << bits) - 1)
    if image.photometric == "MONOCHROME1":
        p = 1.0 - p
    if image.polarity == "REVERSE":
        p = 1.0 - p
    result: NDArray[np.float64] = np.clip(p, 0.0, 1.0)
    return result


def gray_levels(
    p: NDArray[np.float64],
    min_density: float,
    max_density: float,
    printer_max: int,
    shape: str = "IDENTITY",
) -> NDArray[np.uint8]:
    """Map P-values to page gray between Max Density (P = 0) and Min Density (P = 1).

    Parameters
    ----------
    p : ndarray
        P-values in [0, 1].
    min_density, max_density : float
        The film's density range, hundredths of OD.
    printer_max : int
        The printer's black, hundredths of OD.
    shape : str
        Presentation LUT Shape: ``IDENTITY`` (even in gray) or ``LIN OD`` (even in density).

    Returns
    -------
    ndarray of uint8
        The page's gray values.
    """
    if shape == "LIN OD":
        gray = density_to_gray(max_density - p * (max_density - min_density), printer_max)
    else:
        white = density_to_gray(min_density, printer_max)
        black = density_to_gray(max_density, printer_max)
        gray = black + p * (white - black)
    result: NDArray[np.uint8] = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return result


#: Pixels converted at a time: bounds the float arrays of a large image to a few MiB.
TILE_PIXELS = 1 << 20


def image_to_pil(
    image: ImageSpec, film: FilmSpec, printer_max: int, reduce_to: int = 1
) -> Image.Image:
    """Render one image box's pixels to a Pillow image (``L`` or ``RGB``).

    Parameters
    ----------
    image, film : ImageSpec, FilmSpec
        The image box and its film (densities, Presentation LUT).
    printer_max : int
        The printer's black, hundredths of OD.
    reduce_to : int
        Keep one pixel in ``reduce_to`` each way, averaged (an image far finer than
        the page prints it need not be embedded at full size).

    Notes
    -----
    Grayscale values are converted a band of rows at a time, so memory stays a small
    multiple of the image's own bytes whatever its size: never a full-size float copy.
    """
    if image.photometric == "RGB":
        rgb = image.pixels.astype(np.uint8)
        if image.polarity == "REVERSE":
            rgb = 255 - rgb
        return _reduced(Image.fromarray(np.ascontiguousarray(rgb)), reduce_to)
    lut = image.lut or film.lut
    spec = image if image.lut is not None or lut is None else _with_lut(image, lut)
    min_d = image.min_density if image.min_density is not None else film.min_density
    max_d = image.max_density if image.max_density is not None else film.max_density
    rows, columns = image.pixels.shape[0], image.pixels.shape[1]
    gray = np.empty((rows, columns), dtype=np.uint8)
    band = max(1, TILE_PIXELS // max(columns, 1))
    for start in range(0, rows, band):
        part = replace(spec, pixels=image.pixels[start : start + band])
        gray[start : start + band] = gray_levels(
            p_values(part),
            float(min_d if min_d is not None else 0),
            float(max_d if max_d is not None else printer_max),
            printer_max,
            lut.shape if lut is not None else "IDENTITY",
        )
    return _reduced(Image.fromarray(gray), reduce_to)


def _reduced(pil: Image.Image, factor: int) -> Image.Image:
    return pil.reduce(factor) if factor > 1 else pil


def reduction_for(columns: int, rows: int, rect: Rect, dpi: int) -> int:
    """The whole factor by which an image finer than twice the page's ``dpi`` is reduced."""
    need_w = max(rect.width / MM_PER_INCH * dpi, 1.0)
    need_h = max(rect.height / MM_PER_INCH * dpi, 1.0)
    return max(1, int(min(columns / need_w, rows / need_h) / 2))


def _with_lut(image: ImageSpec, lut: LutSpec) -> ImageSpec:
    copy = ImageSpec(**{**image.__dict__})
    copy.lut = lut
    return copy


def _magnify(pil: Image.Image, method: str, rect: Rect, dpi: int) -> Image.Image:
    # Interpolated magnification is done here (upsampling only), so no viewer can
    # blur or block it differently; REPLICATE and NONE embed the pixels as they are.
    resample = {"BILINEAR": Image.Resampling.BILINEAR, "CUBIC": Image.Resampling.BICUBIC}
    if method not in resample:
        return pil
    target = rect.width / MM_PER_INCH * dpi
    factor = min(target / pil.width, MAX_INTERPOLATED_SIDE / max(pil.width, pil.height))
    if factor <= 1.0:
        return pil
    size = (round(pil.width * factor), round(pil.height * factor))
    return pil.resize(size, resample[method])


def _gray_fill(canvas: Canvas, gray: float) -> None:
    level = gray / 255.0
    canvas.setFillColorRGB(level, level, level)


def render_pdf(
    films: list[FilmSpec], path: Path, options: PageOptions, now: dt.datetime | None = None
) -> int:
    """Write ``films`` as one PDF, one page per film, and return the page count.

    Parameters
    ----------
    films : list of FilmSpec
        The films in print order.
    path : Path
        The PDF to write (written to a temporary name, then renamed).
    options : PageOptions
        Paper mapping, header and density options of the printer.
    now : datetime, optional
        Time printed in the header line.

    Returns
    -------
    int
        Number of pages written.
    """
    stamp = (now or dt.datetime.now()).strftime("%Y-%m-%d %H:%M")
    tmp = path.with_name(path.name + ".part")
    canvas = Canvas(str(tmp), pageCompression=1)
    canvas.setTitle(f"{options.printer_name} print")
    canvas.setCreator("clinic")
    if options.patient_id or options.accession_number:
        # A filed PDF says whose films it holds, even when renamed or moved.
        canvas.setTitle(options.patient_name or options.patient_id)
        canvas.setSubject(
            f"Patient ID {options.patient_id}, accession number {options.accession_number}"
        )
        canvas.setKeywords([options.patient_id, options.accession_number])
    if options.calling_ae_title:
        canvas.setAuthor(options.calling_ae_title)
    for film in films:
        _render_page(canvas, film, options, stamp)
        canvas.showPage()
    canvas.save()
    tmp.replace(path)
    return len(films)


def _render_page(canvas: Canvas, film: FilmSpec, options: PageOptions, stamp: str) -> None:
    printer_max = options.max_density
    film_w, film_h = film_dimensions(film.film_size, film.orientation)
    paper_id = options.paper.get(film.film_size, film.film_size)
    paper_w, paper_h = film_dimensions(paper_id, film.orientation)
    if paper_id == film.film_size:
        paper_w, paper_h = film_w, film_h
    scale = 1.0
    if options.fit == "scale":
        scale = min(1.0, paper_w / film_w, paper_h / film_h)
    off_x = (paper_w - film_w * scale) / 2
    off_y = (paper_h - film_h * scale) / 2
    canvas.setPageSize((paper_w * POINTS_PER_MM, paper_h * POINTS_PER_MM))

    def to_pt(r: Rect) -> tuple[float, float, float, float]:
        x = (off_x + r.x * scale) * POINTS_PER_MM
        y = (paper_h - off_y - (r.y + r.height) * scale) * POINTS_PER_MM
        return x, y, r.width * scale * POINTS_PER_MM, r.height * scale * POINTS_PER_MM

    border = float(density_to_gray(named_density(film.border_density, printer_max), printer_max))
    empty = float(density_to_gray(named_density(film.empty_density, printer_max), printer_max))
    whole = Rect(0, 0, film_w, film_h)
    _gray_fill(canvas, border)
    canvas.rect(*to_pt(whole), stroke=0, fill=1)

    top = HEADER_MM if options.header else 0.0
    texts = [t for _, t in sorted(film.annotations.items()) if t.strip()]
    bottom = ANNOTATION_MM if texts else 0.0
    area = Rect(0, top, film_w, film_h - top - bottom)
    text_gray = 255.0 if border < 128 else 0.0
    font = 9 * scale
    if options.header:
        _gray_fill(canvas, text_gray)
        canvas.setFont("Helvetica", font)
        x, y, _, _ = to_pt(Rect(3, 0, 0, HEADER_MM * 0.7))
        canvas.drawString(
            x, y, f"{options.printer_name}   {stamp}   from {options.calling_ae_title}"
        )
    if texts:
        _gray_fill(canvas, text_gray)
        canvas.setFont("Helvetica", font)
        slot = film_w / len(texts)
        for i, text in enumerate(texts):
            x, y, _, _ = to_pt(Rect(i * slot + 3, film_h - bottom * 0.35, 0, 0))
            canvas.drawString(x, y, text[:64])

    boxes = image_boxes(parse_display_format(film.display_format), area)
    by_position = {image.position: image for image in film.images}
    for position, whole_box in enumerate(boxes, start=1):
        box = inset(whole_box)
        image = by_position.get(position)
        if image is None:
            _gray_fill(canvas, empty)
            canvas.rect(*to_pt(box), stroke=0, fill=1)
            continue
        rows, columns = image.pixels.shape[0], image.pixels.shape[1]
        magnification = image.magnification or film.magnification
        requested = image.requested_size_mm
        if magnification == "NONE" and requested is None:
            requested = columns / options.resolution_dpi * MM_PER_INCH
        rect, too_large = fit_image(box, columns, rows, image.pixel_aspect, requested)
        if too_large and not image.crop:
            rect = shrink_to(rect, box)
        reduce_to = reduction_for(columns, rows, rect, options.resolution_dpi)
        pil = image_to_pil(image, film, printer_max, reduce_to)
        pil = _magnify(pil, magnification, rect, options.resolution_dpi)
        canvas.saveState()
        clip = canvas.beginPath()
        clip.rect(*to_pt(box))
        canvas.clipPath(clip, stroke=0, fill=0)
        canvas.drawImage(ImageReader(pil), *to_pt(rect))
        canvas.restoreState()
        if film.trim:
            level = 0.0 if border >= 128 else 1.0
            canvas.setStrokeColorRGB(level, level, level)
            canvas.setLineWidth(TRIM_MM * POINTS_PER_MM)
            canvas.rect(*to_pt(shrink_to(rect, box)), stroke=1, fill=0)
