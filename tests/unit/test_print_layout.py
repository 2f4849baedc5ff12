"""Film geometry: every Film Size ID, both orientations, every display format."""

from __future__ import annotations

import pytest

from clinic.printing.layout import (
    FILM_SIZES,
    GUTTER_MM,
    Rect,
    film_dimensions,
    fit_image,
    image_boxes,
    inset,
    parse_display_format,
    shrink_to,
)

# PS3.3 Table C.13-3 Film Size ID defined terms, in mm (portrait width x height); its note:
# 10INX14IN corresponds with 25.7CMX36.4CM, A4 with 210 x 297 mm, A3 with 297 x 420 mm.
STANDARD_SIZES = {
    "8INX10IN": (203.2, 254.0),
    "8_5INX11IN": (215.9, 279.4),
    "10INX12IN": (254.0, 304.8),
    "10INX14IN": (257.0, 364.0),
    "11INX14IN": (279.4, 355.6),
    "11INX17IN": (279.4, 431.8),
    "14INX14IN": (355.6, 355.6),
    "14INX17IN": (355.6, 431.8),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}

AREA = Rect(0, 0, 300, 200)


def test_every_film_size_of_the_standard() -> None:
    assert set(FILM_SIZES) == set(STANDARD_SIZES)
    for size, (width, height) in STANDARD_SIZES.items():
        assert film_dimensions(size, "PORTRAIT") == pytest.approx((width, height))
        assert film_dimensions(size, "LANDSCAPE") == pytest.approx((height, width))


def test_standard_format_is_row_major() -> None:
    boxes = image_boxes(parse_display_format("STANDARD\\3,2"), AREA)
    assert len(boxes) == 6
    assert boxes[0] == Rect(0, 0, 100, 100)
    assert boxes[2] == Rect(200, 0, 100, 100)  # third box: top right
    assert boxes[3] == Rect(0, 100, 100, 100)  # fourth box: second row, left


def test_row_format_has_its_own_count_per_row() -> None:
    boxes = image_boxes(parse_display_format("ROW\\1,3"), AREA)
    assert boxes[0] == Rect(0, 0, 300, 100)
    assert [b.x for b in boxes[1:]] == pytest.approx([0, 100, 200])
    assert all(b.y == 100 and b.width == pytest.approx(100) for b in boxes[1:])


def test_col_format_numbers_top_to_bottom_then_left_to_right() -> None:
    boxes = image_boxes(parse_display_format("COL\\2,1"), AREA)
    assert boxes[0] == Rect(0, 0, 150, 100)
    assert boxes[1] == Rect(0, 100, 150, 100)
    assert boxes[2] == Rect(150, 0, 150, 200)


@pytest.mark.parametrize("orientation", ["PORTRAIT", "LANDSCAPE"])
@pytest.mark.parametrize(
    "display", ["STANDARD\\1,1", "STANDARD\\2,3", "STANDARD\\4,5", "ROW\\2,1,4", "COL\\3,1,2"]
)
@pytest.mark.parametrize("size", sorted(STANDARD_SIZES))
def test_boxes_tile_the_film_exactly(size: str, display: str, orientation: str) -> None:
    width, height = film_dimensions(size, orientation)
    area = Rect(0, 0, width, height)
    fmt = parse_display_format(display)
    boxes = image_boxes(fmt, area)
    assert len(boxes) == fmt.box_count
    assert sum(b.width * b.height for b in boxes) == pytest.approx(width * height)
    for box in boxes:
        assert box.x >= 0 and box.x + box.width <= width + 1e-9
        assert box.y >= 0 and box.y + box.height <= height + 1e-9
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap_w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
            overlap_h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
            assert overlap_w <= 1e-9 or overlap_h <= 1e-9


@pytest.mark.parametrize(
    "bad", ["", "STANDARD", "STANDARD\\2", "STANDARD\\0,1", "ROW\\", "COL\\x", "SLIDE", "ROW\\-1"]
)
def test_invalid_formats(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_display_format(bad)


def test_too_many_boxes_refused() -> None:
    with pytest.raises(ValueError):
        parse_display_format("STANDARD\\11,10")


def test_fit_keeps_aspect_and_centres() -> None:
    rect, too_large = fit_image(Rect(0, 0, 100, 100), columns=200, rows=100)
    assert rect == Rect(0, 25, 100, 50) and not too_large


def test_requested_size_is_true_size_in_mm() -> None:
    rect, too_large = fit_image(Rect(0, 0, 100, 100), 400, 200, requested_width_mm=40)
    assert (rect.width, rect.height) == pytest.approx((40, 20)) and not too_large
    rect, too_large = fit_image(Rect(0, 0, 100, 100), 400, 200, requested_width_mm=150)
    assert too_large
    assert shrink_to(rect, Rect(0, 0, 100, 100)).width == pytest.approx(100)


def test_pixel_aspect_ratio_stretches_height() -> None:
    rect, _ = fit_image(Rect(0, 0, 100, 100), 100, 50, pixel_aspect=2.0)
    assert (rect.width, rect.height) == pytest.approx((100, 100))


def test_inset_keeps_neighbouring_images_apart() -> None:
    left, right = image_boxes(parse_display_format("STANDARD\\2,1"), Rect(0, 0, 200, 100))
    a, b = inset(left), inset(right)
    assert b.x - (a.x + a.width) == pytest.approx(2 * GUTTER_MM)
    assert a.center == left.center
    tiny = inset(Rect(0, 0, 2, 2))
    assert tiny.width > 0 and tiny.height > 0
