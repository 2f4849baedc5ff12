"""The front desk: the day view, finding patients, booking, rescheduling, cancelling."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from clinic.config import Settings
from clinic.domain import patients as patient_search
from clinic.domain.attendance import Attendance, stale_cutoff
from clinic.domain.calendar import booking_end, overlapping_ids
from clinic.domain.catalog import procedure_code
from clinic.domain.errors import (
    NotFound,
    OverlapError,
    PatientConflict,
    TransitionError,
    ValidationError,
)
from clinic.domain.performed import PerformedSteps
from clinic.domain.print_links import PrintLinks
from clinic.domain.vr import FIRST_DAY, LAST_DAY
from clinic.store.models import (
    ACTIVE_STATUSES,
    CatalogEntry,
    PerformedStep,
    Procedure,
    ProcedureStatus,
)
from clinic.web.display import readable_name, status_label
from clinic.web.downloads import name_download, template_script
from clinic.web.forms import BookingForm, CancelForm, EmptyForm, RescheduleForm, options
from clinic.web.i18n import format_clock, format_day, format_moment
from clinic.web.i18n import parse_day as parse_local_day
from clinic.web.params import local_path, parse_day, parse_id
from clinic.web.security import actor, login_required
from clinic.web.services import services
from clinic.web.slip import ClinicHeader, appointment_slip

bp = Blueprint("frontdesk", __name__)

#: Exams done without a booking shown on the day view; the rest are a page away.
DAY_UNLINKED = 5
#: Bookings offered for attaching one such exam (its day and station).
ATTACH_CHOICES = 50

GROUPS = ("station", "modality")
#: The domain's field names, as a receptionist would name them.
FIELD_WORDS = {
    "patient_id": _l("The patient ID"),
    "patient_name": _l("The patient's name"),
    "patient_birth_date": _l("The date of birth"),
    "patient_sex": _l("The sex"),
    "modality": _l("The modality"),
    "station_ae_title": _l("The station"),
    "scheduled_start": _l("The date and time"),
    "procedure_description": _l("The description"),
    "referring_physician": _l("The referring physician's name"),
    "priority": _l("The priority"),
    "notes": _l("The notes"),
    "duration_minutes": _l("The duration"),
    "accession_number": _l("The accession number"),
    "reason": _l("The reason"),
}
#: The domain's fixed messages, in the page's language (others are shown as they are).
DOMAIN_MESSAGES = {
    "is required": _l("is required"),
    "must not be empty": _l("must not be empty"),
    "must not be in the future": _l("must not be in the future"),
    "is already used by another booking": _l("is already used by another booking"),
    "is already used by a booking": _l("is already used by a booking"),
    "must be M, F or O": _l("must be M, F or O"),
    "is required for a new patient": _l("is required for a new patient"),
    "must not contain a backslash or control characters": _l(
        "must not contain a backslash or control characters"
    ),
    "must be a real date written YYYY-MM-DD": _l("must be a real date"),
    "must be a real date and time written YYYY-MM-DDTHH:MM": _l("must be a real date and time"),
    "must be at most 64 characters": _l("must be at most 64 characters"),
}
#: Domain field -> the booking form's field that shows its message.
BOOKING_FIELDS = {
    "patient_id": "patient_id",
    "patient_name": "family_name",
    "patient_birth_date": "birth_date",
    "patient_sex": "sex",
    "modality": "modality",
    "station_ae_title": "station",
    "scheduled_start": "date",
    "procedure_description": "description",
    "referring_physician": "referring_physician",
    "priority": "priority",
    "notes": "notes",
    "duration_minutes": "duration_minutes",
}


def safe_next(default: str) -> str:
    """The form's ``next`` address when it is a path on this site, else ``default``."""
    return local_path(request.form.get("next", "")) or default


def overlap_problems(ids: list[int]) -> list[str]:
    """Describe the bookings a booking would overlap, for the form's message."""
    lines = [_("The station is already booked at that time:")]
    for proc_id in ids:
        try:
            other = services().scheduler.get(proc_id)
        except NotFound:
            continue
        end = booking_end(other.scheduled_start, other.duration_minutes)
        lines.append(
            f"{format_moment(other.scheduled_start)}–{format_clock(end)} "
            f"{readable_name(other.patient.name)} "
            f"({other.procedure_description or other.modality}, {other.accession_number})"
        )
    lines.append(_("Choose another time, or tick the box below to book it anyway."))
    return lines


def _past_days() -> int:
    settings: Settings = current_app.config["CLINIC_SETTINGS"]
    return settings.worklist_past_days


def _performed() -> PerformedSteps:
    # Cheap to build: it only holds the session factory.
    return PerformedSteps(services().sessions)


def series_count(step: PerformedStep) -> int:
    """How many series a performed step reports (its Performed Series Sequence)."""
    try:
        series = json.loads(step.performed_series or "[]")
    except ValueError:
        return 0
    return len(series) if isinstance(series, list) else 0


def friendly(field: str, message: str) -> str:
    """Turn a domain message into a sentence: ``The date of birth must not be in the future.``"""
    if message.startswith("is required (no single station"):
        return str(_("Please choose the station: more than one (or none) does this modality."))
    words = FIELD_WORDS.get(field, field.replace("_", " ").capitalize())
    problem = DOMAIN_MESSAGES.get(message, message)
    return str(_("%(field)s %(problem)s.", field=words, problem=problem))


def _add_errors(form: Any, errors: dict[str, str], mapping: dict[str, str]) -> list[str]:
    """Put each domain error next to its form field; return those with no field."""
    leftover = []
    for key, message in errors.items():
        target = mapping.get(key)
        text = friendly(key, message)
        if target and target in form:
            form[target].errors = [*form[target].errors, text]
        else:
            leftover.append(text)
    return leftover


def person_name_from_input(text: str) -> str:
    """Turn ``Family, Given`` (or ``FAMILY^GIVEN``) into a DICOM person name."""
    text = (text or "").strip()
    if "^" in text or "," not in text:
        return text
    family, _sep, given = text.partition(",")
    return f"{family.strip()}^{given.strip()}".rstrip("^")


def _day_arg() -> dt.date:
    text = request.args.get("date", "").strip()
    if not text:
        return dt.date.today()
    try:
        return parse_day(text)
    except ValueError:
        abort(
            400,
            _("The date must be written YYYY-MM-DD, between %(first)s and %(last)s.")
            % {"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()},
        )


def _station_choices(blank: str) -> list[tuple[str, str]]:
    choices = [("", blank)]
    for st in services().catalog.stations():
        label = st.ae_title
        extra = " ".join(x for x in (st.name, st.modality, st.location) if x)
        choices.append((st.ae_title, f"{label} ({extra})" if extra else label))
    return choices


def _procedure_choices(entries: list[CatalogEntry]) -> list[tuple[str, str]]:
    choices = [("", "Other (type the modality and description below)")]
    choices += [
        (e.code, f"{e.description} ({e.modality}, {e.duration_minutes} min)") for e in entries
    ]
    return choices


@bp.get("/")
@login_required
def day() -> Any:
    """The day's bookings by station (or modality) and time, today by default."""
    g.patient_data = True
    day = _day_arg()
    group = request.args.get("group", "station")
    if group not in GROUPS:
        group = "station"
    station = request.args.get("station", "")
    modality = request.args.get("modality", "")
    status = request.args.get("status", "")
    day_rows = services().scheduler.list_procedures(day)
    rows = day_rows
    all_stations = sorted({p.station_ae_title for p in rows})
    all_modalities = sorted({p.modality for p in rows})
    if station:
        rows = [p for p in rows if p.station_ae_title == station]
    if modality:
        rows = [p for p in rows if p.modality == modality]
    if status:
        rows = [p for p in rows if p.status == status]
    groups: OrderedDict[str, list[Procedure]] = OrderedDict()
    for proc in sorted(
        rows,
        key=lambda p: (
            getattr(p, "station_ae_title" if group == "station" else "modality"),
            p.scheduled_start,
            p.id,
        ),
    ):
        key = proc.station_ae_title if group == "station" else proc.modality
        groups.setdefault(key, []).append(proc)
    counts = {s.value: sum(1 for p in rows if p.status == s.value) for s in ProcedureStatus}
    printable = request.args.get("print") == "1"
    unlinked = [] if printable else list(_performed().unlinked(limit=DAY_UNLINKED))
    unlinked_total = 0 if printable else _performed().count_unlinked()
    ends = {p.id: booking_end(p.scheduled_start, p.duration_minutes) for p in day_rows}
    clashing = overlapping_ids(
        (p.id, p.station_ae_title, p.scheduled_start, ends[p.id])
        for p in day_rows
        if p.status in ACTIVE_STATUSES
    )
    free: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    if group == "station" and not printable:
        for key in groups:
            try:
                free[key] = services().calendar.free_slots(key, day, 1)
            except NotFound:
                free[key] = []
    past_days = _past_days()
    not_done, not_done_total = (
        ([], 0) if printable else Attendance(services().scheduler).not_done(past_days)
    )
    setup = None
    if not printable and getattr(current_user, "is_admin", False):
        stations_done = bool(services().catalog.stations())
        procedures_done = bool(services().catalog.entries(active_only=True))
        if not (stations_done and procedures_done):
            setup = {"stations": stations_done, "procedures": procedures_done}
    if printable:
        groups = OrderedDict(
            (key, kept)
            for key, items in groups.items()
            if (kept := [p for p in items if p.status != ProcedureStatus.CANCELLED])
        )
    page = render_template(
        "day_print.html" if printable else "day.html",
        not_done=not_done,
        not_done_total=not_done_total,
        stale_before=stale_cutoff(past_days),
        setup=setup,
        clinic_lines=ClinicHeader.from_settings(current_app.config["CLINIC_SETTINGS"]).lines(),
        day=day,
        prev_day=day - dt.timedelta(days=1),
        next_day=day + dt.timedelta(days=1),
        groups=groups,
        group=group,
        station=station,
        modality=modality,
        status=status,
        all_stations=all_stations,
        all_modalities=all_modalities,
        statuses=[s.value for s in ProcedureStatus],
        counts=counts,
        total=len(rows),
        unlinked=unlinked,
        unlinked_total=unlinked_total,
        choices=_attach_choices(unlinked),
        series_count=series_count,
        button=EmptyForm(formdata=None),
        ends=ends,
        clashing=clashing,
        free=free,
        here=request.full_path.rstrip("?"),
    )
    if not printable:
        return page
    # The printable day list is a document of its own: saved, it keeps the day in its name.
    return name_download(Response(page, mimetype="text/html"), f"day-list-{day.isoformat()}.html")


@bp.get("/patients")
@login_required
def patients() -> str:
    """Find a patient by name (wildcards, accents ignored), ID or birth date."""
    g.patient_data = True
    # Control characters are ignored: "%00" alone is no search at all.
    text = patient_search.printable_text(request.args.get("q", ""))
    birth_text = patient_search.printable_text(request.args.get("birth_date", ""))
    errors: dict[str, str] = {}
    birth = None
    if birth_text:
        birth = parse_local_day(birth_text) or patient_search.parse_birth_date(birth_text)
        if birth is None:
            errors["birth_date"] = _(
                "Please write the date of birth as %(example)s or YYYY-MM-DD.",
                example=format_day(dt.date(1970, 12, 31)),
            )
    found = []
    searched = bool(text or birth_text)
    if searched and not errors:
        found = patient_search.search_patients(services().sessions, text, birth_date=birth)
    return render_template(
        "patients.html",
        q=text,
        birth_date=birth_text,
        found=found,
        searched=searched,
        errors=errors,
    )


def _duration_of(entry: CatalogEntry | None, typed: int | None) -> int:
    if typed:
        return typed
    if entry is not None:
        return entry.duration_minutes
    return services().calendar.default_duration_minutes


def _suggestions(station: str, day: dt.date | None, minutes: int) -> list[dt.datetime]:
    """The next free start times of ``station`` from ``day`` (or now) for ``minutes``."""
    if not station or (day is not None and not FIRST_DAY <= day <= LAST_DAY):
        return []  # no free time is offered on a day no booking may have
    now = dt.datetime.now().replace(second=0, microsecond=0)
    after = max(now, dt.datetime.combine(day, dt.time())) if day else now
    try:
        return services().calendar.next_free(station, after, minutes)
    except NotFound:
        return []


def _render_book(
    form: BookingForm,
    entries: list[CatalogEntry],
    *,
    duplicates: list[Any] | None = None,
    problems: list[str] | None = None,
    clash: bool = False,
    conflicts: dict[str, dict[str, str]] | None = None,
    status: int = 200,
) -> Any:
    code = form.procedure.data or ""
    entry = next((e for e in entries if e.code == code), None)
    station = form.station.data or (entry.default_station if entry else "")
    minutes = _duration_of(entry, form.duration_minutes.data)
    suggestions = _suggestions(station, form.date.data, minutes)
    return (
        render_template(
            "book.html",
            form=form,
            entries=entries,
            duplicates=duplicates or [],
            problems=problems or [],
            clash=clash,
            conflicts=conflicts or {},
            suggestions=suggestions,
            suggestion_station=station,
            suggestion_minutes=minutes,
        ),
        status,
    )


@bp.get("/day.js")
def day_script() -> Response:
    """The day view's reload script: every minute, never while a form is being filled in."""
    return template_script("day.js")


@bp.route("/book", methods=["GET", "POST"])
@login_required
def book() -> Any:
    """Book an exam for an existing patient (``?patient=ID``) or a new one.

    ``station``, ``date``, ``time`` and ``procedure`` pre-fill the form (the week
    view's free time links here). The form offers the next free times of the chosen
    station for the procedure's duration; "Show free slots" and picking one re-show
    the form with what was typed, booking nothing.
    """
    g.patient_data = True
    entries = services().catalog.entries(active_only=True)
    form = BookingForm()
    form.procedure.choices = options(_procedure_choices(entries))
    form.station.choices = options(_station_choices("The procedure's usual station"))
    duplicates: list[Any] = []
    problems: list[str] = []
    known_patient = None
    if request.method == "GET":
        pid = request.args.get("patient", "").strip()
        if pid:
            known_patient = patient_search.get_patient(services().sessions, pid)
            if known_patient is not None:
                family, _sep, given = known_patient.name.split("=", 1)[0].partition("^")
                form.patient_id.data = known_patient.patient_id
                form.family_name.data = family
                form.given_name.data = given.replace("^", " ").strip()
                form.birth_date.data = known_patient.birth_date
                form.sex.data = known_patient.sex
        try:
            form.date.data = (
                parse_day(request.args.get("date", ""))
                if request.args.get("date")
                else dt.date.today()
            )
        except ValueError:
            form.date.data = dt.date.today()
        if request.args.get("time"):
            with contextlib.suppress(ValueError):
                form.time.data = dt.time.fromisoformat(request.args["time"])
        if request.args.get("station"):
            form.station.data = request.args["station"]
        if request.args.get("procedure"):
            form.procedure.data = request.args["procedure"]
        return _render_book(form, entries)

    pick = request.form.get("pick", "")
    if pick or request.form.get("action") == "slots":
        # Re-show the form with a chosen free time (or the free times), booking nothing.
        if pick:
            try:
                chosen = dt.datetime.fromisoformat(pick)
            except ValueError:
                chosen = None
            if chosen is not None:
                form.date.data, form.time.data = chosen.date(), chosen.time()
                form.date.raw_data = form.time.raw_data = None  # show the data, not the input
        form.date.errors = []
        return _render_book(form, entries)

    valid = form.validate_on_submit()
    code = form.procedure.data or ""
    entry = next((e for e in entries if e.code == code), None)
    if code and entry is None:
        form.procedure.errors = [
            *form.procedure.errors,
            _("Please choose a procedure from the list."),
        ]
        valid = False
    if entry is None and not (form.modality.data or "").strip():
        form.modality.errors = [
            *form.modality.errors,
            _("Please choose a procedure, or type the modality (e.g. CR)."),
        ]
        valid = False
    pid = (form.patient_id.data or "").strip()
    family = (form.family_name.data or "").strip()
    given = (form.given_name.data or "").strip()
    name = f"{family}^{given}" if given else family
    if valid:
        existing = patient_search.get_patient(services().sessions, pid) if pid else None
        if existing is None and not form.confirm_new_patient.data:
            duplicates = patient_search.likely_duplicates(
                services().sessions, name, form.birth_date.data, exclude_patient_id=pid
            )
            if duplicates:
                valid = False
    if not valid:
        return _render_book(form, entries, duplicates=duplicates, problems=problems, status=422)

    start = dt.datetime.combine(form.date.data, form.time.data)
    raw: dict[str, Any] = {
        "patient_id": pid or patient_search.new_patient_id(),
        "patient_name": name,
        "patient_birth_date": form.birth_date.data.isoformat() if form.birth_date.data else "",
        "patient_sex": form.sex.data or "",
        "modality": entry.modality if entry else (form.modality.data or "").strip().upper(),
        "station_ae_title": form.station.data or (entry.default_station if entry else ""),
        "scheduled_start": start.strftime("%Y-%m-%dT%H:%M"),
        "duration_minutes": str(_duration_of(entry, form.duration_minutes.data)),
        "procedure_description": entry.description if entry else (form.description.data or ""),
        "procedure_code": procedure_code(entry).as_dict() if entry else None,
        "referring_physician": person_name_from_input(form.referring_physician.data or ""),
        "priority": form.priority.data or "",
        "notes": form.notes.data or "",
    }
    try:
        proc = services().scheduler.book(
            raw,
            actor=actor(),
            update_patient=bool(form.update_patient.data),
            refuse_overlaps=not form.allow_overlap.data,
        )
    except ValidationError as exc:
        problems = _add_errors(form, exc.errors, BOOKING_FIELDS)
        return _render_book(form, entries, duplicates=duplicates, problems=problems, status=422)
    except PatientConflict as exc:
        # One patient ID is one person: show stored and typed details side by side and
        # let the user say whether the stored ones are to change.
        return _render_book(
            form,
            entries,
            duplicates=duplicates,
            problems=[_("This patient ID is stored with other details: see below.")],
            conflicts=exc.conflicts,
            status=409,
        )
    except OverlapError as exc:
        return _render_book(
            form,
            entries,
            duplicates=duplicates,
            problems=overlap_problems(exc.procedure_ids),
            clash=True,
            status=409,
        )
    flash(_("Booked. Accession number %(accession)s.", accession=proc.accession_number), "success")
    return redirect(url_for("frontdesk.procedure", procedure_id=proc.id))


def _load(procedure_id: int) -> Procedure:
    try:
        return services().scheduler.get(procedure_id)
    except NotFound:
        abort(404, _("There is no such booking."))


def _reschedule_form(proc: Procedure) -> RescheduleForm:
    form = RescheduleForm()
    form.station.choices = options(_station_choices("Keep the station"))
    return form


def _render_procedure(
    proc: Procedure,
    reschedule: RescheduleForm | None = None,
    cancel: CancelForm | None = None,
    problems: list[str] | None = None,
    status: int = 200,
    clash: bool = False,
    confirm: tuple[str, str] | None = None,
) -> Any:
    problems = list(problems or [])
    if cancel is not None and cancel.errors and not problems:
        problems.append(_("The exam is not cancelled yet: please say why (below)."))
    if reschedule is not None and reschedule.errors and not problems:
        problems.append(_("The booking is not changed yet: please see the fields marked below."))
    if reschedule is None:
        reschedule = _reschedule_form(proc)
        reschedule.station.data = proc.station_ae_title
        reschedule.date.data = proc.scheduled_start.date()
        reschedule.time.data = proc.scheduled_start.time()
        reschedule.duration_minutes.data = proc.duration_minutes
        reschedule.referring_physician.data = readable_name(proc.referring_physician)
        reschedule.priority.data = proc.priority
        reschedule.notes.data = proc.notes
    return (
        render_template(
            "procedure.html",
            proc=proc,
            reschedule=reschedule,
            cancel=cancel or CancelForm(formdata=None),
            problems=problems,
            confirm=confirm,
            undo_to=services().scheduler.can_undo(proc.id),
            is_future=proc.scheduled_start.date() > dt.date.today(),
            can_change=proc.status in ACTIVE_STATUSES,
            can_cancel=proc.status in (ProcedureStatus.SCHEDULED, ProcedureStatus.ARRIVED),
            end=booking_end(proc.scheduled_start, proc.duration_minutes),
            clash=clash,
            can_mark_not_attended=proc.status == ProcedureStatus.SCHEDULED
            and proc.scheduled_start <= dt.datetime.now(),
            off_worklist=proc.status == ProcedureStatus.SCHEDULED
            and proc.scheduled_start < stale_cutoff(_past_days()),
            status_actions=STATUS_ACTIONS.get(proc.status, []),
            button=EmptyForm(formdata=None),
            performed=_performed().for_procedure(proc.id),
            series_count=series_count,
        ),
        status,
    )


@bp.get("/procedures/<int:procedure_id>")
@login_required
def procedure(procedure_id: int) -> Any:
    """One booking, with its slip, reschedule and cancel forms."""
    g.patient_data = True
    return _render_procedure(_load(procedure_id))


@bp.post("/procedures/<int:procedure_id>/reschedule")
@login_required
def reschedule(procedure_id: int) -> Any:
    """Move a booking or change its referring physician, priority or notes."""
    g.patient_data = True
    proc = _load(procedure_id)
    form = _reschedule_form(proc)
    if not form.validate_on_submit():
        return _render_procedure(proc, reschedule=form, status=422)
    start = dt.datetime.combine(form.date.data, form.time.data)
    raw = {
        "scheduled_start": start.strftime("%Y-%m-%dT%H:%M"),
        "referring_physician": person_name_from_input(form.referring_physician.data or ""),
        "priority": form.priority.data or "",
        "notes": form.notes.data or "",
    }
    if form.station.data:
        raw["station_ae_title"] = form.station.data
    if form.duration_minutes.data:
        raw["duration_minutes"] = str(form.duration_minutes.data)
    mapping = {
        "duration_minutes": "duration_minutes",
        "scheduled_start": "date",
        "station_ae_title": "station",
        "referring_physician": "referring_physician",
        "priority": "priority",
        "notes": "notes",
    }
    try:
        proc = services().scheduler.update(
            procedure_id, raw, actor=actor(), refuse_overlaps=not form.allow_overlap.data
        )
    except ValidationError as exc:
        problems = _add_errors(form, exc.errors, mapping)
        return _render_procedure(proc, reschedule=form, problems=problems, status=422)
    except OverlapError as exc:
        return _render_procedure(
            proc,
            reschedule=form,
            problems=overlap_problems(exc.procedure_ids),
            status=409,
            clash=True,
        )
    except TransitionError:
        return _render_procedure(
            proc, reschedule=form, problems=[_("This booking can no longer change.")], status=409
        )
    flash(_("The booking is changed."), "success")
    return redirect(url_for("frontdesk.procedure", procedure_id=proc.id))


@bp.post("/procedures/<int:procedure_id>/cancel")
@login_required
def cancel(procedure_id: int) -> Any:
    """Cancel a booking with a reason; it leaves the modalities' worklist at once."""
    g.patient_data = True
    proc = _load(procedure_id)
    form = CancelForm()
    if not form.validate_on_submit():
        return _render_procedure(proc, cancel=form, status=422)
    try:
        proc = services().scheduler.cancel(procedure_id, form.reason.data or "", actor=actor())
    except ValidationError as exc:
        problems = _add_errors(form, exc.errors, {"reason": "reason"})
        return _render_procedure(proc, cancel=form, problems=problems, status=422)
    except TransitionError:
        return _render_procedure(
            proc,
            cancel=form,
            problems=[_("Only a booked (or checked-in) exam can be cancelled.")],
            status=409,
        )
    flash(_("Cancelled: %(accession)s.", accession=proc.accession_number), "success")
    return redirect(url_for("frontdesk.day", date=proc.scheduled_start.date().isoformat()))


@bp.post("/procedures/<int:procedure_id>/not-attended")
@login_required
def not_attended(procedure_id: int) -> Any:
    """Mark an exam whose time has passed as not attended (cancelled with that reason).

    Offered for the "not done" exams of the day view (still scheduled after their day
    left the worklist) and on the page of any booked exam whose time has passed.
    """
    g.patient_data = True
    proc = _load(procedure_id)
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400, _("The form has expired; please try again."))
    try:
        proc = Attendance(services().scheduler).mark_not_attended(procedure_id, actor())
    except TransitionError:
        return _render_procedure(
            proc,
            problems=[_("Only a booked exam whose time has passed can be marked not attended.")],
            status=409,
        )
    flash(_("Not attended: %(accession)s.", accession=proc.accession_number), "success")
    back = request.form.get("date", "").strip()
    try:
        day = parse_day(back) if back else proc.scheduled_start.date()
    except ValueError:
        day = proc.scheduled_start.date()
    return redirect(url_for("frontdesk.day", date=day.isoformat()))


#: Status moves offered as buttons (for modalities that do not report MPPS).
STATUS_ACTIONS = {
    ProcedureStatus.SCHEDULED.value: [
        (ProcedureStatus.ARRIVED.value, _l("Arrived")),
        (ProcedureStatus.IN_PROGRESS.value, _l("Exam started")),
    ],
    ProcedureStatus.ARRIVED.value: [(ProcedureStatus.IN_PROGRESS.value, _l("Exam started"))],
    ProcedureStatus.IN_PROGRESS.value: [
        (ProcedureStatus.COMPLETED.value, _l("Exam done")),
        (ProcedureStatus.DISCONTINUED.value, _l("Exam stopped")),
    ],
}
#: Moves that end the exam: asked again before they are made.
CONFIRMED_MOVES = {
    ProcedureStatus.COMPLETED.value: _l(
        "Mark this exam as done? It leaves the modalities' worklist."
    ),
    ProcedureStatus.DISCONTINUED.value: _l(
        "Mark this exam as stopped before it was finished? It leaves the modalities' worklist."
    ),
}


@bp.post("/procedures/<int:procedure_id>/status")
@login_required
def status(procedure_id: int) -> Any:
    """Move a booking on (started, done, stopped) by hand.

    Only on the booking's day or later; "done" and "stopped" are asked again first
    (``confirm=1`` makes the move), and a move can be undone for a while afterwards.
    """
    g.patient_data = True
    proc = _load(procedure_id)
    form = EmptyForm()
    target = request.form.get("status", "")
    allowed = [value for value, _label in STATUS_ACTIONS.get(proc.status, [])]
    refused = _("This booking cannot move to that status.")
    if not form.validate_on_submit() or target not in allowed:
        return _render_procedure(proc, problems=[refused], status=409)
    if proc.scheduled_start.date() > dt.date.today():
        return _render_procedure(
            proc,
            problems=[
                _(
                    "This exam is booked for %(day)s: it can be started, done or stopped "
                    "on that day, not before.",
                    day=format_day(proc.scheduled_start),
                )
            ],
            status=409,
        )
    if target in CONFIRMED_MOVES and request.form.get("confirm") != "1":
        return _render_procedure(proc, confirm=(target, str(CONFIRMED_MOVES[target])))
    try:
        proc = services().scheduler.set_status(procedure_id, target, actor=actor())
    except TransitionError:
        return _render_procedure(proc, problems=[refused], status=409)
    flash(_("Status: %(status)s.", status=status_label(proc.status)), "success")
    return redirect(url_for("frontdesk.procedure", procedure_id=proc.id))


@bp.post("/procedures/<int:procedure_id>/arrive")
@login_required
def arrive(procedure_id: int) -> Any:
    """Check the patient in (``ARRIVED``); back to ``next`` (the day view) or the booking."""
    g.patient_data = True
    proc = _load(procedure_id)
    form = EmptyForm()
    back = safe_next(url_for("frontdesk.procedure", procedure_id=procedure_id))
    if not form.validate_on_submit():
        abort(400, _("The form has expired; please try again."))
    try:
        proc = services().scheduler.arrive(procedure_id, actor=actor())
    except TransitionError:
        flash(
            _(
                "%(name)s cannot be checked in: the exam is %(status)s.",
                name=readable_name(proc.patient.name),
                status=STATUS_WORDS.get(proc.status, proc.status),
            ),
            "error",
        )
        return redirect(back)
    flash(_("Checked in: %(name)s.", name=readable_name(proc.patient.name)), "success")
    return redirect(back)


#: Statuses in words, for messages.
STATUS_WORDS = {
    "SCHEDULED": _l("booked"),
    "ARRIVED": _l("already checked in"),
    "IN_PROGRESS": _l("in progress"),
    "COMPLETED": _l("done"),
    "DISCONTINUED": _l("stopped"),
    "CANCELLED": _l("cancelled"),
}


@bp.post("/procedures/<int:procedure_id>/undo")
@login_required
def undo(procedure_id: int) -> Any:
    """Take back the last status move made by hand (within half an hour, without MPPS)."""
    g.patient_data = True
    proc = _load(procedure_id)
    if not EmptyForm().validate_on_submit():
        abort(400, _("The form has expired; please try again."))
    moved = services().scheduler.undo_status(procedure_id, actor())
    if moved is None:
        return _render_procedure(
            proc, problems=[_("This status change can no longer be undone.")], status=409
        )
    flash(_("Undone. Status: %(status)s.", status=status_label(moved.status)), "success")
    return redirect(url_for("frontdesk.procedure", procedure_id=procedure_id))


@bp.get("/procedures/<int:procedure_id>/slip.pdf")
@login_required
def slip(procedure_id: int) -> Response:
    """The appointment slip as a PDF, the accession number as a barcode."""
    g.patient_data = True
    proc = _load(procedure_id)
    station = next(
        (s for s in services().catalog.stations() if s.ae_title == proc.station_ae_title), None
    )
    pdf = appointment_slip(
        proc,
        station,
        clinic=ClinicHeader.from_settings(current_app.config["CLINIC_SETTINGS"]),
        preparation=services().catalog.preparation_for(proc.procedure_description, proc.modality),
    )
    return name_download(
        Response(pdf, mimetype="application/pdf"), f"slip-{proc.accession_number}.pdf"
    )


def _attach_choices(steps: Sequence[PerformedStep]) -> dict[int, list[Procedure]]:
    """For each unlinked step, the bookings it may belong to: its day, its station.

    Bounded on purpose: a page never lists every booking once per step.
    """
    out: dict[int, list[Procedure]] = {}
    for step in steps:
        if step.started_at is None:
            continue
        station = step.station_ae_title or step.calling_ae_title
        day_rows = services().scheduler.list_procedures(step.started_at.date())
        out[step.id] = [
            p
            for p in day_rows
            if p.station_ae_title == station and p.status != ProcedureStatus.CANCELLED
        ][:ATTACH_CHOICES]
    return out


@bp.get("/exams-without-booking")
@login_required
def unlinked_exams() -> Any:
    """Every exam a modality reported without a booking, a page at a time."""
    g.patient_data = True
    per_page = 20
    total = _performed().count_unlinked()
    pages = max(1, -(-total // per_page))
    try:
        asked = int(request.args.get("page", "1"))
    except ValueError:
        asked = 1
    page = min(max(asked, 1), pages)
    steps = list(_performed().unlinked(limit=per_page, offset=(page - 1) * per_page))
    return render_template(
        "unlinked.html",
        steps=steps,
        choices=_attach_choices(steps),
        total=total,
        page=page,
        pages=pages,
        button=EmptyForm(formdata=None),
        series_count=series_count,
    )


@bp.post("/performed-steps/<int:step_id>/attach")
@login_required
def attach_step(step_id: int) -> Any:
    """Attach an exam done without a booking (an unlinked MPPS step) to a booking.

    The booking is named by accession number or picked from the day's list; the
    booking then follows the step's status. Audited with the signed-in user.
    """
    g.patient_data = True
    form = EmptyForm()
    try:
        back: dt.date | None = parse_day(request.form.get("date", ""))
    except ValueError:
        back = None
    here = (
        url_for("frontdesk.day", date=back.isoformat())
        if back
        else url_for("frontdesk.unlinked_exams")
    )
    if not form.validate_on_submit():
        abort(400, _("The form has expired; please try again."))
    accession = request.form.get("accession_number", "").strip()
    choice = request.form.get("procedure_id", "").strip()
    target: int | None = None
    if accession:
        proc = PrintLinks(services().sessions).booking_by_accession(accession)
        if proc is None:
            flash(
                _("No booking has the accession number %(accession)s.", accession=accession),
                "error",
            )
            return redirect(here)
        target = proc.id
    else:
        target = parse_id(choice)
    if target is None:
        flash(_("Please type an accession number or pick a booking."), "error")
        return redirect(here)
    try:
        _performed().attach(step_id, target, actor())
    except NotFound:
        abort(404, _("There is no such exam or booking."))
    flash(_("The exam is attached to the booking."), "success")
    return redirect(url_for("frontdesk.procedure", procedure_id=target))
