"""Printer profiles from [printers.<AE>] tables; the commented example in clinic.toml is valid."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from clinic.config import ConfigError, Settings
from clinic.printing.layout import FILM_SIZES
from clinic.printing.profiles import load_profiles

ROOT = Path(__file__).resolve().parents[2]


def test_default_profile_is_pdf_only(tmp_path: Path) -> None:
    profiles = load_profiles(Settings(data_dir=tmp_path))
    (profile,) = profiles.values()
    assert profile.ae_title == "PDFPRINT" and not profile.cups_queue
    assert profile.pdf_dir == (tmp_path / "pdf").resolve()
    assert set(profile.film_sizes) == set(FILM_SIZES)
    renamed = load_profiles(Settings(data_dir=tmp_path, printer_ae_title="FILMS"))
    assert list(renamed) == ["FILMS"]


def test_commented_example_in_clinic_toml_loads() -> None:
    text = (ROOT / "config" / "clinic.toml").read_text(encoding="utf-8")
    start = text.index("# [printers.DENTALPRN]")
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("#"):
            break
        lines.append(re.sub(r"^# ?", "", line))
    example = tomllib.loads("\n".join(lines))
    profiles = load_profiles(Settings(printers=example["printers"]))
    dental = profiles["DENTALPRN"]
    assert dental.cups_queue == "Office_Laser" and dental.paper == {"14INX17IN": "A4"}
    assert "PDFPRINT" in profiles


def test_readme_example_loads() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```toml\n[printers.DENTALPRN]", 1)[1].split("```", 1)[0]
    example = tomllib.loads("[printers.DENTALPRN]" + block)
    dental = load_profiles(Settings(printers=example["printers"]))["DENTALPRN"]
    assert dental.fit == "true" and dental.allows("PANO1") and not dental.allows("CT1")


@pytest.mark.parametrize(
    "table",
    [
        {"colour": True},
        {"film_sizes": ["15INX15IN"]},
        {"paper": {"14INX17IN": "LETTER"}},
        {"fit": "stretch"},
        {"max_rows": 0},
        {"header": "yes"},
        {"default_film_size": "A3", "film_sizes": ["A4"]},
        {"hold_seconds": -1},
    ],
)
def test_invalid_profiles_are_configuration_errors(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"\[printers\.P1\]"):
        load_profiles(Settings(printers={"P1": table}))


def test_invalid_ae_title() -> None:
    with pytest.raises(ConfigError):
        load_profiles(Settings(printers={"A" * 17: {}}))
