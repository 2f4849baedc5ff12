"""Where a rendered job goes: the printer's PDF folder, and a CUPS queue through ``lp``."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from clinic.printing.profiles import PrinterProfile

log = logging.getLogger(__name__)

LP_TIMEOUT_S = 60


class OutputError(Exception):
    """Dispatching a job failed; the message is recorded as the job's failure reason."""


def pdf_target(profile: PrinterProfile, job_id: int, stem: str = "") -> Path:
    """The absolute path of a job's PDF in the printer's PDF folder (server-made name).

    ``stem`` (from :func:`clinic.domain.print_links.pdf_stem`, already file-name safe) replaces
    the plain ``job-NNNNNN`` name of an unlinked job.
    """
    return (profile.pdf_dir / f"{stem or f'job-{job_id:06d}'}.pdf").resolve()


def _lp_base(profile: PrinterProfile) -> list[str]:
    return ["-h", profile.cups_server] if profile.cups_server else []


def send_to_cups(profile: PrinterProfile, pdf: Path, copies: int, title: str) -> str:
    """Queue ``pdf`` on the profile's CUPS queue with ``lp -d QUEUE -n COPIES``.

    Parameters
    ----------
    profile : PrinterProfile
        Names the queue (and the CUPS server, if not the default).
    pdf : Path
        The rendered job.
    copies : int
        Number of Copies of the film session; CUPS makes the copies.
    title : str
        The CUPS job title (never patient data).

    Returns
    -------
    str
        What ``lp`` reported (``request id is QUEUE-N ...``).

    Raises
    ------
    OutputError
        When ``lp`` is missing, times out or refuses the job.
    """
    command = [
        "lp",
        *_lp_base(profile),
        "-d",
        profile.cups_queue,
        "-n",
        str(copies),
        "-t",
        title,
        "--",
        str(pdf),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=LP_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise OutputError("lp is not installed (Debian package cups-client)") from None
    except subprocess.TimeoutExpired:
        raise OutputError(f"lp did not answer within {LP_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise OutputError(f"lp failed: {(done.stderr or done.stdout).strip()[:500]}")
    return done.stdout.strip()


def queue_state(profile: PrinterProfile) -> tuple[str, str]:
    """Printer Status and Printer Status Info for N-GET Printer.

    Returns
    -------
    tuple of str
        ``("NORMAL", "NORMAL")`` for a PDF-only printer or an idle/printing CUPS queue;
        ``("FAILURE", "OFFLINE")`` when CUPS cannot be asked or the queue is unknown;
        ``("WARNING", "...")`` when the queue is disabled.
    """
    if not profile.cups_queue:
        return ("NORMAL", "NORMAL")
    try:
        done = subprocess.run(
            ["lpstat", *_lp_base(profile), "-p", profile.cups_queue],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return ("FAILURE", "OFFLINE")
    if done.returncode != 0:
        return ("FAILURE", "OFFLINE")
    if "disabled" in done.stdout:
        return ("WARNING", "OFFLINE")
    return ("NORMAL", "NORMAL")
