"""Sign-in, sign-out, sessions, CSRF, roles and failed-login throttling."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from clinic.config import Settings
from clinic.domain import accounts as accounts_module
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.domain.errors import ValidationError
from clinic.web import create_app
from clinic.web.security import LoginThrottle, load_secret_key
from tests.support.web import PASSWORD, csrf_token, login, post_form

PATIENT_PAGES = [
    "/",
    "/patients?q=x",
    "/book",
    "/procedures/1",
    "/procedures/1/slip.pdf",
    "/?print=1",
]
ADMIN_PAGES = [
    "/admin/",
    "/admin/stations",
    "/admin/catalog",
    "/admin/users",
    "/admin/printers",
    "/admin/audit",
    "/admin/worklist",
]


@pytest.mark.parametrize("url", PATIENT_PAGES + ADMIN_PAGES)
def test_pages_redirect_to_login(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_admin_pages_refuse_front_desk(desk: FlaskClient, url: str) -> None:
    assert desk.get(url).status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "/admin/stations",
        "/admin/catalog",
        "/admin/users",
        "/admin/users/1/tokens",
        "/admin/tokens/1/revoke",
    ],
)
def test_admin_posts_refuse_front_desk(desk: FlaskClient, url: str) -> None:
    token = csrf_token(desk, "/book")
    assert desk.post(url, data={"csrf_token": token}).status_code == 403


def test_login_page_and_sign_in(client: FlaskClient, users: None, audit_rows: Any) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<label for="name">User name</label>' in html
    assert '<label for="password">Password</label>' in html
    response = login(client, "alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/").status_code == 200
    assert [r.action for r in audit_rows("user", actor="alice")] == ["login"]


def test_secure_cookie_over_tls(client: FlaskClient, users: None) -> None:
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        data={"name": "alice", "password": PASSWORD, "csrf_token": token},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/login"},
    )
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


def test_login_follows_only_local_next(client: FlaskClient, users: None) -> None:
    token = csrf_token(client, "/login")
    response = client.post(
        "/login?next=/book", data={"name": "alice", "password": PASSWORD, "csrf_token": token}
    )
    assert response.headers["Location"] == "/book"
    client.get("/")  # keep the session
    other = Flask(__name__)
    del other
    c2 = client.application.test_client()
    token = csrf_token(c2, "/login")
    response = c2.post(
        "/login?next=//evil.example/x",
        data={"name": "alice", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_session_renewed_at_login(client: FlaskClient, users: None) -> None:
    csrf_token(client, "/login")
    before = client.get_cookie("clinic_session")
    assert before is not None
    login(client, "alice")
    after = client.get_cookie("clinic_session")
    assert after is not None and after.value != before.value
    with client.session_transaction() as sess:
        assert "_user_id" in sess


def test_wrong_password_and_unknown_user(client: FlaskClient, users: None) -> None:
    response = login(client, "alice", "wrong password")
    assert response.status_code == 401
    assert "not right" in response.get_data(as_text=True)
    assert login(client, "nobody").status_code == 401
    assert client.get("/").status_code == 302


def test_inactive_user_cannot_sign_in_and_loses_session(
    app: Flask, accounts: Accounts, users: None
) -> None:
    c = app.test_client()
    login(c, "alice")
    assert c.get("/").status_code == 200
    user = accounts.find_user("alice")
    assert user is not None
    accounts.update_user(user.id, "test", active=False)
    assert c.get("/").status_code == 302
    refused = login(app.test_client(), "alice")
    assert refused.status_code == 403
    assert "account is deactivated" in refused.get_data(as_text=True)
    # Only the right password learns that: a wrong one hears the usual answer.
    assert login(app.test_client(), "alice", "wrong password").status_code == 401


def test_failed_logins_are_throttled(
    client: FlaskClient, users: None, throttle: LoginThrottle
) -> None:
    for _ in range(3):
        assert login(client, "alice", "bad").status_code == 401
    blocked = login(client, "alice")  # even the right password waits
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.get_data(as_text=True)
    assert login(client, "root").status_code == 302  # another name is not blocked


def test_throttle_window_and_address_limit() -> None:
    now = [0.0]
    t = LoginThrottle(max_per_name=2, max_per_address=3, window=10, clock=lambda: now[0])
    t.failed("a", "1.2.3.4")
    t.failed("a", "1.2.3.4")
    assert t.retry_after("a", "9.9.9.9") > 0
    assert t.retry_after("b", "1.2.3.4") == 0
    t.failed("b", "1.2.3.4")
    assert t.retry_after("c", "1.2.3.4") > 0
    now[0] = 11.0
    assert t.retry_after("a", "1.2.3.4") == 0
    t.failed("a", "x")
    t.succeeded("a")
    assert t.retry_after("a", "x") == 0


def test_login_without_csrf_is_refused(client: FlaskClient, users: None) -> None:
    client.get("/login")
    response = client.post("/login", data={"name": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_empty_login_form(client: FlaskClient, users: None) -> None:
    response = post_form(client, "/login", "/login", {"name": "", "password": ""})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Please enter your user name." in html and "Please enter your password." in html


def test_logout_needs_post_with_csrf(desk: FlaskClient) -> None:
    assert desk.get("/logout").status_code == 405
    assert desk.post("/logout").status_code == 400
    assert desk.get("/").status_code == 200
    response = post_form(desk, "/", "/logout", {})
    assert response.status_code == 302
    assert desk.get("/").status_code == 302


def test_security_headers(desk: FlaskClient) -> None:
    response = desk.get("/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_secret_key_kept_in_data_dir(tmp_path: Path) -> None:
    key = load_secret_key(tmp_path / "d")
    path = tmp_path / "d" / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret_key(tmp_path / "d") == key and len(key) == 64


def test_app_makes_its_own_secret_key(settings: Settings, scheduler: Scheduler) -> None:
    app = create_app(settings, scheduler)
    assert app.secret_key == (settings.data_dir / "secret_key").read_text().strip()


@pytest.mark.parametrize(
    ("name", "role", "password", "field"),
    [
        ("", "admin", PASSWORD, "name"),
        ("bad name", "admin", PASSWORD, "name"),
        ("bob", "boss", PASSWORD, "role"),
        ("bob", "admin", "short", "password"),
    ],
)
def test_create_user_validation(
    accounts: Accounts, name: str, role: str, password: str, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        accounts.create_user(name, role, password, actor="test")
    assert field in info.value.errors
    assert accounts.list_users() == []


def test_passwords_are_scrypt_hashed(
    accounts: Accounts,
    users: None,
    production_password_hash_method: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = accounts.find_user("alice")
    assert user is not None
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash
    # The service's own cost (the suite hashes more cheaply): Werkzeug's default scrypt.
    monkeypatch.setattr(accounts_module, "PASSWORD_HASH_METHOD", production_password_hash_method)
    eve = accounts.create_user("eve", "frontdesk", PASSWORD, actor="test")
    assert eve.password_hash.startswith("scrypt:32768:8:1$")
    assert accounts.authenticate("eve", PASSWORD) is not None
    with pytest.raises(ValidationError):
        accounts.create_user("alice", "admin", PASSWORD, actor="test")
