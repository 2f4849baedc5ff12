"""Signing in and posting forms on the front desk, and a booking to make."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

PASSWORD = "correct horse battery"
_CSRF = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'type="hidden" name="csrf_token" value="([^"]+)"|'
    r'name="csrf_token" value="([^"]+)"'
)


def csrf_token(client: FlaskClient, url: str) -> str:
    """Fetch ``url`` and return the CSRF token of its first form."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {url}"
    return next(g for g in match.groups() if g)


def post_form(client: FlaskClient, page_url: str, action: str, data: dict[str, Any]) -> Any:
    """Post ``data`` to ``action`` with the CSRF token taken from ``page_url``."""
    return client.post(action, data={**data, "csrf_token": csrf_token(client, page_url)})


def login(client: FlaskClient, name: str, password: str = PASSWORD) -> Any:
    """Sign in through the login form."""
    return post_form(client, "/login", "/login", {"name": name, "password": password})


BOOKING = {
    "patient_id": "P100",
    "patient_name": "MÜLLER^HANS",
    "patient_birth_date": "1970-05-01",
    "patient_sex": "M",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": "2026-11-26T09:30",
    "procedure_description": "Chest PA",
    "referring_physician": "HOUSE^GREGORY",
}
