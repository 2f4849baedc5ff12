"""Print session state of one association, and validation of every attribute.

A :class:`PrintSession` holds the Film Session, its Film Boxes, their Image and
Annotation Boxes and the Presentation LUTs an association created. Each operation
checks the request against PS3.4 Annex H and the printer profile and either raises
:class:`~clinic.dicom.status.DimseFailure` (a failure status) or returns the response
attributes and a success or warning status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    BasicAnnotationBox,
    BasicColorImageBox,
    BasicColorPrintManagementMeta,
    BasicFilmBox,
    BasicFilmSession,
    BasicGrayscaleImageBox,
    BasicGrayscalePrintManagementMeta,
    PresentationLUT,
    Printer,
    PrinterInstance,
    PrintJob,
)

from clinic.dicom.decoding import first_undecodable
from clinic.dicom.status import (
    ATTRIBUTE_LIST_ERROR,
    DENSITY_OUT_OF_RANGE,
    DUPLICATE_INSTANCE,
    FILM_BOX_EMPTY_PAGE,
    IMAGE_CROPPED,
    IMAGE_DEMAGNIFIED,
    IMAGE_TOO_LARGE_FOR_BOX,
    INSUFFICIENT_MEMORY,
    INVALID_ATTRIBUTE_VALUE,
    INVALID_OBJECT_INSTANCE,
    MEMORY_ALLOCATION_NOT_SUPPORTED,
    MISSING_ATTRIBUTE,
    NO_FILM_BOX,
    NO_SUCH_ATTRIBUTE,
    NO_SUCH_INSTANCE,
    SESSION_EMPTY_PAGE,
    SUCCESS,
    VALUE_OUT_OF_RANGE,
    DimseFailure,
)
from clinic.domain import vr
from clinic.printing.layout import (
    Rect,
    film_dimensions,
    fit_image,
    image_boxes,
    inset,
    parse_display_format,
)
from clinic.printing.profiles import MAGNIFICATIONS, MEDIUM_TYPES, PrinterProfile
from clinic.printing.render import HEADER_MM, FilmSpec, ImageSpec, LutSpec

# SOP classes of PS3.4 Annex H, by the names this door uses.
FILM_SESSION = BasicFilmSession
FILM_BOX = BasicFilmBox
GRAYSCALE_IMAGE_BOX = BasicGrayscaleImageBox
COLOR_IMAGE_BOX = BasicColorImageBox
GRAYSCALE_META = BasicGrayscalePrintManagementMeta
PRINT_JOB = PrintJob
ANNOTATION_BOX = BasicAnnotationBox
PRINTER = Printer
PRINTER_INSTANCE = PrinterInstance
COLOR_META = BasicColorPrintManagementMeta
PRESENTATION_LUT = PresentationLUT

#: Attributes every request may carry without comment.
_ALWAYS = {"SpecificCharacterSet"}
#: Annotation boxes created when a Film Box names an Annotation Display Format ID.
ANNOTATION_BOXES = 6


@dataclass
class Outcome:
    """The answer to one request: status, attributes to return, the instance UID."""

    status: int = SUCCESS
    dataset: Dataset | None = None
    uid: str = ""
    comment: str = ""

    def warn(self, status: int, comment: str) -> None:
        """Record a warning; the first one is the status answered."""
        if self.status == SUCCESS:
            self.status = status
            self.comment = comment


@dataclass
class ImageBox:
    """An Image Box created by its Film Box; filled by N-SET."""

    uid: str
    sop_class: str
    position: int
    film_box_uid: str
    image: ImageSpec | None = None


@dataclass
class FilmBox:
    """A Film Box and the values applied to it."""

    uid: str
    spec: FilmSpec
    image_box_uids: list[str] = field(default_factory=list)
    annotation_uids: list[str] = field(default_factory=list)
    lut_uid: str = ""


@dataclass
class FilmSessionState:
    """The association's Film Session."""

    uid: str
    copies: int = 1
    priority: str = "MED"
    medium: str = "PAPER"
    destination: str = "MAGAZINE"
    label: str = ""


@dataclass
class PrintRequest:
    """Films to print, handed to the spool by an N-ACTION."""

    films: list[FilmSpec]
    copies: int
    priority: str


def _present(ds: Dataset, keyword: str) -> bool:
    return keyword in ds and ds[keyword].value not in (None, "", b"")


def _text(ds: Dataset, keyword: str) -> str:
    value = ds[keyword].value
    if isinstance(value, (list, tuple)):
        value = "\\".join(str(v) for v in value)
    return str(value).strip().upper()


def _int(ds: Dataset, keyword: str) -> int:
    try:
        return int(str(ds[keyword].value).strip())
    except (TypeError, ValueError):
        raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"{keyword} is not a number") from None


def _require_decodable(ds: Dataset) -> None:
    """Refuse (0x0106) a request holding a value that does not fit its VR."""
    undecodable = first_undecodable(ds)
    if undecodable is not None:
        raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"{undecodable} cannot be decoded")


def _check_attributes(ds: Dataset, allowed: Iterable[str], outcome: Outcome) -> None:
    """Warn 0x0107 for attributes this operation does not know (they are ignored)."""
    known = set(allowed) | _ALWAYS
    for elem in ds:
        if elem.tag.element == 0 or elem.tag.is_private:
            continue
        if elem.keyword not in known:
            outcome.warn(ATTRIBUTE_LIST_ERROR, f"attribute {elem.tag} not supported, ignored")


def _referenced_uid(ds: Dataset, keyword: str) -> str:
    seq = ds[keyword].value
    if not isinstance(seq, Sequence) or len(seq) != 1:
        raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"{keyword} must hold one item")
    uid = str(seq[0].get("ReferencedSOPInstanceUID", "")).strip()
    if not uid:
        raise DimseFailure(MISSING_ATTRIBUTE, f"{keyword} lacks Referenced SOP Instance UID")
    return uid


def _density(ds: Dataset, keyword: str, profile: PrinterProfile, outcome: Outcome) -> str:
    value = _text(ds, keyword)
    if value in ("BLACK", "WHITE"):
        return value
    number = _int(ds, keyword)
    if number < 0:
        raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"{keyword} must not be negative")
    if number > profile.max_density:
        outcome.warn(VALUE_OUT_OF_RANGE, f"{keyword} above the printer's maximum, clamped")
        number = profile.max_density
    return str(number)


def _min_max(
    ds: Dataset, profile: PrinterProfile, outcome: Outcome, current: tuple[int | None, int | None]
) -> tuple[int | None, int | None]:
    low, high = current
    if _present(ds, "MinDensity"):
        low = _int(ds, "MinDensity")
    if _present(ds, "MaxDensity"):
        high = _int(ds, "MaxDensity")
    if low is not None and low > profile.max_density:
        outcome.warn(DENSITY_OUT_OF_RANGE, "Min Density outside the printer's range")
        low = profile.max_density
    if high is not None and high > profile.max_density:
        outcome.warn(DENSITY_OUT_OF_RANGE, "Max Density outside the printer's range")
        high = profile.max_density
    if low is not None and high is not None and low > high:
        raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Min Density is above Max Density")
    return low, high


def _values(value: Any) -> list[Any]:
    """The values of a possibly multi-valued element, as a list."""
    return list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]


def _lut_from(ds: Dataset) -> LutSpec:
    if _present(ds, "PresentationLUTShape"):
        shape = _text(ds, "PresentationLUTShape")
        if shape not in ("IDENTITY", "LIN OD"):
            raise DimseFailure(
                INVALID_ATTRIBUTE_VALUE, f"Presentation LUT Shape {shape} unsupported"
            )
        return LutSpec(shape=shape)
    seq = ds["PresentationLUTSequence"].value if "PresentationLUTSequence" in ds else None
    if isinstance(seq, Sequence) and len(seq) == 1:
        item = seq[0]
        if "LUTDescriptor" not in item or "LUTData" not in item:
            raise DimseFailure(MISSING_ATTRIBUTE, "Presentation LUT lacks descriptor or data")
        try:
            descriptor = [int(v) for v in _values(item.LUTDescriptor)]
            data = item.LUTData
            if isinstance(data, bytes):  # OW, or US in an implicit VR transfer syntax
                table = np.frombuffer(data[: len(data) // 2 * 2], dtype="<u2").astype(int).tolist()
            else:  # US: one value or many (pydicom's MultiValue is no list)
                table = [int(v) for v in _values(data)]
        except (TypeError, ValueError):
            raise DimseFailure(
                INVALID_ATTRIBUTE_VALUE, "invalid LUT Descriptor or LUT Data"
            ) from None
        if len(descriptor) != 3 or not 0 <= descriptor[0] < 65536 or not 10 <= descriptor[2] <= 16:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "invalid LUT Descriptor")
        entries = descriptor[0] or 65536
        if len(table) < entries:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "LUT Data shorter than its descriptor")
        return LutSpec(
            shape="IDENTITY", first_mapped=descriptor[1], bits=descriptor[2], table=table[:entries]
        )
    raise DimseFailure(MISSING_ATTRIBUTE, "Presentation LUT Shape or Sequence is required")


class PrintSession:
    """The print objects of one association, on one printer profile.

    Parameters
    ----------
    profile : PrinterProfile
        The printer the association called.
    new_uid : callable
        Returns a new SOP Instance UID for instances the SCP creates.
    """

    def __init__(self, profile: PrinterProfile, new_uid: Callable[[], str]) -> None:
        self.profile = profile
        self.new_uid = new_uid
        self.film_session: FilmSessionState | None = None
        self.film_boxes: dict[str, FilmBox] = {}
        self.image_boxes: dict[str, ImageBox] = {}
        self.annotations: dict[str, tuple[str, int]] = {}  # uid -> (film box uid, position)
        self.luts: dict[str, LutSpec] = {}

    def _instance_uid(self, uid: str | None) -> str:
        """The UID of a new instance: the SCU's own (if it is a valid UID), or a new one."""
        if not uid:
            return self.new_uid()
        problem = vr.check_uid(uid)
        if problem:
            raise DimseFailure(INVALID_OBJECT_INSTANCE, f"SOP Instance UID {problem}")
        return uid

    # -- Film Session -------------------------------------------------------------

    def create_film_session(self, uid: str | None, ds: Dataset) -> Outcome:
        """N-CREATE Basic Film Session: one per association."""
        _require_decodable(ds)
        if self.film_session is not None:
            raise DimseFailure(DUPLICATE_INSTANCE, "this association already has a film session")
        outcome = Outcome(uid=self._instance_uid(uid))
        state = FilmSessionState(uid=outcome.uid, medium=self.profile.default_medium)
        self._apply_session(state, ds, outcome)
        self.film_session = state
        outcome.dataset = self._session_dataset(state)
        return outcome

    def set_film_session(self, uid: str, ds: Dataset) -> Outcome:
        """N-SET Basic Film Session."""
        _require_decodable(ds)
        state = self._session(uid)
        outcome = Outcome(uid=uid)
        self._apply_session(state, ds, outcome)
        outcome.dataset = self._session_dataset(state)
        return outcome

    def delete_film_session(self, uid: str) -> Outcome:
        """N-DELETE Basic Film Session and everything in it."""
        self._session(uid)
        self.film_session = None
        self.film_boxes.clear()
        self.image_boxes.clear()
        self.annotations.clear()
        return Outcome(uid=uid)

    def _session(self, uid: str) -> FilmSessionState:
        if self.film_session is None or self.film_session.uid != uid:
            raise DimseFailure(NO_SUCH_INSTANCE, "no such film session")
        return self.film_session

    def _apply_session(self, state: FilmSessionState, ds: Dataset, outcome: Outcome) -> None:
        _check_attributes(
            ds,
            (
                "NumberOfCopies",
                "PrintPriority",
                "MediumType",
                "FilmDestination",
                "FilmSessionLabel",
                "MemoryAllocation",
                "OwnerID",
            ),
            outcome,
        )
        if _present(ds, "NumberOfCopies"):
            copies = _int(ds, "NumberOfCopies")
            if copies < 1:
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Number of Copies must be at least 1")
            if copies > self.profile.max_copies:
                outcome.warn(VALUE_OUT_OF_RANGE, "Number of Copies above the printer's maximum")
                copies = self.profile.max_copies
            state.copies = copies
        if _present(ds, "PrintPriority"):
            priority = _text(ds, "PrintPriority")
            if priority not in ("HIGH", "MED", "LOW"):
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"Print Priority {priority} invalid")
            state.priority = priority
        if _present(ds, "MediumType"):
            medium = _text(ds, "MediumType")
            if medium in MEDIUM_TYPES:
                state.medium = medium
            else:
                outcome.warn(VALUE_OUT_OF_RANGE, "Medium Type unsupported, default used")
        if _present(ds, "FilmDestination"):
            destination = _text(ds, "FilmDestination")
            if destination in ("MAGAZINE", "PROCESSOR") or destination.startswith("BIN_"):
                state.destination = destination
            else:
                outcome.warn(VALUE_OUT_OF_RANGE, "Film Destination unsupported, default used")
        if _present(ds, "FilmSessionLabel"):
            state.label = str(ds.FilmSessionLabel)
        if _present(ds, "MemoryAllocation"):
            outcome.warn(MEMORY_ALLOCATION_NOT_SUPPORTED, "Memory Allocation not supported")

    @staticmethod
    def _session_dataset(state: FilmSessionState) -> Dataset:
        ds = Dataset()
        ds.NumberOfCopies = str(state.copies)
        ds.PrintPriority = state.priority
        ds.MediumType = state.medium
        ds.FilmDestination = state.destination
        ds.FilmSessionLabel = state.label
        return ds

    # -- Film Box -----------------------------------------------------------------

    _FILM_BOX_SET = (
        "MagnificationType",
        "SmoothingType",
        "BorderDensity",
        "EmptyImageDensity",
        "MinDensity",
        "MaxDensity",
        "Trim",
        "ConfigurationInformation",
        "Illumination",
        "ReflectedAmbientLight",
        "ReferencedPresentationLUTSequence",
    )

    def create_film_box(self, uid: str | None, ds: Dataset, color: bool) -> Outcome:
        """N-CREATE Basic Film Box: creates its Image Boxes (and Annotation Boxes).

        Parameters
        ----------
        uid : str or None
            The instance UID the SCU chose, or None for one assigned here.
        ds : Dataset
            The request's attribute list.
        color : bool
            Whether the request came on the Basic Color Print Management context.
        """
        _require_decodable(ds)
        profile = self.profile
        outcome = Outcome(uid=self._instance_uid(uid))
        if uid and uid in self.film_boxes:
            raise DimseFailure(DUPLICATE_INSTANCE, "film box already exists")
        _check_attributes(
            ds,
            (
                *self._FILM_BOX_SET,
                "ImageDisplayFormat",
                "AnnotationDisplayFormatID",
                "FilmOrientation",
                "FilmSizeID",
                "RequestedResolutionID",
                "ReferencedFilmSessionSequence",
            ),
            outcome,
        )
        if not _present(ds, "ImageDisplayFormat"):
            raise DimseFailure(MISSING_ATTRIBUTE, "Image Display Format is required")
        if "ReferencedFilmSessionSequence" not in ds:
            raise DimseFailure(MISSING_ATTRIBUTE, "Referenced Film Session Sequence is required")
        session_uid = _referenced_uid(ds, "ReferencedFilmSessionSequence")
        if self.film_session is None or session_uid != self.film_session.uid:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "referenced film session does not exist")
        display = _text(ds, "ImageDisplayFormat")
        try:
            fmt = parse_display_format(display)
        except ValueError as exc:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, str(exc)) from None
        if fmt.kind not in profile.display_formats:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"display format {fmt.kind} not supported")
        spec = FilmSpec(
            display_format=display,
            film_size=profile.default_film_size,
            magnification=profile.default_magnification,
        )
        if _present(ds, "FilmOrientation"):
            orientation = _text(ds, "FilmOrientation")
            if orientation not in ("PORTRAIT", "LANDSCAPE"):
                raise DimseFailure(
                    INVALID_ATTRIBUTE_VALUE, f"Film Orientation {orientation} invalid"
                )
            spec.orientation = orientation
        if _present(ds, "FilmSizeID"):
            size = _text(ds, "FilmSizeID")
            if size not in profile.film_sizes:
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"Film Size ID {size} not supported")
            spec.film_size = size
        if _present(ds, "RequestedResolutionID"):
            resolution = _text(ds, "RequestedResolutionID")
            if resolution not in ("STANDARD", "HIGH"):
                outcome.warn(VALUE_OUT_OF_RANGE, "Requested Resolution ID unsupported")
        box = FilmBox(uid=outcome.uid, spec=spec)
        self._apply_film_box(box, ds, outcome)

        image_class = COLOR_IMAGE_BOX if color else GRAYSCALE_IMAGE_BOX
        images = Sequence()
        for position in range(1, fmt.box_count + 1):
            image_uid = self.new_uid()
            self.image_boxes[image_uid] = ImageBox(image_uid, image_class, position, box.uid)
            box.image_box_uids.append(image_uid)
            ref = Dataset()
            ref.ReferencedSOPClassUID = image_class
            ref.ReferencedSOPInstanceUID = image_uid
            images.append(ref)
        annotations = Sequence()
        if _present(ds, "AnnotationDisplayFormatID"):
            for position in range(1, ANNOTATION_BOXES + 1):
                annotation_uid = self.new_uid()
                self.annotations[annotation_uid] = (box.uid, position)
                box.annotation_uids.append(annotation_uid)
                ref = Dataset()
                ref.ReferencedSOPClassUID = ANNOTATION_BOX
                ref.ReferencedSOPInstanceUID = annotation_uid
                annotations.append(ref)
        self.film_boxes[box.uid] = box

        answer = self._film_box_dataset(box)
        answer.ReferencedFilmSessionSequence = ds.ReferencedFilmSessionSequence
        answer.ReferencedImageBoxSequence = images
        if annotations:
            answer.AnnotationDisplayFormatID = _text(ds, "AnnotationDisplayFormatID")
            answer.ReferencedBasicAnnotationBoxSequence = annotations
        outcome.dataset = answer
        return outcome

    def set_film_box(self, uid: str, ds: Dataset) -> Outcome:
        """N-SET Basic Film Box."""
        _require_decodable(ds)
        box = self._film_box(uid)
        outcome = Outcome(uid=uid)
        _check_attributes(ds, self._FILM_BOX_SET, outcome)
        self._apply_film_box(box, ds, outcome)
        outcome.dataset = self._film_box_dataset(box)
        return outcome

    def delete_film_box(self, uid: str) -> Outcome:
        """N-DELETE Basic Film Box and its Image and Annotation Boxes."""
        box = self._film_box(uid)
        for image_uid in box.image_box_uids:
            self.image_boxes.pop(image_uid, None)
        for annotation_uid in box.annotation_uids:
            self.annotations.pop(annotation_uid, None)
        del self.film_boxes[uid]
        return Outcome(uid=uid)

    def _film_box(self, uid: str) -> FilmBox:
        try:
            return self.film_boxes[uid]
        except KeyError:
            raise DimseFailure(NO_SUCH_INSTANCE, "no such film box") from None

    def _apply_film_box(self, box: FilmBox, ds: Dataset, outcome: Outcome) -> None:
        spec = box.spec
        if _present(ds, "MagnificationType"):
            magnification = _text(ds, "MagnificationType")
            if magnification in MAGNIFICATIONS:
                spec.magnification = magnification
            else:
                outcome.warn(VALUE_OUT_OF_RANGE, "Magnification Type unsupported, default used")
        if _present(ds, "BorderDensity"):
            spec.border_density = _density(ds, "BorderDensity", self.profile, outcome)
        if _present(ds, "EmptyImageDensity"):
            spec.empty_density = _density(ds, "EmptyImageDensity", self.profile, outcome)
        spec.min_density, spec.max_density = _min_max(
            ds, self.profile, outcome, (spec.min_density, spec.max_density)
        )
        if _present(ds, "Trim"):
            trim = _text(ds, "Trim")
            if trim not in ("YES", "NO"):
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"Trim {trim} invalid")
            spec.trim = trim == "YES"
        if "ReferencedPresentationLUTSequence" in ds:
            lut_uid = _referenced_uid(ds, "ReferencedPresentationLUTSequence")
            if lut_uid not in self.luts:
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "referenced Presentation LUT unknown")
            box.lut_uid = lut_uid
            spec.lut = self.luts[lut_uid]

    @staticmethod
    def _film_box_dataset(box: FilmBox) -> Dataset:
        spec = box.spec
        ds = Dataset()
        ds.ImageDisplayFormat = spec.display_format
        ds.FilmOrientation = spec.orientation
        ds.FilmSizeID = spec.film_size
        ds.MagnificationType = spec.magnification
        ds.BorderDensity = spec.border_density
        ds.EmptyImageDensity = spec.empty_density
        if spec.min_density is not None:
            ds.MinDensity = spec.min_density
        if spec.max_density is not None:
            ds.MaxDensity = spec.max_density
        ds.Trim = "YES" if spec.trim else "NO"
        return ds

    # -- Image Box ----------------------------------------------------------------

    def set_image_box(self, uid: str, sop_class: str, ds: Dataset, little_endian: bool) -> Outcome:
        """N-SET Basic Grayscale or Color Image Box: validates, then decodes the pixels.

        Parameters
        ----------
        uid : str
            The image box instance.
        sop_class : str
            The Requested SOP Class UID.
        ds : Dataset
            The attribute list.
        little_endian : bool
            Byte order of the transfer syntax the pixels came in.
        """
        image_box = self.image_boxes.get(uid)
        if image_box is None:
            raise DimseFailure(NO_SUCH_INSTANCE, "no such image box")
        if sop_class != image_box.sop_class:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "image box SOP class mismatch")
        color = sop_class == COLOR_IMAGE_BOX
        _require_decodable(ds)
        outcome = Outcome(uid=uid)
        own, other = (
            ("BasicColorImageSequence", "BasicGrayscaleImageSequence")
            if color
            else ("BasicGrayscaleImageSequence", "BasicColorImageSequence")
        )
        if other in ds:
            raise DimseFailure(NO_SUCH_ATTRIBUTE, f"{other} does not belong to this image box")
        allowed = [
            "ImageBoxPosition",
            "Polarity",
            "MagnificationType",
            "SmoothingType",
            "RequestedImageSize",
            "RequestedDecimateCropBehavior",
            "ConfigurationInformation",
            own,
        ]
        if not color:
            allowed += ["MinDensity", "MaxDensity", "ReferencedPresentationLUTSequence"]
        _check_attributes(ds, allowed, outcome)
        if _present(ds, "ImageBoxPosition") and _int(ds, "ImageBoxPosition") != image_box.position:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Image Box Position does not match")

        polarity = "NORMAL"
        if _present(ds, "Polarity"):
            polarity = _text(ds, "Polarity")
            if polarity not in ("NORMAL", "REVERSE"):
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"Polarity {polarity} invalid")
        magnification = ""
        if _present(ds, "MagnificationType"):
            magnification = _text(ds, "MagnificationType")
            if magnification not in MAGNIFICATIONS:
                outcome.warn(VALUE_OUT_OF_RANGE, "Magnification Type unsupported, default used")
                magnification = ""
        requested: float | None = None
        if _present(ds, "RequestedImageSize"):
            try:
                requested = float(ds.RequestedImageSize)
            except (TypeError, ValueError):
                requested = -1.0
            if not requested > 0:
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Requested Image Size must be positive")
        behavior = "DECIMATE"
        if _present(ds, "RequestedDecimateCropBehavior"):
            behavior = _text(ds, "RequestedDecimateCropBehavior")
            if behavior not in ("DECIMATE", "CROP", "FAIL"):
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"Decimate/Crop {behavior} invalid")
        low, high = _min_max(ds, self.profile, outcome, (None, None))
        lut: LutSpec | None = None
        if "ReferencedPresentationLUTSequence" in ds:
            lut_uid = _referenced_uid(ds, "ReferencedPresentationLUTSequence")
            if lut_uid not in self.luts:
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "referenced Presentation LUT unknown")
            lut = self.luts[lut_uid]

        if own not in ds or not ds[own].value:
            image_box.image = None  # an empty sequence empties the box
            return outcome
        if len(ds[own].value) != 1:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, f"{own} must hold one item")
        item = ds[own].value[0]
        pixels, photometric, bits, aspect = self._decode(item, color, little_endian)
        image = ImageSpec(
            position=image_box.position,
            pixels=pixels,
            photometric=photometric,
            bits_stored=bits,
            polarity=polarity,
            magnification=magnification,
            min_density=low,
            max_density=high,
            requested_size_mm=requested,
            crop=behavior == "CROP",
            pixel_aspect=aspect,
            lut=lut,
        )
        if requested is not None:
            box_rect = self._box_rect(image_box)
            _, too_large = fit_image(box_rect, pixels.shape[1], pixels.shape[0], aspect, requested)
            if too_large:
                if behavior == "FAIL":
                    raise DimseFailure(IMAGE_TOO_LARGE_FOR_BOX, "image larger than its image box")
                if behavior == "CROP":
                    outcome.warn(IMAGE_CROPPED, "image larger than its box, cropped")
                else:
                    outcome.warn(IMAGE_DEMAGNIFIED, "image larger than its box, demagnified")
        image_box.image = image
        return outcome

    def _box_rect(self, image_box: ImageBox) -> Rect:
        spec = self.film_boxes[image_box.film_box_uid].spec
        width, height = film_dimensions(spec.film_size, spec.orientation)
        top = HEADER_MM if self.profile.header else 0.0
        boxes = image_boxes(
            parse_display_format(spec.display_format), Rect(0, top, width, height - top)
        )
        return inset(boxes[image_box.position - 1])

    def _decode(
        self, item: Dataset, color: bool, little_endian: bool
    ) -> tuple[NDArray[Any], str, int, float]:
        required = (
            "SamplesPerPixel",
            "PhotometricInterpretation",
            "Rows",
            "Columns",
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "PixelData",
        )
        for keyword in required:
            if keyword not in item or item[keyword].value is None:
                raise DimseFailure(MISSING_ATTRIBUTE, f"image lacks {keyword}")
        rows, columns = _int(item, "Rows"), _int(item, "Columns")
        if rows < 1 or columns < 1:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Rows and Columns must be positive")
        # Refuse oversize images before touching the pixel data.
        if rows > self.profile.max_rows or columns > self.profile.max_columns:
            raise DimseFailure(INSUFFICIENT_MEMORY, "image larger than this printer accepts")
        samples = _int(item, "SamplesPerPixel")
        photometric = _text(item, "PhotometricInterpretation")
        layout = (_int(item, "BitsAllocated"), _int(item, "BitsStored"), _int(item, "HighBit"))
        if _int(item, "PixelRepresentation") != 0:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Pixel Representation must be 0")
        if color:
            if samples != 3 or photometric != "RGB" or layout != (8, 8, 7):
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "colour images must be 8-bit RGB")
        else:
            if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
                raise DimseFailure(
                    INVALID_ATTRIBUTE_VALUE, "grayscale images must be MONOCHROME1/2"
                )
            if layout not in ((8, 8, 7), (16, 12, 11)):
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "bit depth must be 8/8/7 or 16/12/11")
        aspect = 1.0
        if _present(item, "PixelAspectRatio"):
            try:
                vertical, horizontal = (float(v) for v in item.PixelAspectRatio)
                aspect = vertical / horizontal
            except (TypeError, ValueError, ZeroDivisionError):
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "invalid Pixel Aspect Ratio") from None
            if not 0.1 <= aspect <= 10:
                raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Pixel Aspect Ratio out of range")
        data = item.PixelData
        if not isinstance(data, bytes):
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Pixel Data is not native")
        count = rows * columns * samples
        width = layout[0] // 8
        if len(data) < count * width:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Pixel Data shorter than Rows x Columns")
        dtype = np.uint8 if width == 1 else np.dtype("<u2" if little_endian else ">u2")
        flat = np.frombuffer(data, dtype=dtype, count=count)
        pixels: NDArray[Any]
        if color:
            planar = _present(item, "PlanarConfiguration") and _int(item, "PlanarConfiguration")
            if planar == 1:
                pixels = flat.reshape(3, rows, columns).transpose(1, 2, 0)
            else:
                pixels = flat.reshape(rows, columns, 3)
        else:
            pixels = flat.reshape(rows, columns)
        return np.array(pixels), photometric, layout[1], aspect

    # -- Annotation Box -----------------------------------------------------------

    def set_annotation(self, uid: str, ds: Dataset) -> Outcome:
        """N-SET Basic Annotation Box: its text is printed under the film."""
        _require_decodable(ds)
        if uid not in self.annotations:
            raise DimseFailure(NO_SUCH_INSTANCE, "no such annotation box")
        film_box_uid, position = self.annotations[uid]
        outcome = Outcome(uid=uid)
        _check_attributes(ds, ("AnnotationPosition", "TextString"), outcome)
        if _present(ds, "AnnotationPosition") and _int(ds, "AnnotationPosition") != position:
            raise DimseFailure(INVALID_ATTRIBUTE_VALUE, "Annotation Position does not match")
        text = str(ds.get("TextString", "") or "")
        spec = self.film_boxes[film_box_uid].spec
        if text:
            spec.annotations[position] = text[:64]
        else:
            spec.annotations.pop(position, None)
        return outcome

    # -- Presentation LUT ---------------------------------------------------------

    def create_lut(self, uid: str | None, ds: Dataset) -> Outcome:
        """N-CREATE Presentation LUT (shape IDENTITY or LIN OD, or an explicit table)."""
        _require_decodable(ds)
        outcome = Outcome(uid=self._instance_uid(uid))
        if outcome.uid in self.luts:
            raise DimseFailure(DUPLICATE_INSTANCE, "Presentation LUT already exists")
        _check_attributes(ds, ("PresentationLUTShape", "PresentationLUTSequence"), outcome)
        self.luts[outcome.uid] = _lut_from(ds)
        answer = Dataset()
        if _present(ds, "PresentationLUTShape"):
            answer.PresentationLUTShape = self.luts[outcome.uid].shape
        outcome.dataset = answer
        return outcome

    def delete_lut(self, uid: str) -> Outcome:
        """N-DELETE Presentation LUT (films already referencing it keep their copy)."""
        if self.luts.pop(uid, None) is None:
            raise DimseFailure(NO_SUCH_INSTANCE, "no such Presentation LUT")
        return Outcome(uid=uid)

    # -- N-ACTION -----------------------------------------------------------------

    def print_film_box(self, uid: str) -> tuple[PrintRequest, Outcome]:
        """N-ACTION Print on a Film Box: a snapshot of that one film."""
        box = self._film_box(uid)
        outcome = Outcome(uid=uid)
        film = self._snapshot(box)
        if not film.images:
            outcome.warn(FILM_BOX_EMPTY_PAGE, "film box has no images (empty page)")
        return self._request([film]), outcome

    def print_film_session(self, uid: str) -> tuple[PrintRequest, Outcome]:
        """N-ACTION Print on the Film Session: every film box, in creation order."""
        self._session(uid)
        if not self.film_boxes:
            raise DimseFailure(NO_FILM_BOX, "film session has no film box")
        outcome = Outcome(uid=uid)
        films = [self._snapshot(box) for box in self.film_boxes.values()]
        if not any(film.images for film in films):
            outcome.warn(SESSION_EMPTY_PAGE, "film session has no images (empty page)")
        return self._request(films), outcome

    def _request(self, films: list[FilmSpec]) -> PrintRequest:
        state = self.film_session
        assert state is not None  # a film box exists only inside a session
        return PrintRequest(films=films, copies=state.copies, priority=state.priority)

    def _snapshot(self, box: FilmBox) -> FilmSpec:
        spec = box.spec
        images = [
            self.image_boxes[u].image
            for u in box.image_box_uids
            if u in self.image_boxes and self.image_boxes[u].image is not None
        ]
        return FilmSpec(
            **{
                **spec.__dict__,
                "images": [i for i in images if i is not None],
                "annotations": dict(spec.annotations),
            }
        )
