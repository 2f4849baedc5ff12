"""Printer profiles: each AE title a virtual printer with its own outputs and limits.

Profiles come from ``[printers.<AE>]`` tables of the configuration file. The default
printer (``settings.printer_ae_title``, ``PDFPRINT`` unless configured) always exists
and prints PDF only, so the service prints with no set-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clinic.config import ArchiveTarget, ConfigError, Settings, parse_archive
from clinic.domain import vr
from clinic.printing.layout import FILM_SIZES

DISPLAY_FORMATS = ("STANDARD", "ROW", "COL")
MAGNIFICATIONS = ("REPLICATE", "BILINEAR", "CUBIC", "NONE")
MEDIUM_TYPES = ("PAPER", "CLEAR FILM", "BLUE FILM", "MAMMO CLEAR FILM", "MAMMO BLUE FILM")
FIT_MODES = ("scale", "true")
#: What a job can be archived as: its PDF (Encapsulated PDF), each film (Secondary Capture).
ARCHIVE_FORMS = ("pdf", "sc")


@dataclass(frozen=True)
class PrinterProfile:
    """One virtual printer.

    Attributes
    ----------
    ae_title : str
        The AE title modalities call to print here.
    name : str
        Printer Name returned by N-GET Printer.
    pdf_dir : Path
        Folder receiving one PDF per job.
    cups_queue : str
        CUPS queue the PDF is sent to with ``lp``; empty: PDF only.
    cups_server : str
        CUPS server (``lp -h``); empty: the system default.
    paper : dict
        Film Size ID -> Film Size ID of the paper really loaded (e.g. ``14INX17IN`` -> ``A4``).
    fit : str
        ``scale`` shrinks a film onto smaller paper; ``true`` keeps millimetres (crops).
    film_sizes, display_formats : tuple of str
        What the printer accepts.
    default_film_size, default_magnification, default_medium : str
        Values used when the modality leaves them out.
    max_rows, max_columns : int
        Largest image accepted; larger images are refused before decoding.
    max_copies : int
        Largest Number of Copies accepted.
    max_density : int
        The printer's black, in hundredths of optical density.
    allowed_calling_ae_titles : tuple of str
        Modalities allowed to print; empty allows every one.
    header : bool
        Print a header line (printer, date, calling AE title) above each film.
    resolution_dpi : int
        Printer resolution used for Magnification Type NONE and for interpolation.
    hold_seconds : float
        How long a job waits in the queue before it prints (0: at once).
    hold : bool
        Keep every job at the front desk until someone releases (or discards) it.
    archive : ArchiveTarget or None
        Storage SCP that receives every printed job, filed under its booking.
    archive_as : tuple of str
        ``pdf`` (the job's PDF as Encapsulated PDF) and/or ``sc`` (each film as a
        Secondary Capture image).
    archive_retry_max_seconds : float
        Longest wait between two attempts while the archive cannot be reached.
    """

    ae_title: str
    name: str
    pdf_dir: Path
    cups_queue: str = ""
    cups_server: str = ""
    paper: dict[str, str] = field(default_factory=dict)
    fit: str = "scale"
    film_sizes: tuple[str, ...] = tuple(FILM_SIZES)
    display_formats: tuple[str, ...] = DISPLAY_FORMATS
    default_film_size: str = "A4"
    default_magnification: str = "REPLICATE"
    default_medium: str = "PAPER"
    max_rows: int = 8192
    max_columns: int = 8192
    max_copies: int = 99
    max_density: int = 300
    allowed_calling_ae_titles: tuple[str, ...] = ()
    header: bool = True
    resolution_dpi: int = 300
    hold_seconds: float = 0.0
    hold: bool = False
    archive: ArchiveTarget | None = None
    archive_as: tuple[str, ...] = ("pdf",)
    archive_retry_max_seconds: float = 300.0

    def allows(self, calling_ae_title: str) -> bool:
        """Whether ``calling_ae_title`` may print on this printer."""
        return not self.allowed_calling_ae_titles or (
            calling_ae_title.strip() in self.allowed_calling_ae_titles
        )


def default_profile(settings: Settings) -> PrinterProfile:
    """The built-in PDF printer named by ``settings.printer_ae_title``."""
    return PrinterProfile(
        ae_title=settings.printer_ae_title,
        name=settings.printer_ae_title,
        pdf_dir=(settings.data_dir / "pdf").resolve(),
        archive=parse_archive(settings.print_archive, "[print] archive"),
    )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(v.strip().upper() for v in value)


def _number(value: Any, where: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"{where} must be a number >= {minimum}")
    return float(value)


def _profile(ae_title: str, table: dict[str, Any], base: PrinterProfile) -> PrinterProfile:
    where = f"[printers.{ae_title}]"
    problem = vr.check_ae(ae_title)
    if problem:
        raise ConfigError(f"{where}: AE title {ae_title!r} {problem}")
    changes: dict[str, Any] = {"ae_title": ae_title, "name": ae_title}
    for key, value in table.items():
        at = f"{where} {key}"
        if key in ("name", "cups_queue", "cups_server"):
            if not isinstance(value, str):
                raise ConfigError(f"{at} must be text")
            changes[key] = value.strip()
        elif key == "pdf_dir":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{at} must be a folder name")
            changes[key] = Path(value).resolve()
        elif key == "paper":
            if not isinstance(value, dict):
                raise ConfigError(f"{at} must be a table of film size = paper size")
            paper = {str(k).upper(): str(v).upper() for k, v in value.items()}
            bad = [s for s in (*paper, *paper.values()) if s not in FILM_SIZES]
            if bad:
                raise ConfigError(f"{at}: unknown film size {bad[0]!r}")
            changes[key] = paper
        elif key == "fit":
            if value not in FIT_MODES:
                raise ConfigError(f"{at} must be one of {', '.join(FIT_MODES)}")
            changes[key] = value
        elif key == "film_sizes":
            sizes = _strings(value, at)
            bad = [s for s in sizes if s not in FILM_SIZES]
            if bad or not sizes:
                raise ConfigError(f"{at}: unknown film size {bad[0] if bad else '(none)'!r}")
            changes[key] = sizes
        elif key == "display_formats":
            formats = _strings(value, at)
            if not formats or any(f not in DISPLAY_FORMATS for f in formats):
                raise ConfigError(f"{at}: each must be one of {', '.join(DISPLAY_FORMATS)}")
            changes[key] = formats
        elif key == "allowed_calling_ae_titles":
            changes[key] = _strings(value, at)
        elif key in ("default_film_size", "default_magnification", "default_medium"):
            allowed = {
                "default_film_size": tuple(FILM_SIZES),
                "default_magnification": MAGNIFICATIONS,
                "default_medium": MEDIUM_TYPES,
            }[key]
            if not isinstance(value, str) or value.upper() not in allowed:
                raise ConfigError(f"{at} must be one of {', '.join(allowed)}")
            changes[key] = value.upper()
        elif key in ("max_rows", "max_columns", "max_copies", "max_density", "resolution_dpi"):
            changes[key] = int(_number(value, at, 1))
        elif key in ("hold_seconds", "archive_retry_max_seconds"):
            changes[key] = _number(value, at, 0 if key == "hold_seconds" else 1)
        elif key == "archive":
            if not isinstance(value, str):
                raise ConfigError(f"{at} must be text: AE@host:port")
            changes[key] = parse_archive(value, at)
        elif key == "archive_as":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{at} must be a list of strings")
            forms = tuple(dict.fromkeys(v.strip().lower() for v in value))
            if not forms or any(f not in ARCHIVE_FORMS for f in forms):
                raise ConfigError(f"{at}: each must be one of {', '.join(ARCHIVE_FORMS)}")
            changes[key] = forms
        elif key in ("header", "hold"):
            if not isinstance(value, bool):
                raise ConfigError(f"{at} must be true or false")
            changes[key] = value
        else:
            raise ConfigError(f"{at}: unknown setting")
    profile = replace(base, **changes)
    if profile.default_film_size not in profile.film_sizes:
        raise ConfigError(f"{where}: default_film_size is not among film_sizes")
    return profile


def load_profiles(settings: Settings) -> dict[str, PrinterProfile]:
    """Build every printer profile from the settings.

    Parameters
    ----------
    settings : Settings
        ``settings.printers`` holds the ``[printers.<AE>]`` tables.

    Returns
    -------
    dict
        AE title -> profile; always holds the default printer.

    Raises
    ------
    ConfigError
        When a table has an unknown key or an invalid value.
    """
    base = default_profile(settings)
    profiles = {base.ae_title: base}
    for ae_title, table in settings.printers.items():
        if not isinstance(table, dict):
            raise ConfigError(f"[printers.{ae_title}] must be a table")
        profile = _profile(ae_title.strip(), table, base)
        profiles[profile.ae_title] = profile
    return profiles
