"""The appointment slip: a half-A4 PDF with the accession number as a Code 128 barcode."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from flask_babel import gettext as _
from reportlab.graphics.barcode import code128
from reportlab.lib.pagesizes import A5, landscape
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from clinic.config import Settings
from clinic.store.models import Procedure, Station
from clinic.web.display import readable_name
from clinic.web.i18n import format_clock, format_day, format_long_day

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


@dataclass(frozen=True)
class ClinicHeader:
    """The clinic as printed at the top of slips and day lists ([clinic] settings)."""

    name: str = ""
    address: str = ""
    phone: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> ClinicHeader:
        """The header from the ``[clinic]`` settings."""
        return cls(settings.clinic_name, settings.clinic_address, settings.clinic_phone)

    def lines(self) -> list[str]:
        """Name, address lines and phone, the empty ones left out."""
        out = [self.name] if self.name else []
        out += [line.strip() for line in self.address.splitlines() if line.strip()]
        if self.phone:
            out.append(_("Phone %(phone)s", phone=self.phone))
        return out


def appointment_slip(
    proc: Procedure,
    station: Station | None = None,
    *,
    clinic: ClinicHeader | None = None,
    preparation: str = "",
) -> bytes:
    """Render the slip for one booking, in the current request's language.

    Parameters
    ----------
    proc : Procedure
        The booking (its patient loaded).
    station : Station, optional
        The station, for its name and location.
    clinic : ClinicHeader, optional
        The clinic's name, address and phone, printed at the top.
    preparation : str
        What the patient is to do before the exam (from the procedure catalog).

    Returns
    -------
    bytes
        The PDF.
    """
    regular, bold = slip_fonts()
    buffer = io.BytesIO()
    width, height = landscape(A5)
    pdf = canvas.Canvas(buffer, pagesize=(width, height))
    pdf.setTitle(_("Appointment %(accession)s", accession=proc.accession_number))
    x = 15 * mm
    y = height - 15 * mm
    header = (clinic or ClinicHeader()).lines()
    if header:
        pdf.setFont(bold, 11)
        pdf.drawRightString(width - 15 * mm, y, header[0])
        pdf.setFont(regular, 9)
        for line in header[1:]:
            y -= 4.5 * mm
            pdf.drawRightString(width - 15 * mm, y, line)
        y = min(y - 7 * mm, height - 20 * mm)
    else:
        y = height - 20 * mm
    pdf.setFont(bold, 18)
    pdf.drawString(x, height - 20 * mm, _("Appointment"))
    y = min(y, height - 20 * mm) - 10 * mm
    patient = proc.patient
    where = proc.station_ae_title
    if station is not None:
        extra = ", ".join(v for v in (station.name, station.location) if v)
        if extra:
            where = f"{extra} ({station.ae_title})"
    when = f"{format_long_day(proc.scheduled_start)}, {format_clock(proc.scheduled_start)}"
    rows = [
        (_("Patient"), readable_name(patient.name)),
        (_("Date of birth"), format_day(patient.birth_date)),
        (_("Patient ID"), patient.patient_id),
        (_("Exam"), proc.procedure_description or proc.modality),
        (_("When"), when),
        (_("Where"), where),
        (_("Referred by"), readable_name(proc.referring_physician)),
    ]
    for label, value in rows:
        pdf.setFont(regular, 10)
        pdf.drawString(x, y, label)
        pdf.setFont(bold, 12)
        pdf.drawString(x + 35 * mm, y, value)
        y -= 7 * mm
    if preparation:
        pdf.setFont(regular, 10)
        pdf.drawString(x, y, _("Preparation"))
        pdf.setFont(regular, 10)
        # Plain strings, wrapped by width: never a Paragraph (which would read markup).
        for paragraph in preparation.splitlines() or [preparation]:
            for line in simpleSplit(paragraph, regular, 10, width - x - 35 * mm - 15 * mm):
                if y < 34 * mm:
                    break
                pdf.drawString(x + 35 * mm, y, line)
                y -= 4.6 * mm
    barcode = code128.Code128(proc.accession_number, barHeight=14 * mm, barWidth=0.35 * mm)
    barcode.drawOn(pdf, x - 5 * mm, 14 * mm)
    pdf.setFont("Courier", 11)
    pdf.drawString(x, 9 * mm, _("Accession number %(accession)s", accession=proc.accession_number))
    pdf.setFont(regular, 9)
    pdf.drawRightString(width - 15 * mm, 9 * mm, _("Please bring this slip with you."))
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
