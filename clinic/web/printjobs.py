"""Print jobs at the front desk: the list with page previews, the PDF, reprint, the hold queue.

The pages only read :class:`clinic.store.models.PrintJob` rows. Reprinting goes through a
callable the composition root hands to :func:`clinic.web.create_app` (the print
spool's requeue), so this door never reaches into the print service itself.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _

from clinic.domain.errors import NotFound
from clinic.domain.print_jobs import (
    DeskRefusal,
    archive_reason,
    get_job,
    list_jobs,
    pdf_of,
)
from clinic.domain.print_links import PrintLinks
from clinic.store.models import PrintJob, Procedure
from clinic.web.downloads import name_download
from clinic.web.forms import EmptyForm
from clinic.web.params import page_number, parse_id
from clinic.web.security import actor, login_required
from clinic.web.services import services

bp = Blueprint("printjobs", __name__)

PAGE_SIZE = 50
THUMBNAIL_DPI = 24
MAX_THUMBNAILS = 12
#: Reprint hook: (job id, actor) -> whether the job exists (and is queued again, audited).
Reprint = Callable[[int, str], object]
#: Refile hook: job id -> whether the job exists (its PDF is filed again).
Refile = Callable[[int], object]


def _job(job_id: int) -> PrintJob | None:
    return get_job(services().sessions, job_id)


def render_thumbnail(pdf: Path, page: int, dpi: int = THUMBNAIL_DPI) -> bytes | None:
    """Render one page of ``pdf`` as a small PNG with poppler's ``pdftoppm``.

    Returns ``None`` when the tool is missing or the page cannot be rendered.
    """
    tool = shutil.which("pdftoppm")
    if tool is None:
        return None
    try:
        done = subprocess.run(
            [tool, "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), str(pdf)],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        return None
    return done.stdout


def _local_day(job: PrintJob) -> dt.date:
    """The clinic's local day a job arrived on (stored in UTC)."""
    return job.created_at.replace(tzinfo=dt.UTC).astimezone().date()


@bp.get("/print-jobs")
@login_required
def jobs() -> str:
    """The print jobs, newest first, with page previews, download, reprint and patient link."""
    g.patient_data = True
    page = page_number(request.args.get("page"))
    rows = list_jobs(services().sessions, (page - 1) * PAGE_SIZE, PAGE_SIZE + 1)
    links = PrintLinks(services().sessions)
    # The bookings offered for linking: those of the day each job arrived.
    bookings: dict[dt.date, list[Procedure]] = {}
    for job in rows[:PAGE_SIZE]:
        day = _local_day(job)
        if day not in bookings:
            bookings[day] = list(links.candidates(day))
    return render_template(
        "print_jobs.html",
        jobs=rows[:PAGE_SIZE],
        page=page,
        more=len(rows) > PAGE_SIZE,
        has_pdf={j.id: pdf_of(j) is not None for j in rows},
        can_reprint=services().reprint is not None,
        button=EmptyForm(),
        max_thumbnails=MAX_THUMBNAILS,
        bookings={j.id: bookings[_local_day(j)] for j in rows[:PAGE_SIZE]},
        desk=services().print_desk,
        archive_reason=archive_reason,
    )


@bp.post("/print-jobs/<int:job_id>/link")
@login_required
def link(job_id: int) -> Any:
    """Attach a job to a booking (by accession number or from the day's list), or unlink it.

    A typed accession number wins over the list; ``unlink`` removes the link. The
    change is audited with the signed-in user; the print service then files the
    PDF again under the new name and metadata (nothing is printed).
    """
    g.patient_data = True
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400, _("The form has expired; please try again."))
    links = PrintLinks(services().sessions)
    target: int | None = None
    if request.form.get("unlink"):
        target = None
    else:
        accession = request.form.get("accession_number", "").strip()
        choice = request.form.get("procedure_id", "").strip()
        if accession:
            proc = links.booking_by_accession(accession)
            if proc is None:
                flash(
                    _("No booking has the accession number %(accession)s.", accession=accession),
                    "error",
                )
                return redirect(url_for("printjobs.jobs"))
            target = proc.id
        elif parse_id(choice) is not None:
            target = parse_id(choice)
        else:
            flash(_("Please type an accession number or pick a booking."), "error")
            return redirect(url_for("printjobs.jobs"))
    try:
        links.set_link(job_id, target, actor())
    except NotFound:
        abort(404, _("There is no such print job or booking."))
    refile: Refile | None = services().refile
    if refile is not None:
        refile(job_id)  # the PDF takes the new name and metadata; nothing is printed
    flash(
        _("Print job %(id)d is no longer linked.", id=job_id)
        if target is None
        else _("Print job %(id)d is linked.", id=job_id),
        "success",
    )
    return redirect(url_for("printjobs.jobs"))


@bp.get("/print-jobs/<int:job_id>/pdf")
@login_required
def pdf(job_id: int) -> Response:
    """The job's PDF."""
    g.patient_data = True
    path = pdf_of(_job(job_id))
    if path is None:
        abort(404, _("This print job has no PDF (yet)."))
    return name_download(send_file(path, mimetype="application/pdf"), f"print-job-{job_id}.pdf")


@bp.get("/print-jobs/<int:job_id>/pages/<int:page>.png")
@login_required
def thumbnail(job_id: int, page: int) -> Response:
    """A small preview of one page of the job's PDF."""
    g.patient_data = True
    job = _job(job_id)
    path = pdf_of(job)
    if job is None or path is None or not 1 <= page <= max(job.pages, 1):
        abort(404)
    png = render_thumbnail(path, page)
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=300"})


@bp.post("/print-jobs/<int:job_id>/reprint")
@login_required
def reprint(job_id: int) -> Any:
    """Queue the job again; the spool prints it once more."""
    hook: Reprint | None = services().reprint
    if hook is None:
        abort(404, _("Reprinting is not available."))
    if _job(job_id) is None or not hook(job_id, actor()):
        abort(404, _("There is no such print job."))
    flash(_("Print job %(id)d is queued again.", id=job_id), "success")
    return redirect(url_for("printjobs.jobs"))


def _copies(value: object) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise DeskRefusal("copies must be a whole number from 1 to 99") from None


@bp.post("/print-jobs/<int:job_id>/release")
@login_required
def release(job_id: int) -> Any:
    """Print a held job on the chosen printer with the chosen number of copies."""
    desk = services().print_desk
    if desk is None or not EmptyForm().validate_on_submit():
        abort(400, _("The form has expired; please try again."))
    try:
        desk.release(
            job_id,
            request.form.get("printer", ""),
            _copies(request.form.get("copies", "1")),
            actor(),
        )
    except NotFound:
        abort(404, _("There is no such print job."))
    except DeskRefusal as exc:
        flash(f"{exc}.", "error")
    else:
        flash(_("Print job %(id)d is released and prints now.", id=job_id), "success")
    return redirect(url_for("printjobs.jobs"))


@bp.post("/print-jobs/<int:job_id>/discard")
@login_required
def discard(job_id: int) -> Any:
    """Drop a held job: it is neither printed nor archived."""
    desk = services().print_desk
    if desk is None or not EmptyForm().validate_on_submit():
        abort(400, _("The form has expired; please try again."))
    try:
        desk.discard(job_id, actor())
    except NotFound:
        abort(404, _("There is no such print job."))
    except DeskRefusal as exc:
        flash(f"{exc}.", "error")
    else:
        flash(_("Print job %(id)d is discarded.", id=job_id), "success")
    return redirect(url_for("printjobs.jobs"))


@bp.post("/print-jobs/<int:job_id>/archive")
@login_required
def archive_again(job_id: int) -> Any:
    """Send a printed job to its printer's archive once more."""
    desk = services().print_desk
    if desk is None or not EmptyForm().validate_on_submit():
        abort(400, _("The form has expired; please try again."))
    try:
        desk.send_again(job_id, actor())
    except NotFound:
        abort(404, _("There is no such print job."))
    except DeskRefusal as exc:
        flash(f"{exc}.", "error")
    else:
        flash(_("Print job %(id)d is sent to the archive again.", id=job_id), "success")
    return redirect(url_for("printjobs.jobs"))


# -- REST API (registered on the API blueprint: same authentication) -----------------
