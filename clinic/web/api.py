"""The REST API of INTERFACE.md: JSON in and out, bearer token or sign-in session.

Writes go through the domain (:class:`clinic.domain.bookings.Scheduler`), which audits
them with the user's name (``api:NAME`` for a token, ``web:NAME`` for a session).
Bad input answers 400 (not JSON, bad query parameters) or 422 (bad fields), with
``errors`` naming each offending field; nothing is written then.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, g, jsonify, request, send_file, url_for
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError as CsrfInvalid

from clinic.domain import patient_record
from clinic.domain.errors import (
    NotFound,
    OverlapError,
    PatientConflict,
    TransitionError,
    ValidationError,
)
from clinic.domain.fields import MAX_DURATION_MINUTES, procedure_to_dict
from clinic.domain.patients import likely_duplicates, merge_patients
from clinic.domain.print_jobs import DeskRefusal, PrintDesk, get_job, job_to_dict, list_jobs, pdf_of
from clinic.domain.vr import parse_date
from clinic.store.models import PrintJob
from clinic.web.downloads import name_download
from clinic.web.openapi import openapi_document
from clinic.web.params import parse_day
from clinic.web.services import services

bp = Blueprint("api", __name__, url_prefix="/api")

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 10_000
_PUBLIC_ENDPOINTS = ("api.openapi",)
#: Methods that change nothing: a browser session may use them without a CSRF token.
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
#: The header a page's script sends the CSRF token in (the token of the page's forms).
CSRF_HEADER = "X-CSRFToken"


class ApiError(Exception):
    """An error answered as JSON: status, message and per-field errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Any:
    body: dict[str, Any] = {"error": exc.message}
    if exc.errors is not None:
        body["errors"] = exc.errors
    response = jsonify(body)
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="clinic"'
    return response


@bp.errorhandler(ValidationError)
def _validation_error(exc: ValidationError) -> Any:
    return _api_error(ApiError(422, "invalid input", exc.errors))


@bp.errorhandler(PatientConflict)
def _patient_conflict(exc: PatientConflict) -> Any:
    response = jsonify(
        {
            "error": "the patient ID is stored with other details; "
            'send "update_patient": true to change them',
            "conflicts": exc.conflicts,
        }
    )
    response.status_code = 409
    return response


def _pop_flag(data: dict[str, Any], name: str) -> bool:
    """Remove the request option ``name`` from a booking body and return it (422 if not bool)."""
    value = data.pop(name, False)
    if not isinstance(value, bool):
        raise ApiError(422, "invalid input", {name: "must be true or false"})
    return value


@bp.errorhandler(TransitionError)
def _transition_error(exc: TransitionError) -> Any:
    return _api_error(ApiError(409, str(exc), {"status": str(exc)}))


@bp.errorhandler(OverlapError)
def _overlap_error(exc: OverlapError) -> Any:
    response = jsonify(
        {
            "error": 'the station is taken at that time; send "allow_overlap": true to book '
            "it anyway",
            "overlaps": exc.procedure_ids,
        }
    )
    response.status_code = 409
    return response


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return _api_error(ApiError(404, "not found"))


@bp.errorhandler(DeskRefusal)
def _desk_refusal(exc: DeskRefusal) -> Any:
    return _api_error(ApiError(409, str(exc)))


@bp.before_request
def authenticate() -> None:
    """Find who calls: a bearer token first, else the browser's session; 401 if neither."""
    if request.endpoint in _PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "authentication required: send Authorization: Bearer TOKEN")
        user = services().accounts.user_for_token(token.strip())
        if user is None:
            raise ApiError(401, "the token is not valid")
        g.api_actor = f"api:{user.name}"
        g.api_admin = user.role == "admin"
        return
    if current_user.is_authenticated:
        if request.method not in SAFE_METHODS:
            check_csrf_header()
        g.api_actor = f"web:{current_user.name}"
        g.api_admin = bool(getattr(current_user, "is_admin", False))
        return
    raise ApiError(401, "authentication required: send Authorization: Bearer TOKEN")


def check_csrf_header() -> None:
    """Refuse (403) a write signed in only by the session cookie without the CSRF token.

    Another page the browser has open could otherwise send the cookie along with a
    form post of its own; the token is only on this site's pages.

    Raises
    ------
    ApiError
        403, naming the header, when the token is missing or not valid.
    """
    token = request.headers.get(CSRF_HEADER, "")
    if not token:
        raise ApiError(
            403,
            f"CSRF token missing: with the browser's session, send the page's CSRF token "
            f"in the {CSRF_HEADER} header (or use Authorization: Bearer TOKEN)",
            {CSRF_HEADER: "is required with a session cookie"},
        )
    try:
        validate_csrf(token)
    except CsrfInvalid:
        raise ApiError(
            403,
            "CSRF token not valid: reload the page and send its token",
            {CSRF_HEADER: "is not valid for this session"},
        ) from None


def _unicode(*values: Any) -> bool:
    """Whether ``values`` (JSON data) hold only text that UTF-8 can encode."""
    try:
        json.dumps(values, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_nul(*values: Any) -> bool:
    """Whether ``values`` (JSON data) hold a NUL character in any string, keys included."""
    # In JSON text a NUL is the escape \u0000 after an even number of backslashes.
    return _JSON_NUL.search(json.dumps(values)) is not None


def json_object() -> dict[str, Any]:
    """The request's JSON object body; :class:`ApiError` 400/422 when it is not one."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # arrays or objects nested thousands deep
        data = None
    if data is None:
        raise ApiError(
            400,
            "the body must be a JSON object sent as application/json",
            {"body": "must be a JSON object (Content-Type: application/json)"},
        )
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", {"body": "must be a JSON object"})
    # A "\ud800" escape decodes to a lone surrogate, which no store can hold.
    broken = {str(k): "is not valid Unicode text" for k, v in data.items() if not _unicode(k, v)}
    # No text column holds a NUL (PostgreSQL refuses it): refused here, for every field.
    broken.update(
        {
            str(k).replace("\x00", ""): "must not contain a NUL character"
            for k, v in data.items()
            if str(k) not in broken and _has_nul(k, v)
        }
    )
    if broken:
        raise ApiError(422, "invalid input", broken)
    return data


def int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad query parameter", {name: "must be a whole number"}) from None
    if not low <= value <= high:
        raise ApiError(400, "bad query parameter", {name: f"must be between {low} and {high}"})
    return value


def page_links(endpoint: str, limit: int, offset: int, more: bool, **params: Any) -> str:
    links = []
    if more:
        url = url_for(endpoint, limit=limit, offset=offset + limit, **params)
        links.append(f'<{url}>; rel="next"')
    if offset > 0:
        url = url_for(endpoint, limit=limit, offset=max(0, offset - limit), **params)
        links.append(f'<{url}>; rel="prev"')
    return ", ".join(links)


@bp.get("/procedures")
def list_procedures() -> Response:
    """List bookings by start time; ``date`` filters one day; ``limit``/``offset`` page.

    The body is a JSON list; a ``Link`` header with ``rel="next"`` says more remain.
    """
    day_text = request.args.get("date", "").strip()
    params: dict[str, Any] = {}
    day = None
    if day_text:
        try:
            day = parse_day(day_text)
        except ValueError as exc:
            raise ApiError(400, "bad query parameter", {"date": str(exc)}) from None
        params["date"] = day.isoformat()
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_arg("offset", 0, 0, 10**9)
    rows = services().scheduler.list_procedures(day, offset=offset, limit=limit + 1)
    more = len(rows) > limit
    response = jsonify([procedure_to_dict(p) for p in rows[:limit]])
    link = page_links("api.list_procedures", limit, offset, more, **params)
    if link:
        response.headers["Link"] = link
    return response


@bp.post("/procedures")
def create_procedure() -> Any:
    """Book an exam; 201 with the booking (identifiers generated where absent).

    409 with ``conflicts`` when the patient ID is stored with another name, birth
    date or sex, unless the body says ``"update_patient": true``; 409 with
    ``overlaps`` when the station is taken then, unless ``"allow_overlap": true``.
    """
    data = json_object()
    update_patient = _pop_flag(data, "update_patient")
    allow_overlap = _pop_flag(data, "allow_overlap")
    proc = services().scheduler.book(
        data,
        actor=g.api_actor,
        update_patient=update_patient,
        refuse_overlaps=not allow_overlap,
    )
    response = jsonify(procedure_to_dict(proc))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_procedure", procedure_id=proc.id)
    return response


@bp.get("/procedures/<int:procedure_id>")
def get_procedure(procedure_id: int) -> Any:
    """One booking."""
    return jsonify(procedure_to_dict(services().scheduler.get(procedure_id)))


@bp.patch("/procedures/<int:procedure_id>")
def update_procedure(procedure_id: int) -> Any:
    """Change some fields of a booking (``id`` and ``status`` are ignored)."""
    data = json_object()
    update_patient = _pop_flag(data, "update_patient")
    allow_overlap = _pop_flag(data, "allow_overlap")
    proc = services().scheduler.update(
        procedure_id,
        data,
        actor=g.api_actor,
        update_patient=update_patient,
        refuse_overlaps=not allow_overlap,
    )
    return jsonify(procedure_to_dict(proc))


@bp.post("/procedures/<int:procedure_id>/arrive")
def arrive_procedure(procedure_id: int) -> Any:
    """Check the patient in: the booking becomes ``ARRIVED`` (409 unless it is booked)."""
    proc = services().scheduler.arrive(procedure_id, actor=g.api_actor)
    return jsonify(procedure_to_dict(proc))


@bp.get("/free-slots")
def free_slots() -> Any:
    """Free time of a station on a day: ``[{"start", "end"}]`` intervals at least
    ``duration`` minutes long, inside opening hours, minus active bookings."""
    errors: dict[str, str] = {}
    station = request.args.get("station", "").strip()
    if not station:
        errors["station"] = "is required"
    day_text = request.args.get("date", "").strip()
    day = None
    if not day_text:
        errors["date"] = "is required (YYYY-MM-DD)"
    else:
        try:
            day = parse_day(day_text)
        except ValueError as exc:
            errors["date"] = str(exc)
    minutes = services().calendar.default_duration_minutes
    try:
        minutes = int_arg("duration", minutes, 1, MAX_DURATION_MINUTES)
    except ApiError as exc:
        errors.update(exc.errors or {})
    if errors or day is None:
        raise ApiError(400, "bad query parameter", errors)
    try:
        slots = services().calendar.free_slots(station, day, minutes)
    except NotFound:
        raise ApiError(404, "no such station", {"station": "is not a known station"}) from None
    return jsonify(
        [
            {"start": a.strftime("%Y-%m-%dT%H:%M"), "end": b.strftime("%Y-%m-%dT%H:%M")}
            for a, b in slots
        ]
    )


@bp.get("/patients/<path:patient_id>")
def get_patient(patient_id: str) -> Any:
    """A patient's details, contact, bookings (past and upcoming) and print jobs."""
    rec = patient_record.record(services().sessions, patient_id)
    return jsonify(patient_record.record_to_dict(rec))


@bp.post("/procedures/<int:procedure_id>/cancel")
def cancel_procedure(procedure_id: int) -> Any:
    """Cancel a booking; an optional JSON body may give ``reason``."""
    reason = ""
    if request.get_data(cache=True):
        data = json_object()
        unknown = sorted(set(data) - {"reason"})
        if unknown:
            raise ApiError(422, "invalid input", {k: "is not a known field" for k in unknown})
        raw = data.get("reason", "")
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            raise ApiError(422, "invalid input", {"reason": "must be text"})
        reason = raw
    proc = services().scheduler.cancel(procedure_id, reason, actor=g.api_actor)
    return jsonify(procedure_to_dict(proc))


@bp.get("/patients/similar")
def similar_patients() -> Any:
    """Stored patients who are probably the person described (before booking a new one).

    ``patient_name`` (DICOM PN) is required, ``patient_birth_date`` (YYYY-MM-DD) optional.
    """
    name = request.args.get("patient_name", "").strip()
    errors: dict[str, str] = {}
    if not name.strip("^= "):
        errors["patient_name"] = "is required"
    born_text = request.args.get("patient_birth_date", "").strip()
    born = None
    if born_text:
        try:
            born = parse_date(born_text)
        except ValueError as exc:
            errors["patient_birth_date"] = str(exc)
    if errors:
        raise ApiError(400, "bad query parameter", errors)
    found = likely_duplicates(services().scheduler.session_factory, name, born)
    return jsonify(
        [
            {
                "patient_id": d.patient_id,
                "patient_name": d.name,
                "patient_birth_date": d.birth_date.isoformat() if d.birth_date else "",
                "patient_sex": d.sex,
                "reasons": list(d.reasons),
            }
            for d in found
        ]
    )


@bp.post("/patients/<patient_id>/merge")
def merge_patient(patient_id: str) -> Any:
    """Merge the patient named in the body (``{"patient_id": ...}``) into ``patient_id``.

    Administrators only (403 otherwise). 200 with the ids of the bookings that moved;
    404 when either patient is unknown.
    """
    if not g.get("api_admin"):
        raise ApiError(403, "only an administrator may merge patients")
    data = json_object()
    other = data.get("patient_id")
    unknown = sorted(set(data) - {"patient_id"})
    errors = {k: "is not a known field" for k in unknown}
    if not isinstance(other, str) or not other.strip():
        errors["patient_id"] = "is required: the patient ID to merge into this one"
    if errors or not isinstance(other, str):
        raise ApiError(422, "invalid input", errors)
    merged = other.strip()
    moved = merge_patients(services().scheduler.session_factory, patient_id, merged, g.api_actor)
    return jsonify({"patient_id": patient_id, "merged_patient_id": merged, "procedures": moved})


# -- print jobs ------------------------------------------------------------------


def _api_desk() -> PrintDesk:
    desk = services().print_desk
    if desk is None:
        raise ApiError(404, "the print service is not running here")
    return desk


def _job_json(job: PrintJob) -> Response:
    """A print job as the API answers it, read afresh (its booking link included)."""
    return jsonify(job_to_dict(get_job(services().sessions, job.id) or job))


@bp.post("/print-jobs/<int:job_id>/release")
def api_release(job_id: int) -> Response:
    """Release a held job: ``{"printer": AE, "copies": N}`` (both optional)."""
    data = json_object()
    desk = _api_desk()
    job = get_job(services().sessions, job_id)
    if job is None:
        raise ApiError(404, "not found")
    printer = data.get("printer", job.printer_ae_title)
    copies = data.get("copies", job.copies)
    errors = {}
    if not isinstance(printer, str):
        errors["printer"] = "must be a printer's AE title"
    if isinstance(copies, bool) or not isinstance(copies, int):
        errors["copies"] = "must be a whole number from 1 to 99"
    if errors:
        raise ApiError(422, "invalid input", errors)
    return _job_json(desk.release(job_id, printer, copies, g.api_actor))


@bp.post("/print-jobs/<int:job_id>/discard")
def api_discard(job_id: int) -> Response:
    """Discard a held job."""
    return _job_json(_api_desk().discard(job_id, g.api_actor))


@bp.post("/print-jobs/<int:job_id>/archive")
def api_archive_again(job_id: int) -> Response:
    """Send a printed job to its printer's archive once more."""
    return _job_json(_api_desk().send_again(job_id, g.api_actor))


@bp.get("/print-jobs")
def api_list() -> Response:
    """Print jobs, newest first; ``limit``/``offset`` page (``Link`` rel=next)."""
    limit = int_arg("limit", 1000, 1, 10_000)
    offset = int_arg("offset", 0, 0, 10**9)
    rows = list_jobs(services().sessions, offset, limit + 1)
    response = jsonify([job_to_dict(j) for j in rows[:limit]])
    link = page_links("api.api_list", limit, offset, len(rows) > limit)
    if link:
        response.headers["Link"] = link
    return response


@bp.get("/print-jobs/<int:job_id>/pdf")
def api_pdf(job_id: int) -> Response:
    """The PDF a print job produced; 404 while it has none."""
    job = get_job(services().sessions, job_id)
    if job is None:
        raise ApiError(404, "not found")
    path = pdf_of(job)
    if path is None:
        raise ApiError(404, f"print job {job_id} has no PDF ({job.status})")
    return name_download(send_file(path, mimetype="application/pdf"), f"print-job-{job_id}.pdf")


@bp.get("/openapi.json")
def openapi() -> Any:
    """The OpenAPI 3 description of this API."""
    return jsonify(openapi_document())
