"""The Basic Print SCP with a pynetdicom print SCU: films end as PDFs with the right pixels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from clinic.printing.layout import (
    Rect,
    film_dimensions,
    image_boxes,
    parse_display_format,
)
from clinic.printing.render import HEADER_MM
from clinic.printing.session import ANNOTATION_BOX
from clinic.server import ClinicServer
from tests.support.printing import (
    FILM_BOX,
    FILM_SESSION,
    PrintScu,
    color_image,
    film_box_request,
    gray_image,
    page_sizes_mm,
    rasterize,
    sample,
    wait_for_job,
)
from tests.support.tools import require_tool

DPI = 30


def box_centres(display: str, film_size: str, orientation: str) -> list[tuple[float, float]]:
    """Where each image box's centre lies on the page, in mm (default profile: header line)."""
    width, height = film_dimensions(film_size, orientation)
    area = Rect(0, HEADER_MM, width, height - HEADER_MM)
    return [b.center for b in image_boxes(parse_display_format(display), area)]


def printed(server: ClinicServer) -> tuple[Path, list]:
    assert server.session_factory is not None
    job = wait_for_job(server.session_factory)
    pdf = Path(job.pdf_path)
    assert pdf.is_absolute() and pdf.is_file()
    return pdf, rasterize(pdf, DPI)


def test_grayscale_film_box_prints_each_box_at_its_position(server: ClinicServer) -> None:
    scu = PrintScu(server.print_port)
    session_uid = scu.session()
    status, film_uid, boxes = scu.film_box(
        session_uid, "STANDARD\\2,2", FilmSizeID="14INX17IN", FilmOrientation="PORTRAIT"
    )
    assert status == 0 and len(boxes) == 4
    values = [30, 90, 160, 230]
    # Filled in reverse order: placement follows Image Box Position, not arrival.
    for position in (4, 3, 2, 1):
        image = gray_image(64, 48, values[position - 1])
        assert scu.fill(boxes[position - 1], position, image) == 0
    status, reply = scu.action(FILM_BOX, film_uid)
    assert status == 0
    assert reply is not None and len(reply.ReferencedPrintJobSequence) == 1
    job_uid = reply.ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID
    assert scu.delete(FILM_BOX, film_uid) == 0
    assert scu.delete(FILM_SESSION, session_uid) == 0

    pdf, pages = printed(server)
    assert len(pages) == 1
    ((width, height),) = page_sizes_mm(pdf)
    assert width == pytest.approx(355.6, abs=0.2) and height == pytest.approx(431.8, abs=0.2)
    centres = box_centres("STANDARD\\2,2", "14INX17IN", "PORTRAIT")
    for (x, y), value in zip(centres, values, strict=True):
        assert sample(pages[0], x, y, DPI) == pytest.approx((value,) * 3, abs=2)

    status, job = scu.get("1.2.840.10008.5.1.1.14", job_uid, [0x21000020], meta=False)
    assert status == 0 and job is not None and job.ExecutionStatus == "DONE"
    scu.release()


def test_twelve_bit_monochrome1_reverse_and_empty_density(server: ClinicServer) -> None:
    scu = PrintScu(server.print_port)
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(
        session_uid,
        "STANDARD\\4,1",
        FilmSizeID="A4",
        FilmOrientation="LANDSCAPE",
        EmptyImageDensity="BLACK",
        BorderDensity="WHITE",
    )
    assert scu.fill(boxes[0], 1, gray_image(40, 40, 2048, bits=12)) == 0
    assert scu.fill(boxes[1], 2, gray_image(40, 40, 64, photometric="MONOCHROME1")) == 0
    assert scu.fill(boxes[2], 3, gray_image(40, 40, 200), Polarity="REVERSE") == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()

    pdf, pages = printed(server)
    ((width, height),) = page_sizes_mm(pdf)
    assert (width, height) == (pytest.approx(297, abs=0.2), pytest.approx(210, abs=0.2))
    centres = box_centres("STANDARD\\4,1", "A4", "LANDSCAPE")
    expected = [round(2048 / 4095 * 255), 255 - 64, 255 - 200, 0]
    for (x, y), value in zip(centres, expected, strict=True):
        assert sample(pages[0], x, y, DPI) == pytest.approx((value,) * 3, abs=2)


def test_colour_film(server: ClinicServer) -> None:
    scu = PrintScu(server.print_port, color=True)
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(session_uid, "ROW\\1,2", FilmSizeID="8INX10IN")
    colours = [(220, 30, 30), (30, 200, 40), (20, 40, 210)]
    assert scu.fill(boxes[0], 1, color_image(30, 60, colours[0], planar=1)) == 0
    assert scu.fill(boxes[1], 2, color_image(30, 30, colours[1], planar=0)) == 0
    assert scu.fill(boxes[2], 3, color_image(30, 30, colours[2])) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()

    _, pages = printed(server)
    centres = box_centres("ROW\\1,2", "8INX10IN", "PORTRAIT")
    for (x, y), colour in zip(centres, colours, strict=True):
        assert sample(pages[0], x, y, DPI) == pytest.approx(colour, abs=3)


@pytest.mark.parametrize("orientation", ["PORTRAIT", "LANDSCAPE"])
@pytest.mark.parametrize("display", ["STANDARD\\1,1", "STANDARD\\3,2", "ROW\\2,1,3", "COL\\1,3"])
def test_every_display_format(server: ClinicServer, display: str, orientation: str) -> None:
    scu = PrintScu(server.print_port)
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(
        session_uid, display, FilmSizeID="10INX12IN", FilmOrientation=orientation
    )
    values = [20 + 35 * i for i in range(len(boxes))]
    for position, (uid, value) in enumerate(zip(boxes, values, strict=True), start=1):
        assert scu.fill(uid, position, gray_image(16, 16, value)) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()

    pdf, pages = printed(server)
    expected_size = film_dimensions("10INX12IN", orientation)
    assert page_sizes_mm(pdf)[0] == pytest.approx(expected_size, abs=0.2)
    for (x, y), value in zip(box_centres(display, "10INX12IN", orientation), values, strict=True):
        assert sample(pages[0], x, y, DPI) == pytest.approx((value,) * 3, abs=2)


def test_film_session_prints_two_films_with_scu_chosen_uids(server: ClinicServer) -> None:
    scu = PrintScu(server.print_port)
    session_uid = "1.2.826.0.1.3680043.10.1.1"
    ds = Dataset()
    ds.NumberOfCopies = "2"
    ds.FilmSessionLabel = "two films"
    status, uid, _ = scu.create(FILM_SESSION, ds, session_uid)
    assert status == 0 and uid == session_uid
    films = []
    for n, display in enumerate(["STANDARD\\1,2", "COL\\2"]):
        film_uid = f"1.2.826.0.1.3680043.10.1.2.{n}"
        status, _, reply = scu.create(
            FILM_BOX, film_box_request(session_uid, display, FilmSizeID="24CMX30CM"), film_uid
        )
        assert status == 0 and reply is not None
        boxes = [str(i.ReferencedSOPInstanceUID) for i in reply.ReferencedImageBoxSequence]
        for position, box in enumerate(boxes, start=1):
            assert scu.fill(box, position, gray_image(8, 8, 40 * position + 100 * n)) == 0
        films.append(display)
    status, reply = scu.action(FILM_SESSION, session_uid)
    assert status == 0
    scu.release()

    pdf, pages = printed(server)
    assert len(pages) == 2
    assert page_sizes_mm(pdf) == [pytest.approx((240, 300), abs=0.2)] * 2
    for n, (display, page) in enumerate(zip(films, pages, strict=True)):
        for position, (x, y) in enumerate(box_centres(display, "24CMX30CM", "PORTRAIT"), 1):
            value = 40 * position + 100 * n
            assert sample(page, x, y, DPI) == pytest.approx((value,) * 3, abs=2)
    assert server.session_factory is not None
    job = wait_for_job(server.session_factory)
    assert (job.films, job.pages, job.copies) == (2, 2, 2)


def test_empty_boxes_and_empty_films(server: ClinicServer) -> None:
    scu = PrintScu(server.print_port)
    session_uid = scu.session()
    # A session without film boxes cannot print.
    assert scu.action(FILM_SESSION, session_uid)[0] == 0xC600
    _, film_uid, boxes = scu.film_box(
        session_uid, "STANDARD\\2,1", EmptyImageDensity="150", BorderDensity="BLACK"
    )
    assert scu.action(FILM_BOX, film_uid)[0] == 0xB603
    assert server.session_factory is not None
    wait_for_job(server.session_factory)
    assert scu.action(FILM_SESSION, session_uid)[0] == 0xB602
    job = wait_for_job(server.session_factory)
    # One box filled, the other printed at Empty Image Density.
    assert scu.fill(boxes[0], 1, gray_image(8, 8, 255)) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()

    _, pages = printed(server)
    centres = box_centres("STANDARD\\2,1", "A4", "PORTRAIT")
    assert sample(pages[0], *centres[0], DPI) == pytest.approx((255,) * 3, abs=2)
    empty = sample(pages[0], *centres[1], DPI)[0]
    assert 40 < empty < 140  # 1.5 OD: a mid-dark gray
    assert sample(pages[0], 2, 2 + HEADER_MM, DPI) == pytest.approx((0,) * 3, abs=2)
    assert job.films == 1


def test_annotations_and_header_are_printed(server: ClinicServer) -> None:
    scu = PrintScu(server.print_port, calling="PANO1")
    session_uid = scu.session()
    status, film_uid, reply = scu.create(
        FILM_BOX,
        film_box_request(session_uid, "STANDARD\\1,1", AnnotationDisplayFormatID="LABELS"),
    )
    assert status == 0 and film_uid and reply is not None
    annotations = [i.ReferencedSOPInstanceUID for i in reply.ReferencedBasicAnnotationBoxSequence]
    text = Dataset()
    text.AnnotationPosition = 2
    text.TextString = "LEFT LATERAL"
    assert scu.set(ANNOTATION_BOX, annotations[1], text, meta=False) == 0
    wrong = Dataset()
    wrong.AnnotationPosition = 5
    wrong.TextString = "X"
    assert scu.set(ANNOTATION_BOX, annotations[0], wrong, meta=False) == 0x0106
    box = reply.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    assert scu.fill(box, 1, gray_image(8, 8, 128)) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()

    pdf, _ = printed(server)
    words = subprocess.run(
        [require_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "LEFT LATERAL" in words
    assert "PDFPRINT" in words and "PANO1" in words


@pytest.mark.parametrize("magnification", ["REPLICATE", "BILINEAR", "CUBIC", "NONE"])
def test_magnification_types(server: ClinicServer, magnification: str) -> None:
    scu = PrintScu(server.print_port)
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(
        session_uid, "STANDARD\\1,1", FilmSizeID="8INX10IN", MagnificationType=magnification
    )
    # Left half black, right half white: interpolation may soften only the edge.
    image = gray_image(30, 300, 0)
    pixels = np.zeros((30, 300), np.uint8)
    pixels[:, 150:] = 255
    image.PixelData = pixels.tobytes()
    assert scu.fill(boxes[0], 1, image) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()

    pdf, _ = printed(server)
    dpi = 100
    page = rasterize(pdf, dpi)[0]
    ((x, y),) = box_centres("STANDARD\\1,1", "8INX10IN", "PORTRAIT")
    # NONE prints one pixel per printer dot (300 dpi): 300 pixels are 25.4 mm wide.
    half = 25.4 / 4 if magnification == "NONE" else 203.2 / 4
    assert sample(page, x - half, y, dpi)[0] < 10
    assert sample(page, x + half, y, dpi)[0] > 245
    if magnification == "NONE":
        # Beyond the 25.4 mm image: the white border, not the image stretched to the box.
        assert sample(page, x - 2 * half - 3, y, dpi)[0] > 245


def test_big_endian_twelve_bit_pixels(server: ClinicServer) -> None:
    scu = PrintScu(server.print_port, transfer_syntax="1.2.840.10008.1.2.2")
    assert scu.assoc.accepted_contexts[0].transfer_syntax == ["1.2.840.10008.1.2.2"]
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1", FilmSizeID="8INX10IN")
    image = gray_image(16, 16, 0, bits=12)
    # Big endian on the wire: the value 1000 as the high byte first.
    image.PixelData = np.full((16, 16), 1000, dtype=">u2").tobytes()
    assert scu.fill(boxes[0], 1, image) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()

    _, pages = printed(server)
    ((x, y),) = box_centres("STANDARD\\1,1", "8INX10IN", "PORTRAIT")
    assert sample(pages[0], x, y, DPI) == pytest.approx((round(1000 / 4095 * 255),) * 3, abs=2)
