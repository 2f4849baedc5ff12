"""Film geometry: film size x orientation x Image Display Format -> page and image boxes.

All lengths are millimetres; rectangles have their origin at the film's top-left
corner, ``y`` growing downwards (the way PS3.3 numbers image positions).
"""

from __future__ import annotations

from dataclasses import dataclass

MM_PER_INCH = 25.4

#: Film Size ID (2010,0050) defined terms of PS3.3 Table C.13-3 (Basic Film Box Presentation
#: Module), as portrait (width, height) mm. The table's note sets 10INX14IN to 25.7 x 36.4 cm.
FILM_SIZES: dict[str, tuple[float, float]] = {
    "8INX10IN": (8 * MM_PER_INCH, 10 * MM_PER_INCH),
    "8_5INX11IN": (8.5 * MM_PER_INCH, 11 * MM_PER_INCH),
    "10INX12IN": (10 * MM_PER_INCH, 12 * MM_PER_INCH),
    "10INX14IN": (257.0, 364.0),
    "11INX14IN": (11 * MM_PER_INCH, 14 * MM_PER_INCH),
    "11INX17IN": (11 * MM_PER_INCH, 17 * MM_PER_INCH),
    "14INX14IN": (14 * MM_PER_INCH, 14 * MM_PER_INCH),
    "14INX17IN": (14 * MM_PER_INCH, 17 * MM_PER_INCH),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}

ORIENTATIONS = ("PORTRAIT", "LANDSCAPE")

#: Upper bound on image boxes per film: keeps a hostile format from allocating millions.
MAX_BOXES = 100

#: Margin inside each image box, so neighbouring images never touch (border density shows).
GUTTER_MM = 1.0


@dataclass(frozen=True)
class Rect:
    """A rectangle in millimetres, top-left origin."""

    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> tuple[float, float]:
        """The rectangle's centre ``(x, y)``."""
        return (self.x + self.width / 2, self.y + self.height / 2)


@dataclass(frozen=True)
class DisplayFormat:
    """A parsed Image Display Format (2010,0010).

    ``kind`` is ``STANDARD``, ``ROW`` or ``COL``; ``counts`` holds ``(C, R)`` for
    STANDARD, else the number of images in each row or column.
    """

    kind: str
    counts: tuple[int, ...]

    @property
    def box_count(self) -> int:
        """How many image boxes a film in this format has."""
        if self.kind == "STANDARD":
            return self.counts[0] * self.counts[1]
        return sum(self.counts)


def parse_display_format(value: str) -> DisplayFormat:
    """Parse ``STANDARD\\C,R``, ``ROW\\n1,n2,...`` or ``COL\\n1,n2,...``.

    Parameters
    ----------
    value : str
        The Image Display Format as received (backslash separates category and counts).

    Returns
    -------
    DisplayFormat
        The parsed format.

    Raises
    ------
    ValueError
        When the text is not one of the three supported formats or a count is not a
        positive number, or the film would hold more than :data:`MAX_BOXES` boxes.
    """
    kind, sep, rest = value.strip().upper().partition("\\")
    if not sep or kind not in ("STANDARD", "ROW", "COL"):
        raise ValueError(f"unsupported image display format {value!r}")
    try:
        counts = tuple(int(part) for part in rest.split(","))
    except ValueError:
        raise ValueError(f"image display format {value!r} has a non-numeric count") from None
    if any(n < 1 for n in counts) or (kind == "STANDARD" and len(counts) != 2):
        raise ValueError(f"invalid image display format {value!r}")
    fmt = DisplayFormat(kind, counts)
    if fmt.box_count > MAX_BOXES:
        raise ValueError(f"image display format {value!r} has more than {MAX_BOXES} boxes")
    return fmt


def film_dimensions(film_size_id: str, orientation: str) -> tuple[float, float]:
    """Return the film's ``(width, height)`` in mm for a Film Size ID and Film Orientation.

    Raises
    ------
    KeyError
        When the film size is not a defined term.
    """
    width, height = FILM_SIZES[film_size_id]
    if orientation == "LANDSCAPE":
        return (height, width)
    return (width, height)


def image_boxes(fmt: DisplayFormat, area: Rect) -> list[Rect]:
    """Return the image box rectangles of ``fmt`` inside ``area``, by Image Box Position.

    Position 1 is the first element. STANDARD and ROW number boxes left to right, top to
    bottom; COL numbers them top to bottom within a column, columns left to right
    (PS3.3 C.13.5.1).

    Parameters
    ----------
    fmt : DisplayFormat
        The film's display format.
    area : Rect
        The printable area of the film.

    Returns
    -------
    list of Rect
        One rectangle per image box.
    """
    boxes: list[Rect] = []
    if fmt.kind == "STANDARD":
        columns, rows = fmt.counts
        width, height = area.width / columns, area.height / rows
        for r in range(rows):
            for c in range(columns):
                boxes.append(Rect(area.x + c * width, area.y + r * height, width, height))
    elif fmt.kind == "ROW":
        height = area.height / len(fmt.counts)
        for r, n in enumerate(fmt.counts):
            width = area.width / n
            for c in range(n):
                boxes.append(Rect(area.x + c * width, area.y + r * height, width, height))
    else:
        width = area.width / len(fmt.counts)
        for c, n in enumerate(fmt.counts):
            height = area.height / n
            for r in range(n):
                boxes.append(Rect(area.x + c * width, area.y + r * height, width, height))
    return boxes


def fit_image(
    box: Rect,
    columns: int,
    rows: int,
    pixel_aspect: float = 1.0,
    requested_width_mm: float | None = None,
) -> tuple[Rect, bool]:
    """Place an image of ``columns`` x ``rows`` pixels in ``box``, centred.

    Parameters
    ----------
    box : Rect
        The image box.
    columns, rows : int
        The image size in pixels.
    pixel_aspect : float
        Pixel height divided by pixel width (Pixel Aspect Ratio).
    requested_width_mm : float, optional
        Requested Image Size (2020,0030): the printed width of the image in mm.
        Without it the image fills the box as far as its aspect ratio allows.

    Returns
    -------
    tuple of (Rect, bool)
        The image rectangle (it may extend beyond ``box`` when the requested size is
        larger) and whether it does extend beyond the box.
    """
    natural_height = rows * pixel_aspect
    if requested_width_mm is not None and requested_width_mm > 0:
        width = requested_width_mm
        height = width * natural_height / columns
    else:
        scale = min(box.width / columns, box.height / natural_height)
        width, height = columns * scale, natural_height * scale
    cx, cy = box.center
    rect = Rect(cx - width / 2, cy - height / 2, width, height)
    too_large = width > box.width + 1e-6 or height > box.height + 1e-6
    return rect, too_large


def shrink_to(rect: Rect, box: Rect) -> Rect:
    """Scale ``rect`` down about its centre so that it fits in ``box`` (aspect kept)."""
    scale = min(1.0, box.width / rect.width, box.height / rect.height)
    width, height = rect.width * scale, rect.height * scale
    cx, cy = box.center
    return Rect(cx - width / 2, cy - height / 2, width, height)


def inset(box: Rect, margin: float = GUTTER_MM) -> Rect:
    """The part of an image box an image may cover: ``box`` less ``margin`` on every side."""
    margin = min(margin, box.width / 4, box.height / 4)
    return Rect(box.x + margin, box.y + margin, box.width - 2 * margin, box.height - 2 * margin)
