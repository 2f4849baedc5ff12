"""The gray mapping: stored pixels -> P-values -> densities -> page gray."""

from __future__ import annotations

import numpy as np
import pytest

from clinic.printing.render import (
    FilmSpec,
    ImageSpec,
    LutSpec,
    density_to_gray,
    gray_levels,
    image_to_pil,
    named_density,
    p_values,
)


def image(values: list[int], **kw: object) -> ImageSpec:
    dtype = np.uint16 if kw.get("bits_stored") == 12 else np.uint8
    return ImageSpec(position=1, pixels=np.array([values], dtype=dtype), **kw)  # type: ignore[arg-type]


def test_density_scale_ends() -> None:
    assert float(density_to_gray(0, 300)) == pytest.approx(255)
    assert float(density_to_gray(300, 300)) == pytest.approx(0)
    assert float(density_to_gray(900, 300)) == pytest.approx(0)  # clamped to the printer's black
    grays = density_to_gray(np.arange(0, 301, 10), 300)
    assert np.all(np.diff(grays) < 0)  # more density, darker


def test_named_densities() -> None:
    assert named_density("BLACK", 300) == 300
    assert named_density("WHITE", 300) == 0
    assert named_density("150", 300) == 150


def test_p_values_8_and_12_bit() -> None:
    assert p_values(image([0, 255])).ravel() == pytest.approx([0, 1])
    assert p_values(image([0, 4095, 2048], bits_stored=12)).ravel() == pytest.approx(
        [0, 1, 2048 / 4095]
    )
    # Bits above Bits Stored are ignored (12 in 16).
    assert p_values(image([0xF000 | 4095], bits_stored=12)).ravel() == pytest.approx([1])


def test_monochrome1_and_reverse_invert() -> None:
    assert p_values(image([0, 255], photometric="MONOCHROME1")).ravel() == pytest.approx([1, 0])
    assert p_values(image([0, 255], polarity="REVERSE")).ravel() == pytest.approx([1, 0])
    both = image([0, 255], photometric="MONOCHROME1", polarity="REVERSE")
    assert p_values(both).ravel() == pytest.approx([0, 1])


def test_identity_maps_p_linearly_between_max_and_min_density() -> None:
    p = np.array([0.0, 0.5, 1.0])
    assert list(gray_levels(p, 0, 300, 300)) == pytest.approx([0, 128, 255], abs=1)
    narrowed = gray_levels(p, 50, 200, 300)
    white, black = float(density_to_gray(50, 300)), float(density_to_gray(200, 300))
    assert list(narrowed) == pytest.approx([black, (white + black) / 2, white], abs=1)


def test_lin_od_is_linear_in_density() -> None:
    p = np.array([0.0, 0.5, 1.0])
    grays = gray_levels(p, 0, 300, 300, shape="LIN OD")
    assert grays[0] == 0 and grays[2] == 255
    assert grays[1] == round(float(density_to_gray(150, 300)))
    assert grays[1] < 60  # 1.5 OD reflects about 3 % of the light


def test_explicit_presentation_lut_table() -> None:
    lut = LutSpec(shape="IDENTITY", first_mapped=0, bits=8, table=[255, 0])
    spec = image([0, 1], lut=lut)
    assert p_values(spec).ravel() == pytest.approx([1, 0])


def test_image_to_pil_uses_film_densities_and_colour_passes_through() -> None:
    film = FilmSpec(display_format="STANDARD\\1,1", min_density=0, max_density=300)
    gray = image_to_pil(image([0, 255]), film, 300)
    assert gray.mode == "L" and [gray.getpixel((0, 0)), gray.getpixel((1, 0))] == [0, 255]
    rgb = ImageSpec(
        position=1, pixels=np.array([[[10, 20, 30]]], dtype=np.uint8), photometric="RGB"
    )
    assert image_to_pil(rgb, film, 300).getpixel((0, 0)) == (10, 20, 30)
    rgb.polarity = "REVERSE"
    assert image_to_pil(rgb, film, 300).getpixel((0, 0)) == (245, 235, 225)
