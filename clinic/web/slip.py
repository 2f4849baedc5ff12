"""The appointment slip: a half-A4 PDF with the accession number as a Code 128 barcode."""

from __future__ import annotations

import io
from pathlib import Path

from reportlab.graphics.barcode import code128
from reportlab.lib.pagesizes import A5, landscape
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from clinic.store.models import Procedure, Station
from clinic.web.display import readable_name

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_fonts: tuple[str, str] | None = None


def slip_fonts() -> tuple[str, str]:
    """Return (regular, bold) font names: DejaVu Sans when installed (every script prints),
    else Helvetica (Latin-1 only)."""
    global _fonts
    if _fonts is None:
        regular, bold = _DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"
        try:
            pdfmetrics.registerFont(TTFont("SlipSans", str(regular)))
            pdfmetrics.registerFont(TTFont("SlipSans-Bold", str(bold)))
            _fonts = ("SlipSans", "SlipSans-Bold")
        except Exception:  # no such font file, or an unreadable one
            _fonts = ("Helvetica", "Helvetica-Bold")
    return _fonts


def appointment_slip(proc: Procedure, station: Station | None = None) -> bytes:
    """Render the slip for one booking.

    Parameters
    ----------
    proc : Procedure
        The booking (its patient loaded).
    station : Station, optional
        The station, for its name and location.

    Returns
    -------
    bytes
        The PDF.
    """
    regular, bold = slip_fonts()
    buffer = io.BytesIO()
    width, height = landscape(A5)
    pdf = canvas.Canvas(buffer, pagesize=(width, height))
    pdf.setTitle(f"Appointment {proc.accession_number}")
    x = 15 * mm
    y = height - 20 * mm
    pdf.setFont(bold, 18)
    pdf.drawString(x, y, "Appointment")
    y -= 12 * mm
    patient = proc.patient
    birth = patient.birth_date.strftime("%d.%m.%Y") if patient.birth_date else ""
    where = proc.station_ae_title
    if station is not None:
        extra = ", ".join(v for v in (station.name, station.location) if v)
        if extra:
            where = f"{extra} ({station.ae_title})"
    rows = [
        ("Patient", readable_name(patient.name)),
        ("Date of birth", birth),
        ("Patient ID", patient.patient_id),
        ("Exam", proc.procedure_description or proc.modality),
        ("When", proc.scheduled_start.strftime("%A %d %B %Y, %H:%M")),
        ("Where", where),
        ("Referred by", readable_name(proc.referring_physician)),
    ]
    for label, value in rows:
        pdf.setFont(regular, 10)
        pdf.drawString(x, y, label)
        pdf.setFont(bold, 12)
        pdf.drawString(x + 35 * mm, y, value)
        y -= 8 * mm
    barcode = code128.Code128(proc.accession_number, barHeight=14 * mm, barWidth=0.35 * mm)
    barcode.drawOn(pdf, x - 5 * mm, 14 * mm)
    pdf.setFont("Courier", 11)
    pdf.drawString(x, 9 * mm, f"Accession number {proc.accession_number}")
    pdf.setFont(regular, 9)
    pdf.drawRightString(width - 15 * mm, 9 * mm, "Please bring this slip with you.")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
