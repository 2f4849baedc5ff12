"""Fuzzing Image Box N-SET: every dataset is printed or refused with a status, never a crash.

Image items start valid and are mutated: attributes dropped, VRs swapped, values
replaced by garbage, Rows x Columns x bits made to disagree with the bytes sent. A
refused N-SET leaves the image box as it was. A few go through the real listener.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from clinic.dicom.status import DimseFailure
from clinic.printing import session as s
from clinic.printing.profiles import PrinterProfile
from clinic.printing.render import ImageSpec
from clinic.printing.session import PrintSession
from clinic.server import ClinicServer
from tests.support.dicom_bytes import (
    datasets,
    decode_le,
    element,
    fuzz_settings,
    nested,
    sequence,
    tags,
)
from tests.support.print_bytes import (
    BAD_LENGTH,
    GRAY_SEQ,
    encode,
    image_box_requests,
    us,
    valid_item,
)
from tests.support.printing import GRAY_BOX, PrintScu, gray_image, wait_for_job

FUZZ = fuzz_settings(200)


def new_session(tmp_path: Path, color: bool = False) -> tuple[PrintSession, str]:
    """A print session with one 1x1 film box; returns it and its image box UID."""
    profile = PrinterProfile(ae_title="PDFPRINT", name="PDF", pdf_dir=tmp_path)
    counter = iter(range(1, 10**6))
    session = PrintSession(profile, lambda: f"1.2.3.{next(counter)}")
    session.create_film_session(None, Dataset())
    film = Dataset()
    film.ImageDisplayFormat = "STANDARD\\1,1"
    ref = Dataset()
    ref.ReferencedSOPClassUID = s.FILM_SESSION
    ref.ReferencedSOPInstanceUID = session.film_session.uid  # type: ignore[union-attr]
    film.ReferencedFilmSessionSequence = [ref]
    outcome = session.create_film_box(None, film, color)
    return session, session.film_boxes[outcome.uid].image_box_uids[0]


def set_box(session: PrintSession, uid: str, data: bytes, color: bool = False) -> int:
    """N-SET the image box; the status, and the box unchanged when refused."""
    box = session.image_boxes[uid]
    before: ImageSpec | None = box.image
    sop_class = s.COLOR_IMAGE_BOX if color else s.GRAYSCALE_IMAGE_BOX
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = decode_le(data)
        except Exception:
            return -1  # not decodable: the listener's guard answers 0x0110
        try:
            outcome = session.set_image_box(uid, sop_class, ds, True)
        except DimseFailure as exc:
            assert exc.status in (0x0105, 0x0106, 0x0120, 0xC603, 0xC605), hex(exc.status)
            assert box.image is before
            return exc.status
    if box.image is not None:
        pixels = box.image.pixels
        assert pixels.ndim == (3 if color else 2) and pixels.size > 0
    return outcome.status


@FUZZ
@given(data=image_box_requests())
@example(data=BAD_LENGTH)
@example(data=nested(GRAY_SEQ, 50))
@example(data=sequence(GRAY_SEQ, [encode({**valid_item(4, 4, False), "Rows": ("US", us(65535))})]))
def test_grayscale_image_box(data: bytes) -> None:
    session, uid = new_session(Path("/nonexistent"))
    set_box(session, uid, data)


@FUZZ
@given(data=image_box_requests(color=True))
def test_color_image_box(data: bytes) -> None:
    session, uid = new_session(Path("/nonexistent"), color=True)
    set_box(session, uid, data, color=True)


def test_inconsistent_images_refused_before_allocation(tmp_path: Path) -> None:
    session, uid = new_session(tmp_path)
    # 8192 x 8192 x 16 bits promised, 16 bytes sent: refused without a 128 MB buffer.
    short = valid_item(8192, 8192, False)
    short["BitsAllocated"], short["BitsStored"], short["HighBit"] = (
        ("US", us(16)),
        ("US", us(12)),
        ("US", us(11)),
    )
    short["PixelData"] = ("OW", bytes(16))
    data = encode({"ImageBoxPosition": ("US", us(1))}) + sequence(GRAY_SEQ, [encode(short)])
    assert set_box(session, uid, data) == 0x0106
    assert set_box(session, uid, BAD_LENGTH) == 0x0106
    # Larger than the printer takes: out of resources (C605), nothing read.
    huge = {**valid_item(1, 1, False), "Rows": ("US", us(9000))}
    data = encode({"ImageBoxPosition": ("US", us(1))}) + sequence(GRAY_SEQ, [encode(huge)])
    assert set_box(session, uid, data) == 0xC605
    # A good image, then a bad one: the box keeps the good one.
    good = encode({"ImageBoxPosition": ("US", us(1))}) + sequence(
        GRAY_SEQ, [encode(valid_item(4, 4, False))]
    )
    assert set_box(session, uid, good) == 0
    kept = session.image_boxes[uid].image
    assert set_box(session, uid, data) == 0xC605
    assert session.image_boxes[uid].image is kept
    assert kept is not None and np.array_equal(kept.pixels, np.zeros((4, 4), np.uint8))


def test_hostile_image_boxes_through_the_listener(server: ClinicServer) -> None:
    scu = PrintScu(server.print_port, transfer_syntax=ExplicitVRLittleEndian)
    try:
        session_uid = scu.session()
        _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
        # Pixel Data shorter than Rows x Columns: invalid value.
        image = gray_image(64, 64, 10)
        image.PixelData = image.PixelData[:100]
        assert scu.fill(boxes[0], 1, image) == 0x0106
        # Rows over the printer's limit: out of resources.
        image = gray_image(4, 4, 10)
        image.Rows = 60000
        assert scu.fill(boxes[0], 1, image) == 0xC605
        # A traversal string as the image box UID: no such instance.
        ds = Dataset()
        ds.ImageBoxPosition = 1
        assert scu.set(GRAY_BOX, "../../etc/passwd", ds) in (0x0112, 0x0106)
        # Nested image sequences: refused, and the association still works.
        deep = Dataset()
        inner = deep
        for _ in range(30):
            child = Dataset()
            inner.BasicGrayscaleImageSequence = [child]
            inner = child
        deep.ImageBoxPosition = 1
        assert scu.set(GRAY_BOX, boxes[0], deep) in (0x0106, 0x0120)
        assert scu.fill(boxes[0], 1, gray_image(4, 4, 10)) == 0
        status, _ = scu.action(s.FILM_BOX, film_uid)
        assert status == 0
    finally:
        scu.release()


FILM_BOX_KEYS = tags(
    "ImageDisplayFormat",
    "FilmOrientation",
    "FilmSizeID",
    "MagnificationType",
    "BorderDensity",
    "EmptyImageDensity",
    "MinDensity",
    "MaxDensity",
    "Trim",
    "RequestedResolutionID",
    "AnnotationDisplayFormatID",
    "NumberOfCopies",
    "PrintPriority",
    "MediumType",
    "TextString",
    "AnnotationPosition",
    "PresentationLUTShape",
)
FILM_BOX_SEQUENCES = tags(
    "ReferencedFilmSessionSequence",
    "ReferencedPresentationLUTSequence",
    "PresentationLUTSequence",
)
REFERENCE_KEYS = tags(
    "ReferencedSOPClassUID", "ReferencedSOPInstanceUID", "LUTDescriptor", "LUTData"
)


@FUZZ
@given(
    data=datasets(FILM_BOX_KEYS, FILM_BOX_SEQUENCES, REFERENCE_KEYS),
    operation=st.sampled_from(["film box", "set film box", "session", "annotation", "lut"]),
)
@example(data=element(tags("ImageDisplayFormat")[0], "FD", b"ST"), operation="film box")
@example(data=element(tags("NumberOfCopies")[0], "UV", b"12"), operation="session")
# Regressions: a Presentation LUT Sequence with another VR, or empty, raised TypeError.
@example(data=element(tags("PresentationLUTSequence")[0], "AT", b"M\\F\\O "), operation="lut")
@example(data=element(tags("PresentationLUTSequence")[0], "LO", b""), operation="lut")
def test_other_print_requests(data: bytes, operation: str) -> None:
    session, _ = new_session(Path("/nonexistent"))
    film_uid = next(iter(session.film_boxes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = decode_le(data)
        except Exception:
            return
        try:
            if operation == "film box":
                session.create_film_box(None, ds, False)
            elif operation == "set film box":
                session.set_film_box(film_uid, ds)
            elif operation == "session":
                assert session.film_session is not None
                session.set_film_session(session.film_session.uid, ds)
            elif operation == "annotation":
                session.annotations["9.9"] = (film_uid, 1)
                session.set_annotation("9.9", ds)
            else:
                session.create_lut(None, ds)
        except DimseFailure as exc:
            assert exc.status in (0x0105, 0x0106, 0x0111, 0x0117, 0x0120), hex(exc.status)


@pytest.mark.parametrize("transfer_syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_explicit_presentation_lut_prints(server: ClinicServer, transfer_syntax: str) -> None:
    # Regression: LUT Data arrives as many US values (pydicom's MultiValue) or as bytes
    # (implicit VR); both raised inside the handler and answered 0x0110.
    scu = PrintScu(server.print_port, transfer_syntax=transfer_syntax)
    try:
        lut = Dataset()
        item = Dataset()
        item.add_new("LUTDescriptor", "US", [256, 0, 12])
        item.add_new("LUTData", "US", [i * 16 for i in range(256)])
        lut.PresentationLUTSequence = [item]
        status, lut_uid, _ = scu.create(s.PRESENTATION_LUT, lut, meta=False)
        assert status == 0 and lut_uid
        session_uid = scu.session()
        ref = Dataset()
        ref.ReferencedSOPClassUID = s.PRESENTATION_LUT
        ref.ReferencedSOPInstanceUID = lut_uid
        _, film_uid, boxes = scu.film_box(
            session_uid, "STANDARD\\1,1", ReferencedPresentationLUTSequence=[ref]
        )
        assert scu.fill(boxes[0], 1, gray_image(8, 8, 100)) == 0
        assert scu.action(s.FILM_BOX, film_uid)[0] == 0
    finally:
        scu.release()
    assert server.session_factory is not None
    wait_for_job(server.session_factory)
