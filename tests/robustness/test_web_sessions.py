"""The web door's sessions and writes: CSRF proof on the REST API with the browser's
cookie, sessions kept in the database and ended everywhere at once (sign-out, password
change, an administrator's "sign out everywhere"), and a sign-in throttle that parallel
attempts cannot race past."""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.server import ClinicServer
from clinic.store.models import AuditEntry, Procedure, WebSession
from clinic.web import create_app
from tests.support.web import BOOKING, PASSWORD, csrf_token, login, post_form


@pytest.fixture
def app(settings: Settings, scheduler: Scheduler) -> Flask:
    accounts = Accounts(scheduler.session_factory)
    accounts.create_user("alice", "frontdesk", PASSWORD, actor="test")
    accounts.create_user("root", "admin", PASSWORD, actor="test")
    return create_app(settings, scheduler, secret_key="k", testing=True)


def signed_in(app: Flask, name: str = "alice") -> FlaskClient:
    client = app.test_client()
    assert login(client, name).status_code == 302
    return client


def procedures(scheduler: Scheduler) -> int:
    with scheduler.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Procedure)) or 0)


# -- CSRF on the REST API --------------------------------------------------------------


def test_api_writes_with_the_session_cookie_need_the_csrf_header(
    app: Flask, scheduler: Scheduler
) -> None:
    booked = scheduler.book(BOOKING, actor="test")
    client = signed_in(app)
    other = signed_in(app)  # another browser: its token is not this session's
    foreign = csrf_token(other, "/")
    before = procedures(scheduler)
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("post", "/api/procedures", {"json": {**BOOKING, "accession_number": "NEW1"}}),
        ("patch", f"/api/procedures/{booked.id}", {"json": {"notes": "changed"}}),
        ("post", f"/api/procedures/{booked.id}/cancel", {"json": {"reason": "x"}}),
        # What another page in the same browser can send: an empty form post.
        ("post", f"/api/procedures/{booked.id}/cancel", {"data": {}}),
        ("post", "/api/procedures", {"data": {"patient_id": "P9"}}),
        ("post", f"/api/patients/{BOOKING['patient_id']}/merge", {"json": {"patient_id": "P2"}}),
        ("post", "/api/print-jobs/1/release", {"json": {}}),
        ("post", "/api/print-jobs/1/discard", {"json": {}}),
        ("post", "/api/print-jobs/1/archive", {"json": {}}),
        ("post", f"/api/procedures/{booked.id}/arrive", {"json": {}}),
    ]
    for header in (None, "", "garbage", foreign):
        headers = {} if header is None else {"X-CSRFToken": header}
        for method, url, body in attempts:
            answer = getattr(client, method)(url, headers=headers, **body)
            assert answer.status_code == 403, (method, url, header, answer.status_code)
            reply = answer.get_json()
            assert "CSRF" in reply["error"] and "X-CSRFToken" in reply["errors"], reply
    # Nothing was written.
    assert procedures(scheduler) == before
    kept = scheduler.get(booked.id)
    assert kept.status == "SCHEDULED" and kept.notes == ""  # not cancelled, not arrived
    # Reading with the session stays allowed; with the page's token the writes go through.
    assert client.get("/api/procedures").status_code == 200
    assert client.get(f"/api/procedures/{booked.id}").status_code == 200
    token = csrf_token(client, "/")
    assert f'<meta name="csrf-token" content="{token}">' in client.get("/").get_data(as_text=True)
    headers = {"X-CSRFToken": token}
    changed = client.patch(
        f"/api/procedures/{booked.id}", json={"notes": "changed"}, headers=headers
    )
    assert changed.status_code == 200 and changed.get_json()["notes"] == "changed"
    cancelled = client.post(f"/api/procedures/{booked.id}/cancel", json={}, headers=headers)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "CANCELLED"
    with scheduler.session_factory() as session:
        actors = set(session.scalars(select(AuditEntry.actor)))
    assert "web:alice" in actors


def test_bearer_tokens_need_no_csrf_header(app: Flask, scheduler: Scheduler) -> None:
    token = Accounts(scheduler.session_factory).create_token("alice", actor="test")
    client = app.test_client()
    answer = client.post(
        "/api/procedures", json=BOOKING, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 201
    # A bearer request is judged by its token alone, even from a signed-in browser.
    browser = signed_in(app)
    answer = browser.post(
        "/api/procedures",
        json={**BOOKING, "accession_number": "B2", "scheduled_start": "2026-11-26T11:00"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert answer.status_code == 401


# -- server-side sessions --------------------------------------------------------------


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie("clinic_session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("clinic_session", cookie.value)
    return thief


def signed_out(client: FlaskClient) -> bool:
    page = client.get("/")
    api = client.get("/api/procedures")
    return (
        page.status_code == 302
        and "/login" in page.headers["Location"]
        and (api.status_code == 401)
    )


def test_sign_out_ends_every_session_and_copied_cookies(app: Flask, scheduler: Scheduler) -> None:
    browser = signed_in(app)
    laptop = signed_in(app)  # the same user in a second browser
    other_user = signed_in(app, "root")
    thief = copy_of(app, browser)
    assert thief.get("/").status_code == 200  # the copy works while the session is open
    assert post_form(browser, "/", "/logout", {}).status_code == 302
    for client in (browser, thief, laptop):
        assert signed_out(client)
    assert not signed_out(other_user)
    with scheduler.session_factory() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "end_sessions")).one()
    assert entry.actor == "web:alice" and '"sign-out"' in entry.detail


def test_password_change_ends_every_session(app: Flask, scheduler: Scheduler) -> None:
    accounts = Accounts(scheduler.session_factory)
    alice = accounts.find_user("alice")
    assert alice is not None
    browser = signed_in(app)
    thief = copy_of(app, browser)
    admin = signed_in(app, "root")
    url = f"/admin/users/{alice.id}"
    changed = post_form(
        admin, url, url, {"role": "frontdesk", "active": "y", "password": "a-new-password"}
    )
    assert changed.status_code == 302
    assert signed_out(browser) and signed_out(thief)
    assert not signed_out(admin)
    # The user's own change (here through the domain, as the command line would) too.
    again = signed_in(app, "root")
    root = accounts.find_user("root")
    assert root is not None
    accounts.update_user(root.id, "cli", password="another-password")
    assert signed_out(again) and signed_out(admin)


def test_admin_signs_a_user_out_everywhere(app: Flask, scheduler: Scheduler) -> None:
    accounts = Accounts(scheduler.session_factory)
    alice = accounts.find_user("alice")
    assert alice is not None
    browsers = [signed_in(app), signed_in(app)]
    admin = signed_in(app, "root")
    page = admin.get(f"/admin/users/{alice.id}").get_data(as_text=True)
    assert "2 browser sessions open" in page and "Sign out everywhere" in page
    url = f"/admin/users/{alice.id}"
    ended = post_form(admin, url, f"{url}/sessions/end", {})
    assert ended.status_code == 302
    assert all(signed_out(b) for b in browsers)
    assert not signed_out(admin)
    # Without the form's CSRF token nothing happens.
    browser = signed_in(app)
    assert admin.post(f"{url}/sessions/end", data={}).status_code == 400
    assert not signed_out(browser)
    assert admin.post("/admin/users/999/sessions/end", data={}).status_code in (400, 404)
    with scheduler.session_factory() as session:
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "end_sessions", AuditEntry.actor == "web:root"
            )
        ).one()
    assert entry.entity == "user" and entry.entity_id == str(alice.id)
    assert '"sessions": 2' in entry.detail


def test_sessions_expire_after_their_lifetime_unused(app: Flask, scheduler: Scheduler) -> None:
    browser = signed_in(app)
    assert browser.get("/").status_code == 200
    stale = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=12, minutes=1)
    with scheduler.session_factory() as session, session.begin():
        session.execute(update(WebSession).values(last_seen_at=stale))
    assert signed_out(browser)


def test_only_a_digest_of_the_session_id_is_stored(app: Flask, scheduler: Scheduler) -> None:
    browser = signed_in(app)
    with browser.session_transaction() as cookie:
        sid = cookie["_sid"]
    with scheduler.session_factory() as session:
        stored = list(session.scalars(select(WebSession.token_hash)))
    assert len(stored) == 1 and sid not in stored[0] and len(stored[0]) == 64


# -- the sign-in throttle under parallel attempts ---------------------------------------

_TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


class Browser:
    """A urllib client with its own cookies that does not follow redirects."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), self._NoRedirect()
        )

    def get_token(self) -> str:
        with self.opener.open(self.base + "/login", timeout=30) as page:
            match = _TOKEN.search(page.read().decode())
        assert match
        return match.group(1)

    def post(self, path: str, form: dict[str, str]) -> int:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(self.base + path, data=data, timeout=60) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code


def test_parallel_sign_ins_cannot_race_past_the_throttle(server: ClinicServer) -> None:
    assert server.session_factory is not None
    Accounts(server.session_factory).create_user("alice", "frontdesk", PASSWORD, actor="t")
    base = f"http://127.0.0.1:{server.web_port}"
    browsers = [Browser(base) for _ in range(12)]
    tokens = [b.get_token() for b in browsers]
    start = threading.Barrier(len(browsers))
    codes: list[int] = []
    lock = threading.Lock()

    def attempt(browser: Browser, token: str) -> None:
        start.wait(timeout=30)
        code = browser.post(
            "/login", {"name": "alice", "password": "wrong password", "csrf_token": token}
        )
        with lock:
            codes.append(code)

    threads = [
        threading.Thread(target=attempt, args=pair) for pair in zip(browsers, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # Exactly five passwords were checked; the other seven were refused unchecked.
    assert sorted(codes) == [401] * 5 + [429] * 7, codes
    # The right password is refused too now.
    good = Browser(base)
    assert (
        good.post("/login", {"name": "alice", "password": PASSWORD, "csrf_token": good.get_token()})
        == 429
    )


def test_openapi_describes_the_csrf_header(app: Flask) -> None:
    doc = app.test_client().get("/api/openapi.json").get_json()
    scheme = doc["components"]["securitySchemes"]["csrf"]
    assert (scheme["in"], scheme["name"]) == ("header", "X-CSRFToken")
    writes = [
        operation
        for path in doc["paths"].values()
        for method, operation in path.items()
        if method in ("post", "patch")
    ]
    assert len(writes) >= 7
    for operation in writes:
        assert "403" in operation["responses"]
        assert {"session": [], "csrf": []} in operation["security"]
    reads = doc["paths"]["/api/procedures"]["get"]
    assert "security" not in reads  # the document's default: a token or the session alone
    [path_id] = doc["paths"]["/api/procedures/{id}"]["get"]["parameters"]
    assert path_id["schema"]["maximum"] == 2**31 - 1
