"""The front desk's calendar pages: a station's week, and a patient's record."""

from __future__ import annotations

import datetime as dt
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
    url_for,
)
from flask_babel import gettext as _

from clinic.domain import patient_record
from clinic.domain.errors import NotFound, ValidationError
from clinic.domain.patients import patient_history
from clinic.domain.vr import FIRST_DAY, LAST_DAY
from clinic.web.downloads import template_script
from clinic.web.forms import ContactForm, EmptyForm
from clinic.web.params import parse_day
from clinic.web.security import actor, login_required
from clinic.web.services import services

bp = Blueprint("calendar", __name__)


@bp.get("/week")
@login_required
def week() -> Any:
    """One station's week, Monday to Sunday: bookings with start and end, free time.

    Free time links to the booking form with station, day and time filled in.
    Without ``station`` the first station is shown (a page says so when there is none).
    """
    g.patient_data = True
    text = request.args.get("date", "").strip()
    try:
        day = parse_day(text) if text else dt.date.today()
    except ValueError:
        abort(
            400,
            _("The date must be written YYYY-MM-DD, between %(first)s and %(last)s.")
            % {"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()},
        )
    catalog = services().catalog
    stations = catalog.stations()
    station = request.args.get("station", "").strip()
    if not station:
        if not stations:
            return render_template("week.html", station="", stations=[], plans=[], day=day)
        return redirect(
            url_for("calendar.week", station=stations[0].ae_title, date=day.isoformat())
        )
    try:
        plans = services().calendar.week(station, day)
    except NotFound:
        abort(404, _("There is no station %(station)s.", station=station))
    monday = plans[0].day
    return render_template(
        "week.html",
        station=station,
        stations=stations,
        plans=plans,
        day=day,
        monday=monday,
        prev_week=monday - dt.timedelta(days=7),
        next_week=monday + dt.timedelta(days=7),
        hours=services().calendar.hours(station),
    )


@bp.get("/week.js")
def week_script() -> Response:
    """The week view's drag-and-drop script (the page works without it)."""
    return template_script("week.js")


def _render_patient(patient_id: str, form: ContactForm | None = None, status: int = 200) -> Any:
    try:
        rec = patient_record.record(services().sessions, patient_id)
    except NotFound:
        abort(404, _("There is no such patient."))
    if form is None:
        form = ContactForm(formdata=None, obj=rec.patient)
    now = dt.datetime.now()
    upcoming = [p for p in rec.bookings if p.scheduled_start >= now]
    past = [p for p in rec.bookings if p.scheduled_start < now]
    past.reverse()
    return (
        render_template(
            "patient.html",
            patient=rec.patient,
            upcoming=upcoming,
            past=past,
            print_jobs=rec.print_jobs,
            history=patient_history(services().sessions, rec.patient.patient_id),
            form=form,
            button=EmptyForm(formdata=None),
        ),
        status,
    )


@bp.get("/patients/<path:patient_id>")
@login_required
def patient(patient_id: str) -> Any:
    """A patient's record: details, contact, upcoming and past exams, print jobs."""
    g.patient_data = True
    return _render_patient(patient_id)


@bp.post("/patients/<path:patient_id>/contact")
@login_required
def contact(patient_id: str) -> Any:
    """Change a patient's phone and e-mail (audited with before and after)."""
    g.patient_data = True
    form = ContactForm()
    if not form.validate_on_submit():
        return _render_patient(patient_id, form, 422)
    try:
        patient_record.update_contact(
            services().sessions,
            patient_id,
            {"phone": form.phone.data or "", "email": form.email.data or ""},
            actor(),
        )
    except NotFound:
        abort(404, _("There is no such patient."))
    except ValidationError as exc:
        for key, message in exc.errors.items():
            if key in form:
                label = "The phone number" if key == "phone" else "The e-mail address"
                form[key].errors = [*form[key].errors, f"{label} {message}."]
        return _render_patient(patient_id, form, 422)
    flash(_("The contact details are saved."), "success")
    return redirect(url_for("calendar.patient", patient_id=patient_id))
