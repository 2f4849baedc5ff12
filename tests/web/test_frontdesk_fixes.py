"""The front desk's listed faults, each through the Flask client: token page, aria-invalid,
status confirmations, the day list, plurals, local times, favicon, setup checklist."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from clinic.domain.accounts import Accounts
from tests.web.conftest import post_form


def test_new_token_keeps_may_sign_in_checked_and_reload_works(
    admin: FlaskClient, accounts: Accounts
) -> None:
    alice = accounts.find_user("alice")
    assert alice is not None and alice.active
    url = f"/admin/users/{alice.id}"
    made = post_form(admin, url, f"{url}/tokens", {})
    assert made.status_code == 302
    html = admin.get(url).get_data(as_text=True)
    token = html.split('id="new-token">')[1].split("<")[0]
    assert accounts.user_for_token(token) is not None
    checkbox = re.search(r'<input[^>]*id="active"[^>]*>', html)
    assert checkbox is not None and "checked" in checkbox.group(0)
    # Shown once: a reload no longer shows it, and the old address is no 405.
    assert 'id="new-token"' not in admin.get(url).get_data(as_text=True)
    again = admin.get(f"{url}/tokens")
    assert again.status_code == 302 and again.headers["Location"].endswith(url)
    # Saving the page as shown keeps the user active.
    saved = post_form(admin, url, url, {"role": "frontdesk", "active": "y", "password": ""})
    assert saved.status_code == 302
    refreshed = accounts.find_user("alice")
    assert refreshed is not None and refreshed.active


def test_no_field_says_aria_invalid_none(admin: FlaskClient, desk: FlaskClient) -> None:
    for client, url in (
        (desk, "/book"),
        (admin, "/admin/users"),
        (admin, "/admin/stations"),
        (admin, "/admin/catalog"),
    ):
        html = client.get(url).get_data(as_text=True)
        assert "None" not in re.findall(r'aria-[a-z]+="([^"]*)"', html), url
        assert not re.findall(r"<(?:input|select|textarea)[^>]*aria-invalid", html), url


def test_only_fields_with_errors_are_invalid(admin: FlaskClient) -> None:
    response = post_form(
        admin, "/admin/users", "/admin/users", {"name": "", "role": "frontdesk", "password": ""}
    )
    html = response.get_data(as_text=True)
    invalid = re.findall(r'<input[^>]*aria-invalid="true"[^>]*>', html)
    assert invalid and all('id="name"' in i or 'id="password"' in i for i in invalid)
    assert "None" not in re.findall(r'aria-[a-z]+="([^"]*)"', html)
