"""Each bad or unsupported print request answers its PS3.4 Annex H / PS3.7 status."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from clinic.config import Settings
from clinic.dicom import status as dimse
from clinic.printing import session as s
from clinic.server import ClinicServer
from tests.support.printing import (
    COLOR_BOX,
    FILM_BOX,
    FILM_SESSION,
    GRAY_BOX,
    PrintScu,
    color_image,
    film_box_request,
    gray_image,
    page_sizes_mm,
    rasterize,
    sample,
    wait_for_job,
)


@pytest.fixture
def scu(server: ClinicServer) -> Iterator[PrintScu]:
    client = PrintScu(server.print_port)
    yield client
    if client.assoc.is_established:
        client.release()


def _copies() -> Dataset:
    # pynetdicom's SCU announces a data set even for an empty one, then sends none.
    ds = Dataset()
    ds.NumberOfCopies = "1"
    return ds


def test_printer_n_get(scu: PrintScu) -> None:
    status, printer = scu.get(s.PRINTER, s.PRINTER_INSTANCE, [0x21100010, 0x21100030, 0x00081090])
    assert status == 0 and printer is not None
    assert printer.PrinterStatus == "NORMAL"
    assert printer.PrinterName == "PDFPRINT"
    assert "ManufacturerModelName" in printer and "Manufacturer" not in printer
    assert scu.get(s.PRINTER, "1.2.3", [])[0] == dimse.NO_SUCH_INSTANCE


def test_film_session_statuses(scu: PrintScu) -> None:
    ds = Dataset()
    ds.NumberOfCopies = "500"  # above the profile's maximum: clamped with a warning
    status, uid, reply = scu.create(FILM_SESSION, ds)
    assert status == dimse.VALUE_OUT_OF_RANGE and uid
    assert reply is not None and reply.NumberOfCopies == "99"
    assert scu.create(FILM_SESSION, _copies())[0] == dimse.DUPLICATE_INSTANCE

    bad = Dataset()
    bad.PrintPriority = "URGENT"
    assert scu.set(FILM_SESSION, uid, bad) == dimse.INVALID_ATTRIBUTE_VALUE
    medium = Dataset()
    medium.MediumType = "GOLD FOIL"
    assert scu.set(FILM_SESSION, uid, medium) == dimse.VALUE_OUT_OF_RANGE
    memory = Dataset()
    memory.MemoryAllocation = "1000"
    assert scu.set(FILM_SESSION, uid, memory) == dimse.MEMORY_ALLOCATION_NOT_SUPPORTED
    unknown = Dataset()
    unknown.NumberOfCopies = "1"
    unknown.WindowCenter = "40"  # not a Film Session attribute: ignored with a warning
    assert scu.set(FILM_SESSION, uid, unknown) == dimse.ATTRIBUTE_LIST_ERROR
    zero = Dataset()
    zero.NumberOfCopies = "0"
    assert scu.set(FILM_SESSION, uid, zero) == dimse.INVALID_ATTRIBUTE_VALUE
    assert scu.set(FILM_SESSION, "1.2.3.4", zero) == dimse.NO_SUCH_INSTANCE
    assert scu.action(FILM_SESSION, uid, action_type=7)[0] == dimse.NO_SUCH_ACTION


@pytest.mark.parametrize(
    ("attrs", "status"),
    [
        ({"FilmOrientation": "DIAGONAL"}, dimse.INVALID_ATTRIBUTE_VALUE),
        ({"FilmSizeID": "99INX99IN"}, dimse.INVALID_ATTRIBUTE_VALUE),
        ({"Trim": "MAYBE"}, dimse.INVALID_ATTRIBUTE_VALUE),
        ({"BorderDensity": "GREY"}, dimse.INVALID_ATTRIBUTE_VALUE),
        ({"MinDensity": 200, "MaxDensity": 100}, dimse.INVALID_ATTRIBUTE_VALUE),
        ({"MaxDensity": 450}, dimse.DENSITY_OUT_OF_RANGE),
        ({"MagnificationType": "SINC"}, dimse.VALUE_OUT_OF_RANGE),
        ({"RequestedResolutionID": "ULTRA"}, dimse.VALUE_OUT_OF_RANGE),
        ({"EmptyImageDensity": "999"}, dimse.VALUE_OUT_OF_RANGE),
        ({"Illumination": 2000, "ReflectedAmbientLight": 10}, dimse.SUCCESS),
    ],
)
def test_film_box_attribute_statuses(scu: PrintScu, attrs: dict[str, object], status: int) -> None:
    session_uid = scu.session()
    answer, uid, _ = scu.create(FILM_BOX, film_box_request(session_uid, "STANDARD\\1,1", **attrs))
    assert answer == status
    if status < 0xC000 and status not in (dimse.INVALID_ATTRIBUTE_VALUE,):
        assert uid  # warnings still create the film box and return its UID


def test_film_box_missing_and_invalid(scu: PrintScu) -> None:
    session_uid = scu.session()
    no_format = film_box_request(session_uid, "STANDARD\\1,1")
    del no_format.ImageDisplayFormat
    assert scu.create(FILM_BOX, no_format)[0] == dimse.MISSING_ATTRIBUTE
    no_session = Dataset()
    no_session.ImageDisplayFormat = "STANDARD\\1,1"
    assert scu.create(FILM_BOX, no_session)[0] == dimse.MISSING_ATTRIBUTE
    wrong_session = film_box_request("1.2.3.4", "STANDARD\\1,1")
    assert scu.create(FILM_BOX, wrong_session)[0] == dimse.INVALID_ATTRIBUTE_VALUE
    for display in ("SLIDE", "STANDARD\\0,2", "ROW\\a", "STANDARD\\20,20", "CUSTOM\\1"):
        request = film_box_request(session_uid, display)
        assert scu.create(FILM_BOX, request)[0] == dimse.INVALID_ATTRIBUTE_VALUE, display
    unknown_lut = film_box_request(session_uid, "STANDARD\\1,1")
    ref = Dataset()
    ref.ReferencedSOPClassUID = s.PRESENTATION_LUT
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5"
    unknown_lut.ReferencedPresentationLUTSequence = [ref]
    assert scu.create(FILM_BOX, unknown_lut)[0] == dimse.INVALID_ATTRIBUTE_VALUE
    assert scu.action(FILM_BOX, "1.2.3.4.5")[0] == dimse.NO_SUCH_INSTANCE
    assert scu.delete(FILM_BOX, "1.2.3.4.5") == dimse.NO_SUCH_INSTANCE


def test_image_box_statuses(scu: PrintScu) -> None:
    session_uid = scu.session()
    _, _, boxes = scu.film_box(session_uid, "STANDARD\\2,1", FilmSizeID="8INX10IN")
    box = boxes[0]
    # Larger than the printer profile accepts: refused before decoding.
    huge = gray_image(4, 4, 0)
    huge.Rows = 9000
    assert scu.fill(box, 1, huge) == dimse.INSUFFICIENT_MEMORY
    # Unsupported bit depth, signed pixels, wrong photometric, short pixel data.
    deep = gray_image(4, 4, 0, bits=12)
    deep.BitsStored, deep.HighBit = 16, 15
    assert scu.fill(box, 1, deep) == dimse.INVALID_ATTRIBUTE_VALUE
    signed = gray_image(4, 4, 0)
    signed.PixelRepresentation = 1
    assert scu.fill(box, 1, signed) == dimse.INVALID_ATTRIBUTE_VALUE
    rgb = gray_image(4, 4, 0)
    rgb.PhotometricInterpretation = "RGB"
    assert scu.fill(box, 1, rgb) == dimse.INVALID_ATTRIBUTE_VALUE
    short = gray_image(4, 4, 0)
    short.PixelData = b"\x00" * 6
    assert scu.fill(box, 1, short) == dimse.INVALID_ATTRIBUTE_VALUE
    missing = gray_image(4, 4, 0)
    del missing.Columns
    assert scu.fill(box, 1, missing) == dimse.MISSING_ATTRIBUTE
    # Wrong position, bad polarity, bad requested size or crop behaviour.
    assert scu.fill(box, 2, gray_image(4, 4, 0)) == dimse.INVALID_ATTRIBUTE_VALUE
    assert (
        scu.fill(box, 1, gray_image(4, 4, 0), Polarity="INVERTED") == dimse.INVALID_ATTRIBUTE_VALUE
    )
    assert scu.fill(box, 1, gray_image(4, 4, 0), RequestedImageSize="-3") == 0x0106
    behaviour = {"RequestedDecimateCropBehavior": "SHRED"}
    assert scu.fill(box, 1, gray_image(4, 4, 0), **behaviour) == dimse.INVALID_ATTRIBUTE_VALUE
    # A colour image sequence does not belong on a grayscale image box.
    colour = Dataset()
    colour.BasicColorImageSequence = [color_image(4, 4, (1, 2, 3))]
    assert scu.set(GRAY_BOX, box, colour) == dimse.NO_SUCH_ATTRIBUTE
    assert scu.set(COLOR_BOX, box, colour) == dimse.INVALID_ATTRIBUTE_VALUE
    assert scu.fill("1.2.3.4.5", 1, gray_image(4, 4, 0)) == dimse.NO_SUCH_INSTANCE
    # Densities outside the printer's range are clamped with B605.
    assert scu.fill(box, 1, gray_image(4, 4, 0), MaxDensity=900) == dimse.DENSITY_OUT_OF_RANGE
    # Requested Image Size larger than the box (half of 8 inches wide is ~101 mm).
    big = {"RequestedImageSize": "150"}
    image = gray_image(10, 10, 0)
    assert scu.fill(box, 1, image, RequestedDecimateCropBehavior="FAIL", **big) == 0xC603
    assert scu.fill(box, 1, image, RequestedDecimateCropBehavior="CROP", **big) == 0xB609
    assert scu.fill(box, 1, image, **big) == dimse.IMAGE_DEMAGNIFIED
    assert scu.fill(box, 1, image, RequestedImageSize="50") == 0


def test_presentation_lut_statuses(scu: PrintScu) -> None:
    bad = Dataset()
    bad.PresentationLUTShape = "GAMMA"
    assert scu.create(s.PRESENTATION_LUT, bad, meta=False)[0] == dimse.INVALID_ATTRIBUTE_VALUE
    assert scu.create(s.PRESENTATION_LUT, _copies(), meta=False)[0] == dimse.MISSING_ATTRIBUTE
    good = Dataset()
    good.PresentationLUTShape = "LIN OD"
    status, uid, _ = scu.create(s.PRESENTATION_LUT, good, meta=False)
    assert status == 0 and uid
    assert scu.delete(s.PRESENTATION_LUT, uid, meta=False) == 0
    assert scu.delete(s.PRESENTATION_LUT, uid, meta=False) == dimse.NO_SUCH_INSTANCE


def test_unknown_printer_and_forbidden_caller(tmp_path: Path, settings: Settings) -> None:
    limited = dataclasses.replace(
        settings,
        printers={"DENTAL": {"allowed_calling_ae_titles": ["PANO1"]}},
    )
    srv = ClinicServer(limited)
    srv.start()
    try:
        stranger = PrintScu(srv.print_port, called="NOSUCHPRINTER")
        assert stranger.create(FILM_SESSION, _copies())[0] == dimse.NOT_AUTHORISED
        stranger.release()
        # A caller the printer does not allow is refused at association: A-ASSOCIATE-RJ,
        # permanent, service user, calling AE title not recognised.
        intruder_ae = AE(ae_title="CT9")
        intruder_ae.add_requested_context(s.GRAYSCALE_META)
        intruder = intruder_ae.associate("127.0.0.1", srv.print_port, ae_title="DENTAL")
        assert intruder.is_rejected
        assert intruder.acceptor.primitive is not None
        assert intruder.acceptor.primitive.diagnostic == 0x03
        pano = PrintScu(srv.print_port, called="DENTAL", calling="PANO1")
        assert pano.create(FILM_SESSION, _copies())[0] == 0
        pano.release()
    finally:
        srv.stop()


def test_unsupported_context_is_rejected_not_aborted(server: ClinicServer) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context("1.2.840.10008.5.1.1.9")
    ae.add_requested_context("1.2.840.10008.5.1.1.27")  # Stored Print Storage: not offered
    assoc = ae.associate("127.0.0.1", server.print_port, ae_title="PDFPRINT")
    assert assoc.is_established
    assert len(assoc.accepted_contexts) == 1 and len(assoc.rejected_contexts) == 1
    assoc.release()


def test_lin_od_lut_trim_and_true_size(server: ClinicServer, scu: PrintScu) -> None:
    lut = Dataset()
    lut.PresentationLUTShape = "LIN OD"
    _, lut_uid, _ = scu.create(s.PRESENTATION_LUT, lut, meta=False)
    assert lut_uid
    session_uid = scu.session()
    ref = Dataset()
    ref.ReferencedSOPClassUID = s.PRESENTATION_LUT
    ref.ReferencedSOPInstanceUID = lut_uid
    _, film_uid, boxes = scu.film_box(
        session_uid,
        "STANDARD\\2,1",
        FilmSizeID="A4",
        FilmOrientation="LANDSCAPE",
        ReferencedPresentationLUTSequence=[ref],
        MinDensity=0,
        MaxDensity=300,
        Trim="YES",
    )
    # LIN OD: P = 1/2 is 1.5 OD, far darker than IDENTITY's mid-gray.
    assert scu.fill(boxes[0], 1, gray_image(16, 16, 128)) == 0
    # 60 mm wide, true size, black on the white border.
    true_size = {"RequestedImageSize": "60", "MagnificationType": "REPLICATE"}
    assert scu.fill(boxes[1], 2, gray_image(20, 30, 0), **true_size) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()

    assert server.session_factory is not None
    job = wait_for_job(server.session_factory)
    pdf = Path(job.pdf_path)
    assert page_sizes_mm(pdf) == [pytest.approx((297, 210), abs=0.2)]
    dpi = 100
    page = rasterize(pdf, dpi)[0]
    from clinic.printing.render import HEADER_MM

    lin_od = sample(page, 297 / 4, HEADER_MM + (210 - HEADER_MM) / 2, dpi)[0]
    assert lin_od < 60
    row = round((HEADER_MM + (210 - HEADER_MM) / 2) / 25.4 * dpi)
    pixels = [page.getpixel((x, row))[0] for x in range(page.width // 2, page.width)]
    dark = [x for x, v in enumerate(pixels) if v < 128]
    # The trim line hugs the image, so count the dark run inside the box only.
    width_mm = (max(dark) - min(dark) + 1) / dpi * 25.4
    assert width_mm == pytest.approx(60, abs=1.0)
