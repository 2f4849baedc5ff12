"""The web door: the front desk application and its REST API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from importlib import resources
from typing import Any

from flask import (
    Flask,
    Response,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from jinja2.bccache import Bucket, BytecodeCache
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.exceptions import HTTPException

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.domain.calendar import Calendar
from clinic.domain.catalog import Catalog
from clinic.domain.print_jobs import PrintDesk
from clinic.web import i18n
from clinic.web.display import STATUS_LABELS, readable_name
from clinic.web.forms import PRIORITY_LABELS
from clinic.web.params import IdConverter, TextConverter, TextPathConverter
from clinic.web.security import (
    SESSION_ID_KEY,
    LoginThrottle,
    TlsAwareSessionInterface,
    WebUser,
    load_secret_key,
)
from clinic.web.services import EXTENSION, Services

#: How long browsers keep to HTTPS after seeing it (Strict-Transport-Security).
HSTS_SECONDS = 365 * 24 * 3600

#: The tab icon: a white cross on the front desk's blue (SVG, served as /favicon.ico).
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#0b5cad"/>'
    '<path d="M13 6h6v7h7v6h-7v7h-6v-7H6v-6h7z" fill="#fff"/></svg>'
)


#: Error pages' titles and, where the view gave none, their message, in the page's language.
ERROR_TITLES = {
    400: _l("Bad request"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Not allowed this way"),
    413: _l("Too large"),
    429: _l("Too many requests"),
    500: _l("Something went wrong"),
}
ERROR_MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("This page is for administrators."),
    404: _l("There is no such page."),
    405: _l("This address does not take this kind of request."),
    413: _l("The upload is too large (2 MiB at most)."),
    429: _l("Please wait a moment and try again."),
    500: _l("Please try again; if it happens again, tell your administrator."),
}


def templates_folder() -> str:
    """Where the Jinja templates are: the ``clinic.templates`` package's folder.

    The project keeps them in the top-level ``templates/`` folder, which the package
    maps onto ``clinic.templates``, so the same lookup works installed or editable.
    """
    return str(resources.files("clinic.templates"))


class _CompiledTemplates(BytecodeCache):
    """Compiled templates kept in memory, shared by every app this process builds.

    Jinja checks each entry against the template's source, so an edited template is
    compiled again. One service builds one app; the test suite builds hundreds, and
    compiling the same templates for each was a fifth of its web tests' time.
    """

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED_TEMPLATES = _CompiledTemplates()


def is_api_request() -> bool:
    """Whether the current request is for the REST API (JSON answers)."""
    return request.path.startswith("/api/") or request.path == "/api"


def create_app(
    settings: Settings,
    scheduler: Scheduler,
    *,
    secret_key: str | None = None,
    login_throttle: LoginThrottle | None = None,
    reprint: Callable[[int, str], object] | None = None,
    refile: Callable[[int], object] | None = None,
    print_desk: PrintDesk | None = None,
    testing: bool = False,
) -> Flask:
    """Build the Flask application.

    Parameters
    ----------
    settings : Settings
        The service's configuration.
    scheduler : Scheduler
        The domain service every view goes through; its session factory also
        serves accounts, the catalog and the read-only pages.
    secret_key : str, optional
        The key that signs sessions and CSRF tokens; by default one is made once
        and kept in ``settings.data_dir`` (file mode 0600).
    login_throttle : LoginThrottle, optional
        Failed sign-in counter (a fresh one by default).
    reprint : callable, optional
        Queues a print job again given its id and who asks (audited in the same
        transaction) and returns something true when the job exists; without it the
        print-jobs page offers no reprint.
    refile : callable, optional
        Files a printed job's PDF again (new name and metadata, nothing printed)
        after the front desk changed its patient link.
    print_desk : PrintDesk, optional
        The hold queue (release, discard) and "send again" to the archive; without
        it the print-jobs page offers neither.
    testing : bool
        Flask's testing mode.

    Returns
    -------
    Flask
        The application, ready for a WSGI server.
    """
    app = Flask(__name__, template_folder=templates_folder())
    app.config.update(
        SECRET_KEY=secret_key or load_secret_key(settings.data_dir),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Over HTTPS (the web door's own TLS) cookies never travel in clear text.
        SESSION_COOKIE_SECURE=bool(settings.web_tls_cert),
        REMEMBER_COOKIE_SECURE=bool(settings.web_tls_cert),
        SESSION_COOKIE_NAME="clinic_session",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        REMEMBER_COOKIE_DURATION=dt.timedelta(seconds=0),
        WTF_CSRF_TIME_LIMIT=12 * 3600,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        TESTING=testing,
    )
    app.session_interface = TlsAwareSessionInterface()
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["CLINIC_SETTINGS"] = settings
    session_factory = scheduler.session_factory
    app.extensions[EXTENSION] = Services(
        settings=settings,
        sessions=session_factory,
        scheduler=scheduler,
        accounts=Accounts(session_factory),
        catalog=Catalog(session_factory),
        calendar=Calendar(session_factory, settings.opening, settings.default_duration_minutes),
        throttle=login_throttle or LoginThrottle(),
        reprint=reprint,
        refile=refile,
        print_desk=print_desk,
    )

    # Ids past what the store holds match no route: 404, never a failing query.
    app.url_map.converters["int"] = IdConverter
    # Text with a control character (a NUL: PostgreSQL refuses it) matches no route either.
    app.url_map.converters["default"] = app.url_map.converters["string"] = TextConverter
    app.url_map.converters["path"] = TextPathConverter
    i18n.init_app(app)
    csrf = CSRFProtect(app)
    login = LoginManager(app)
    login.login_view = "auth.login"
    login.login_message = _l("Please sign in to see this page.")
    login.session_protection = "basic"

    def load_user(user_id: str) -> WebUser | None:
        # The cookie names the session; the database says whether it is still open.
        try:
            wanted = int(user_id)
        except ValueError:
            return None
        sid = session.get(SESSION_ID_KEY, "")
        user = app.extensions[EXTENSION].accounts.session_user(
            sid if isinstance(sid, str) else "", wanted, app.permanent_session_lifetime
        )
        if user is None:
            session.clear()  # an ended session: the cookie signs no one in any more
            return None
        return WebUser(user)

    def unauthorized() -> Any:
        if is_api_request():
            return _json_error(401, "authentication required: send Authorization: Bearer TOKEN")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))

    login.user_loader(load_user)
    login.unauthorized_handler(unauthorized)

    from clinic.web import admin, api, auth, calendar, frontdesk, printjobs

    app.register_blueprint(auth.bp)
    app.register_blueprint(frontdesk.bp)
    app.register_blueprint(calendar.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(printjobs.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)

    app.jinja_env.bytecode_cache = _COMPILED_TEMPLATES
    app.jinja_env.filters["pn"] = readable_name
    app.jinja_env.globals["STATUS_LABELS"] = STATUS_LABELS
    app.jinja_env.globals["PRIORITY_LABELS"] = PRIORITY_LABELS

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {
            "settings": settings,
            "today": dt.date.today(),
            "url_endpoints": app.view_functions.keys(),
        }

    @app.before_request
    def drop_nul_characters() -> None:
        # No text column can hold a NUL (PostgreSQL refuses it, SQLite's LIKE stops at
        # it): dropped from query strings and forms before any view reads them.
        request.args = without_nul(request.args)
        if request.method == "POST" and request.mimetype in FORM_TYPES:
            request.form = without_nul(request.form)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(
            FAVICON, mimetype="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        if request.is_secure:
            # Browsers that saw HTTPS here once never try plain HTTP again for a year.
            response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_SECONDS}")
        if getattr(g, "patient_data", False) or request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        return (
            render_template(
                "error.html",
                code=400,
                title=_("The form has expired"),
                message=_("Please go back, reload the page and try again."),
            ),
            400,
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        if is_api_request():
            return _json_error(code, exc.description or exc.name)
        title = ERROR_TITLES.get(code, exc.name)
        message = exc.description
        if message == type(exc).description:  # Werkzeug's own English words
            message = ERROR_MESSAGES.get(code, message)
        return (
            render_template("error.html", code=code, title=title, message=message),
            code,
        )

    return app


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def without_nul(values: MultiDict[str, str]) -> ImmutableMultiDict[str, str]:
    """``values`` with NUL characters removed from every key and value."""
    if not any("\x00" in k or "\x00" in v for k, v in values.items(multi=True)):
        return values if isinstance(values, ImmutableMultiDict) else ImmutableMultiDict(values)
    return ImmutableMultiDict(
        [(k.replace("\x00", ""), v.replace("\x00", "")) for k, v in values.items(multi=True)]
    )


def _json_error(code: int, message: str, errors: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"error": message}
    if errors is not None:
        body["errors"] = errors
    return jsonify(body), code
