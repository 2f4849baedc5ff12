"""Administration: stations, procedure catalog, users and tokens, printers, audit log,
worklist diagnostics. Administrators only; a front-desk user gets 403."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import func, select

from clinic.domain import patients as patient_search
from clinic.domain.calendar import WEEKDAYS, station_opening_hours
from clinic.domain.errors import NotFound, ValidationError
from clinic.domain.vr import FIRST_DAY, LAST_DAY
from clinic.store.models import AuditEntry, Procedure, Station, WorklistQueryLog
from clinic.web.forms import (
    CatalogForm,
    EmptyForm,
    MergeForm,
    OpeningHoursForm,
    StationForm,
    UserEditForm,
    UserForm,
    options,
)
from clinic.web.params import page_number, parse_day
from clinic.web.security import actor, admin_required
from clinic.web.services import services

bp = Blueprint("admin", __name__, url_prefix="/admin")

AUDIT_PAGE_SIZE = 50
#: Session key holding a just-made API token until the user's page shows it once.
_NEW_TOKEN = "clinic.new_token"


def _field_errors(form: Any, errors: dict[str, str]) -> list[str]:
    leftover = []
    for key, message in errors.items():
        text = _(
            "%(field)s %(problem)s.", field=key.replace("_", " ").capitalize(), problem=message
        )
        if key in form:
            form[key].errors = [*form[key].errors, text]
        else:
            leftover.append(text)
    return leftover


@bp.get("/")
@admin_required
def index() -> str:
    """The administration start page."""
    return render_template("admin_index.html")


# -- stations ------------------------------------------------------------------------


@bp.route("/stations", methods=["GET", "POST"])
@admin_required
def stations() -> Any:
    """List stations; add one."""
    form = StationForm()
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                services().catalog.save_station(form.data, actor())
            except ValidationError as exc:
                problems = _field_errors(form, exc.errors)
            else:
                flash(_("The station is added."), "success")
                return redirect(url_for("admin.stations"))
        status = 422
    return (
        render_template(
            "admin_stations.html",
            stations=services().catalog.stations(),
            form=form,
            problems=problems,
        ),
        status,
    )


def _hours_form(station: Station) -> OpeningHoursForm:
    """The opening-hours form filled with the station's hours (its own or the clinic's)."""
    form = OpeningHoursForm(formdata=None)
    hours = station_opening_hours(station, services().calendar.default_hours)
    for day, text in hours.as_mapping().items():
        form[day].data = text
    form.own_hours.data = bool(station.opening_hours)
    own_dates = json.loads(station.closed_dates) if station.closed_dates else []
    form.closed_dates.data = "\n".join(own_dates)
    return form


def _render_station(
    current: Station,
    form: StationForm,
    hours_form: OpeningHoursForm | None = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> Any:
    return (
        render_template(
            "admin_station.html",
            station=current,
            form=form,
            hours_form=hours_form or _hours_form(current),
            weekdays=WEEKDAYS,
            clinic_hours=services().calendar.default_hours.as_mapping(),
            problems=problems or [],
        ),
        status,
    )


@bp.route("/stations/<int:station_id>", methods=["GET", "POST"])
@admin_required
def station(station_id: int) -> Any:
    """Change a station's modality, name, location or character set."""
    try:
        current = services().catalog.get_station(station_id)
    except NotFound:
        abort(404)
    form = StationForm(obj=current if request.method == "GET" else None)
    problems: list[str] = []
    if request.method == "POST":
        if form.validate_on_submit():
            data = dict(form.data, ae_title=current.ae_title)
            try:
                services().catalog.save_station(data, actor(), station_id)
            except ValidationError as exc:
                problems = _field_errors(form, exc.errors)
            else:
                flash(_("The station is saved."), "success")
                return redirect(url_for("admin.stations"))
        return _render_station(current, form, problems=problems, status=422)
    return _render_station(current, form)


@bp.post("/stations/<int:station_id>/hours")
@admin_required
def station_hours(station_id: int) -> Any:
    """Set a station's own opening hours (or go back to the clinic's) and closed dates."""
    try:
        current = services().catalog.get_station(station_id)
    except NotFound:
        abort(404)
    hours_form = OpeningHoursForm()
    station_form = StationForm(formdata=None, obj=current)
    if not hours_form.validate_on_submit():
        return _render_station(current, station_form, hours_form, status=422)
    hours = (
        {day: (hours_form[day].data or "").strip() for day in WEEKDAYS}
        if hours_form.own_hours.data
        else None
    )
    dates = (hours_form.closed_dates.data or "").replace(",", "\n").splitlines()
    try:
        services().calendar.save_station_hours(current.ae_title, hours, dates, actor())
    except ValidationError as exc:
        for key, message in exc.errors.items():
            if key in hours_form:
                hours_form[key].errors = [*hours_form[key].errors, f"{message}."]
        return _render_station(current, station_form, hours_form, status=422)
    flash(_("The opening hours are saved."), "success")
    return redirect(url_for("admin.station", station_id=station_id))


# -- catalog -------------------------------------------------------------------------


def _catalog_form(obj: Any = None) -> CatalogForm:
    form = CatalogForm(obj=obj)
    form.default_station.choices = options(
        [("", "None")] + [(s.ae_title, s.ae_title) for s in services().catalog.stations()]
    )
    return form


@bp.route("/catalog", methods=["GET", "POST"])
@admin_required
def catalog() -> Any:
    """List the procedure catalog; add a procedure."""
    form = _catalog_form()
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                services().catalog.save_entry(form.data, actor())
            except ValidationError as exc:
                problems = _field_errors(form, exc.errors)
            else:
                flash(_("The procedure is added to the catalog."), "success")
                return redirect(url_for("admin.catalog"))
        status = 422
    return (
        render_template(
            "admin_catalog.html", entries=services().catalog.entries(), form=form, problems=problems
        ),
        status,
    )


@bp.route("/catalog/<int:entry_id>", methods=["GET", "POST"])
@admin_required
def catalog_entry(entry_id: int) -> Any:
    """Change a procedure of the catalog."""
    try:
        current = services().catalog.get_entry(entry_id)
    except NotFound:
        abort(404)
    form = _catalog_form(obj=current if request.method == "GET" else None)
    problems: list[str] = []
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                services().catalog.save_entry(form.data, actor(), entry_id)
            except ValidationError as exc:
                problems = _field_errors(form, exc.errors)
            else:
                flash(_("The procedure is saved."), "success")
                return redirect(url_for("admin.catalog"))
        return render_template(
            "admin_catalog_entry.html", entry=current, form=form, problems=problems
        ), 422
    return render_template("admin_catalog_entry.html", entry=current, form=form, problems=problems)


# -- users and tokens ----------------------------------------------------------------


@bp.route("/users", methods=["GET", "POST"])
@admin_required
def users() -> Any:
    """List users; add one."""
    form = UserForm()
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                services().accounts.create_user(
                    (form.name.data or "").strip(),
                    form.role.data or "",
                    form.password.data or "",
                    actor(),
                )
            except ValidationError as exc:
                problems = _field_errors(form, exc.errors)
            else:
                flash(_("The user is added."), "success")
                return redirect(url_for("admin.users"))
        status = 422
    return (
        render_template(
            "admin_users.html", users=services().accounts.list_users(), form=form, problems=problems
        ),
        status,
    )


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def user(user_id: int) -> Any:
    """Change a user's role, sign-in permission or password; manage their API tokens."""
    current = services().accounts.get_user(user_id)
    if current is None:
        abort(404)
    form = UserEditForm(obj=current if request.method == "GET" else None)
    problems: list[str] = []
    status = 200
    new_token = None
    shown = session.pop(_NEW_TOKEN, None)
    if request.method == "GET" and isinstance(shown, dict) and shown.get("user_id") == user_id:
        new_token = shown.get("token")
    if request.method == "POST":
        if (
            form.validate_on_submit()
            and user_id == current_user.id
            and (form.role.data != "admin" or not form.active.data)
        ):
            form.role.errors = [
                *form.role.errors,
                _("You cannot take away your own administrator rights or sign-in."),
            ]
        elif form.validate_on_submit():
            try:
                services().accounts.update_user(
                    user_id,
                    actor(),
                    role=form.role.data,
                    active=bool(form.active.data),
                    password=form.password.data or None,
                )
            except ValidationError as exc:
                problems = _field_errors(form, exc.errors)
            else:
                flash(_("The user is saved."), "success")
                return redirect(url_for("admin.user", user_id=user_id))
        status = 422
    return (
        render_template(
            "admin_user.html",
            user=current,
            form=form,
            problems=problems,
            tokens=services().accounts.list_tokens(user_id),
            button=EmptyForm(formdata=None),
            new_token=new_token,
            open_sessions=services().accounts.count_sessions(user_id),
        ),
        status,
    )


@bp.post("/users/<int:user_id>/sessions/end")
@admin_required
def end_sessions(user_id: int) -> Any:
    """Sign a user out everywhere: every browser session of theirs ends at once (audited)."""
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400, "The form has expired; please try again.")
    try:
        ended = services().accounts.end_sessions(user_id, actor(), "sign out everywhere")
    except NotFound:
        abort(404)
    flash(f"Signed out everywhere: {ended} session(s) ended.", "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.route("/users/<int:user_id>/tokens", methods=["GET", "POST"])
@admin_required
def create_token(user_id: int) -> Any:
    """Make an API token for a user, then show it once on the user's page.

    The answer is a redirect (so reloading the page neither fails nor makes another
    token); the new token rides along in the session only until that page shows it.
    A GET (a reload of an old address) just goes to the user's page.
    """
    current = services().accounts.get_user(user_id)
    if current is None:
        abort(404)
    if request.method == "POST":
        if not EmptyForm().validate_on_submit():
            abort(400, _("The form has expired; please try again."))
        session[_NEW_TOKEN] = {
            "user_id": user_id,
            "token": services().accounts.create_token(current.name, actor()),
        }
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/tokens/<int:token_id>/revoke")
@admin_required
def revoke_token(token_id: int) -> Any:
    """Revoke an API token."""
    try:
        owner = services().accounts.revoke_token(token_id, actor())
    except NotFound:
        abort(404)
    flash(_("The token is revoked."), "success")
    return redirect(url_for("admin.user", user_id=owner))


# -- printers, audit, worklist diagnostics -------------------------------------------


def _booking_count(patient_pk: int) -> int:
    with services().sessions() as session:
        stmt = select(func.count()).select_from(Procedure).where(Procedure.patient_pk == patient_pk)
        return int(session.scalar(stmt) or 0)


@bp.route("/patients/merge", methods=["GET", "POST"])
@admin_required
def merge_patients_page() -> Any:
    """Merge a patient recorded twice: show both records, merge once confirmed."""
    form = MergeForm()
    if request.method == "GET":
        form.keep_patient_id.data = request.args.get("keep", "")
        form.merge_patient_id.data = request.args.get("merge", "")
    records: list[Any] = []
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            keep = form.keep_patient_id.data.strip()
            merge = form.merge_patient_id.data.strip()
            records = [
                (pid, patient_search.get_patient(services().sessions, pid)) for pid in (keep, merge)
            ]
            missing = [pid for pid, found in records if found is None]
            if missing:
                problems = [_("There is no patient with ID %(id)s.", id=pid) for pid in missing]
            elif keep == merge:
                problems = [_("Please enter two different patient IDs.")]
            elif not form.confirm.data:
                problems = [_("Please check both records, then confirm the merge.")]
                status = 200
            else:
                moved = patient_search.merge_patients(services().sessions, keep, merge, actor())
                flash(
                    ngettext(
                        "Patient %(merged)s is merged into %(kept)s; %(num)d booking moved.",
                        "Patient %(merged)s is merged into %(kept)s; %(num)d bookings moved.",
                        len(moved),
                        merged=merge,
                        kept=keep,
                    ),
                    "success",
                )
                return redirect(url_for("admin.merge_patients_page"))
    return (
        render_template(
            "admin_merge.html",
            form=form,
            records=[(pid, p, _booking_count(p.id)) for pid, p in records if p is not None],
            problems=problems,
        ),
        status,
    )


@bp.get("/printers")
@admin_required
def printers() -> str:
    """The printer profiles from the configuration (read-only)."""
    settings = current_app.config["CLINIC_SETTINGS"]
    profiles: dict[str, Any] = dict(settings.printers)
    return render_template(
        "admin_printers.html", profiles=profiles, default_printer=settings.printer_ae_title
    )


@bp.get("/audit")
@admin_required
def audit_log() -> str:
    """The audit log, newest first; filter by who, what, which record and when."""
    filters = {
        k: request.args.get(k, "").strip()
        for k in ("actor", "action", "entity", "entity_id", "since", "until")
    }
    stmt = select(AuditEntry)
    errors: dict[str, str] = {}
    if filters["actor"]:
        stmt = stmt.where(AuditEntry.actor.contains(filters["actor"], autoescape=True))
    for key in ("action", "entity", "entity_id"):
        if filters[key]:
            stmt = stmt.where(getattr(AuditEntry, key) == filters[key])
    for key in ("since", "until"):
        if filters[key]:
            try:
                day = parse_day(filters[key])
            except ValueError:
                errors[key] = _(
                    "Please write the date as YYYY-MM-DD. Days from %(first)s to %(last)s.",
                    first=FIRST_DAY.isoformat(),
                    last=LAST_DAY.isoformat(),
                )
                continue
            start = dt.datetime.combine(day, dt.time())
            if key == "since":
                stmt = stmt.where(AuditEntry.at >= start)
            else:
                stmt = stmt.where(AuditEntry.at < start + dt.timedelta(days=1))
    page = page_number(request.args.get("page"))
    with services().sessions() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = list(
            session.scalars(
                stmt.order_by(AuditEntry.id.desc())
                .offset((page - 1) * AUDIT_PAGE_SIZE)
                .limit(AUDIT_PAGE_SIZE)
            )
        )
        actions = list(session.scalars(select(AuditEntry.action).distinct()))
        entities = list(session.scalars(select(AuditEntry.entity).distinct()))
    entries = []
    for row in rows:
        try:
            detail = json.loads(row.detail)
        except ValueError:
            detail = row.detail
        entries.append((row, detail))
    return render_template(
        "admin_audit.html",
        entries=entries,
        filters=filters,
        errors=errors,
        page=page,
        pages=max(1, (total + AUDIT_PAGE_SIZE - 1) // AUDIT_PAGE_SIZE),
        total=total,
        actions=sorted(actions),
        entities=sorted(entities),
    )


@bp.get("/worklist")
@admin_required
def worklist() -> str:
    """Per station: the last worklist query (when, keys, matches, status)."""
    with services().sessions() as session:
        rows = list(
            session.scalars(select(WorklistQueryLog).order_by(WorklistQueryLog.calling_ae_title))
        )
    seen = {r.calling_ae_title for r in rows}
    silent = [s for s in services().catalog.stations() if s.ae_title not in seen]
    return render_template("admin_worklist.html", rows=rows, silent=silent)
