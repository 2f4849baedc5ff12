"""Rendering a large film is bounded: converted a band of rows at a time, reduced to what
the page prints, never a full-size float copy of the image."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from clinic.printing import render
from clinic.printing.layout import Rect
from clinic.printing.render import FilmSpec, ImageSpec, image_to_pil, reduction_for

PEAK_SCRIPT = textwrap.dedent(
    """
    import pathlib, resource, sys, tempfile
    import numpy as np
    from clinic.printing.render import FilmSpec, ImageSpec, PageOptions, render_pdf

    rows, cols = 8192, 8192
    px = np.empty((rows, cols), dtype=np.uint16)
    for r in range(rows):
        px[r] = (np.arange(cols) + r) % 4096
    base = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
    film = FilmSpec(
        display_format="STANDARD\\\\1,1",
        film_size="14INX17IN",
        orientation="PORTRAIT",
        images=[ImageSpec(position=1, pixels=px, bits_stored=12)],
    )
    out = pathlib.Path(tempfile.mkdtemp()) / "film.pdf"
    render_pdf([film], out, PageOptions())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((peak - base) // 1024)
    """
)


def test_an_8192_square_12_bit_image_renders_within_a_small_multiple_of_its_size() -> None:
    # The image holds 128 MiB; converting it whole in float64 took +2 GiB.
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    above_input_mib = int(done.stdout.strip().splitlines()[-1])
    assert above_input_mib < 512, above_input_mib


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_bands_give_the_same_gray_as_one_pass(
    monkeypatch: pytest.MonkeyPatch, photometric: str
) -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 4096, size=(37, 53), dtype=np.uint16)
    image = ImageSpec(position=1, pixels=pixels, bits_stored=12, photometric=photometric)
    film = FilmSpec(display_format="STANDARD\\1,1", images=[image])
    whole = np.asarray(image_to_pil(image, film, 330))
    monkeypatch.setattr(render, "TILE_PIXELS", 53 * 4)  # four rows a band
    banded = np.asarray(image_to_pil(image, film, 330))
    assert np.array_equal(whole, banded)


def test_an_image_far_finer_than_the_page_is_reduced() -> None:
    box = Rect(0, 0, 100, 100)  # 100 mm at 300 dpi: about 1181 pixels needed
    assert reduction_for(1000, 1000, box, 300) == 1
    assert reduction_for(2400, 2400, box, 300) == 1  # up to twice the need is kept
    assert reduction_for(8192, 8192, box, 300) == 3
    image = ImageSpec(position=1, pixels=np.zeros((90, 60), dtype=np.uint8))
    film = FilmSpec(display_format="STANDARD\\1,1", images=[image])
    assert image_to_pil(image, film, 330, reduce_to=3).size == (20, 30)
