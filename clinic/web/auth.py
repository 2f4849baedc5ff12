"""Sign in and sign out."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_user, logout_user

from clinic.domain.errors import AccountDeactivated
from clinic.web.forms import EmptyForm, LoginForm
from clinic.web.params import local_path
from clinic.web.security import SESSION_ID_KEY, LoginThrottle, WebUser, actor, login_required
from clinic.web.services import services

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


def _safe_next(target: str | None) -> str:
    """Only follow a ``next`` that is a path on this site (else the day view)."""
    return local_path(target) or url_for("frontdesk.day")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the sign-in form; sign the user in with a fresh session."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("frontdesk.day"))
    form = LoginForm()
    throttle: LoginThrottle = services().throttle
    address = request.remote_addr or "?"
    error = None
    status = 200
    if form.validate_on_submit():
        name = (form.name.data or "").strip()
        accounts = services().accounts
        throttle.unlocked(name, accounts.unlocked_at(name))
        # One step: check the limits and count this attempt (taken back on success).
        wait, stamp = throttle.begin(name, address)
        if wait:
            minutes = max(1, (wait + 59) // 60)
            error = ngettext(
                "Too many failed sign-ins. Please wait %(num)d minute and try again.",
                "Too many failed sign-ins. Please wait %(num)d minutes and try again.",
                minutes,
            )
            status = 429
        else:
            try:
                user = accounts.authenticate(name, form.password.data or "")
            except AccountDeactivated:
                error = _(
                    "Your account is deactivated. Please ask an administrator to activate it."
                )
                status = 403
            else:
                if user is None:
                    log.info("failed sign-in from %s", address)
                    error = _("The user name or password is not right.")
                    status = 401
                else:
                    throttle.succeeded(name, address, stamp)
                    target = _safe_next(request.args.get("next"))
                    session.clear()  # a new session at every sign-in
                    lifetime = current_app.permanent_session_lifetime
                    login_user(WebUser(user))
                    session[SESSION_ID_KEY] = accounts.start_session(user.id, lifetime)
                    session.permanent = True
                    return redirect(target)
    elif request.method == "POST":
        status = 400
    return render_template("login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    """Sign out (a POST with the CSRF token) and forget the session."""
    form = EmptyForm()
    if not form.validate_on_submit():
        return redirect(url_for("frontdesk.day"))
    # Every session of this user ends, here and in any other browser or copied cookie.
    services().accounts.end_sessions(current_user.id, actor(), "sign-out")
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
