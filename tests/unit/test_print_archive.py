"""Archive settings and the instances of a print job (no network: clinic.printing.archive)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from reportlab.pdfgen.canvas import Canvas

from clinic.config import ArchiveTarget, ConfigError, Settings, load_settings, parse_archive
from clinic.printing.archive import (
    ArchiveError,
    Filing,
    JobInfo,
    build_instances,
    film_pixels,
    instance_uid,
)
from clinic.printing.profiles import load_profiles
from clinic.printing.render import FilmSpec, ImageSpec

FILING = Filing("P1", "DOE^JANE", dt.date(1980, 1, 2), "F", "ACC1", "1.2.3.4", study_id="RP1")
JOB = JobInfo("1.2.3.9", 7, "PANO1", "PDFPRINT", "PDFPRINT", dt.datetime(2026, 11, 26, 9, 30))


def write_empty(folder: Path) -> Path:
    path = folder / "clinic.toml"
    path.write_text("", encoding="utf-8")
    return path


def test_archive_setting_parses() -> None:
    assert parse_archive("", "x") is None
    assert parse_archive(" PACS@10.0.0.5:104 ", "x") == ArchiveTarget("PACS", "10.0.0.5", 104)
    assert parse_archive("PACS@[::1]:11112", "x") == ArchiveTarget("PACS", "::1", 11112)
    assert str(ArchiveTarget("PACS", "pacs.local", 104)) == "PACS@pacs.local:104"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("PACS", "AE@host:port"),
        ("PACS@host", "AE@host:port"),
        ("@host:104", "AE title"),
        ("A" * 17 + "@host:104", "AE title"),
        ("PACS@host:0", "port"),
        ("PACS@host:x", "port"),
    ],
)
def test_bad_archive_stops_the_start_naming_the_setting(
    tmp_path: Path, value: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=f"^CLINIC_PRINT_ARCHIVE: .*{words}"):
        load_settings(write_empty(tmp_path), environ={"CLINIC_PRINT_ARCHIVE": value})
    with pytest.raises(ConfigError, match=rf"\[printers.P1\] archive: .*{words}"):
        load_profiles(Settings(printers={"P1": {"archive": value}}))


def test_profiles_archive_and_hold(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        print_archive="PACS@127.0.0.1:104",
        printers={
            "PANO": {"archive": "OTHER@pacs:11112", "archive_as": ["SC", "pdf"], "hold": True},
            "PLAIN": {"archive": ""},
        },
    )
    profiles = load_profiles(settings)
    assert profiles["PDFPRINT"].archive == ArchiveTarget("PACS", "127.0.0.1", 104)
    assert profiles["PDFPRINT"].archive_as == ("pdf",) and not profiles["PDFPRINT"].hold
    pano = profiles["PANO"]
    assert pano.archive == ArchiveTarget("OTHER", "pacs", 11112)
    assert pano.archive_as == ("sc", "pdf") and pano.hold
    assert profiles["PLAIN"].archive is None
    for table, words in (
        ({"archive_as": ["tiff"]}, "one of pdf, sc"),
        ({"archive_as": []}, "one of pdf, sc"),
        ({"archive_as": "pdf"}, "list of strings"),
        ({"hold": "yes"}, "true or false"),
        ({"archive": 104}, "AE@host:port"),
        ({"archive_retry_max_seconds": 0}, ">= 1"),
    ):
        with pytest.raises(ConfigError, match=words):
            load_profiles(Settings(printers={"P1": table}))


def test_uids_repeat_for_a_retry_and_change_for_a_correction() -> None:
    first = instance_uid("1.2.826.0.1", JOB, "pdf")
    assert first == instance_uid("1.2.826.0.1", JOB, "pdf")
    assert first.startswith("1.2.826.0.1.") and len(first) <= 64
    assert first != instance_uid("1.2.826.0.1", JOB, "sc1")
    correction = JobInfo(**{**JOB.__dict__, "generation": 1})
    assert first != instance_uid("1.2.826.0.1", correction, "pdf")
    assert instance_uid("", JOB, "pdf").startswith("2.25.")


def film(images: list[ImageSpec], display: str = "STANDARD\\2,1") -> FilmSpec:
    return FilmSpec(display, film_size="8INX10IN", images=images)


def test_film_pixels_places_images_in_their_boxes() -> None:
    dark = ImageSpec(1, np.full((100, 80), 20, np.uint8))
    light = ImageSpec(2, np.full((100, 80), 230, np.uint8))
    pixels = film_pixels(film([light, dark]), 300)
    rows, columns = pixels.shape
    assert pixels.dtype == np.uint8 and rows > columns  # portrait 8x10 inches
    assert 8 * 25.4 * 4 <= columns <= 8 * 25.4 * 12
    left, right = pixels[rows // 2, columns // 4], pixels[rows // 2, 3 * columns // 4]
    assert left < 60 and right > 200  # position 1 (dark) on the left, whatever the arrival order
    # An empty box shows the empty-image density (white paper by default).
    alone = film_pixels(film([ImageSpec(1, np.zeros((100, 80), np.uint8))]), 300)
    assert alone[alone.shape[0] // 2, 3 * alone.shape[1] // 4] == 255


def test_colour_film_is_rgb() -> None:
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 0] = 200
    pixels = film_pixels(film([ImageSpec(1, rgb, photometric="RGB")], "STANDARD\\1,1"), 300)
    assert pixels.ndim == 3 and pixels.shape[2] == 3
    centre = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    assert centre[0] == 200 and centre[1] == 0


def test_instances_carry_the_booking(tmp_path: Path) -> None:
    pdf = tmp_path / "job.pdf"
    canvas = Canvas(str(pdf))
    canvas.drawString(100, 100, "film")
    canvas.save()
    films = [film([ImageSpec(1, np.full((30, 30), 99, np.uint8))])] * 2
    datasets, series = build_instances(FILING, JOB, "1.2.3", ["pdf", "sc"], pdf, films)
    assert [ds.SOPClassUID.name for ds in datasets] == [
        "Encapsulated PDF Storage",
        "Secondary Capture Image Storage",
        "Secondary Capture Image Storage",
    ]
    for ds in datasets:
        assert (ds.PatientID, ds.AccessionNumber, ds.StudyInstanceUID) == ("P1", "ACC1", "1.2.3.4")
        assert ds.PatientBirthDate == "19800102" and ds.StudyID == "RP1"
    assert datasets[0].SeriesInstanceUID == series["pdf"] != series["sc"]
    assert len(datasets[0].EncapsulatedDocument) % 2 == 0
    assert datasets[0].EncapsulatedDocumentLength == pdf.stat().st_size
    with pytest.raises(ArchiveError) as info:
        build_instances(FILING, JOB, "", ["pdf"], tmp_path / "gone.pdf")
    assert not info.value.transient
    with pytest.raises(ArchiveError):
        build_instances(FILING, JOB, "", ["sc"], pdf, [])
