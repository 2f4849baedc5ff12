"""Every route of the web door, walked with hostile ids, dates and parameters: each answer
is a 2xx, 3xx or 4xx, never a 500; redirects stay on this site; patient search ignores
control characters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.web import create_app
from tests.support.web import BOOKING, PASSWORD, csrf_token, login

#: Ids no row can have: past a signed 32- and 64-bit integer, far past, zero, negative, no digits.
HOSTILE_IDS = (
    "2147483648",
    "9223372036854775808",
    "18446744073709551616",
    "1" + "0" * 40,
    "9223372036854775807",
    "0",
    "-1",
    "%C2%B2",  # a superscript two: str.isdigit() says yes, int() says no
    "1.5",
    "%00",
)
#: Dates a form or query may carry.
HOSTILE_DATES = (
    "9999-12-31",
    "0001-01-01",
    "10000-01-01",
    "2026-13-45",
    "garbage",
    "%00",
    "2026-11-26%0D%0ASet-Cookie:%20x=1",
    "",
)
#: Query strings, each tried on every GET route (ids as in HOSTILE_IDS go in the numbers).
QUERIES = (
    *(f"date={d}" for d in HOSTILE_DATES),
    *(f"date={d}&print=1" for d in ("9999-12-31", "0001-01-01")),
    "page=1" + "0" * 30,
    "page=-5",
    "page=%C2%B2",
    "limit=1" + "0" * 30 + "&offset=1" + "0" * 30,
    "offset=9223372036854775808",
    "q=%00",
    "q=%01%02*",
    "q=9999-12-31",
    "q=00.00.0000",
    "birth_date=0001-01-01",
    "birth_date=9999-12-31",
    "birth_date=%00",
    "since=9999-12-31&until=9999-12-31",
    "since=0001-01-01&until=0001-01-01",
    "entity_id=1" + "0" * 30 + "&actor=%00&action=%00&entity=%00",
    "station=%00&modality=%00&status=%00&group=%00",
    "patient=%00",
    "patient=x&date=9999-12-31&station=%00",
    "next=%0D%0ASet-Cookie:%20x=1",
    "next=/%0D%0ALocation:%20http://evil.example/",
    "duration=1" + "0" * 30 + "&station=XRAY1&date=9999-12-31",
    *(f"patient_name=DOE&patient_birth_date={d}" for d in HOSTILE_DATES),
    *(f"station=XRAY1&date={d}&duration=15" for d in HOSTILE_DATES),
    "station=XRAY1&date=2026-11-26&duration=" + "9" * 30,
    "patient_name=%00",
    "keep=%00&merge=x",
)
#: Form fields every POST route gets, each set on its own (plus the CSRF token).
FORMS: tuple[dict[str, str], ...] = (
    {},
    {"procedure_id": "9223372036854775808"},
    {"procedure_id": "²"},
    {"procedure_id": "1" + "0" * 40, "date": "9999-12-31"},
    {"accession_number": "\x00"},
    {"accession_number": "A" * 5000, "date": "\r\nX: y"},
    {"unlink": "1"},
    {"date": "9999-12-31", "time": "23:59", "station": "XRAY1", "reason": "x"},
    {"date": "0001-01-01", "time": "00:00"},
    {"date": "9999-12-31", "time": "25:61", "birth_date": "9999-12-31"},
    {"family_name": "DOE", "modality": "CR", "date": "9999-12-31", "time": "23:59"},
    {
        "family_name": "DOE",
        "modality": "CR",
        "date": "0001-01-01",
        "time": "00:00",
        "birth_date": "0001-01-01",
        "confirm_new_patient": "y",
    },
    {"status": "IN_PROGRESS"},
    {"name": "x\x00", "password": "y" * 3000, "role": "admin", "active": "y"},
    {"page": "1" + "0" * 30},
    {"ae_title": "\x00", "code": "\x00", "duration_minutes": "1" + "0" * 30},
    {"keep_patient_id": "P100", "merge_patient_id": "\x00"},
    {"keep_patient_id": "P100", "merge_patient_id": "P100"},
    {"printer": "\x00", "copies": "1" + "0" * 30},
    {"printer": "PDFPRINT", "copies": "-1"},
)
JSON_BODIES: tuple[Any, ...] = (
    {},
    {"scheduled_start": "9999-12-31T23:59"},
    {"scheduled_start": "0001-01-01T00:00", "patient_birth_date": "0001-01-01"},
    {**BOOKING, "scheduled_start": "9999-12-31T23:59", "patient_birth_date": "9999-12-31"},
    {**BOOKING, "duration_minutes": 10**30},
    {"reason": "\x00"},
    {"patient_id": "\x00"},
    {"patient_id": ["P100"]},
    {"printer": "\x00", "copies": 10**30},
    {"printer": None, "copies": "x"},
)
_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@pytest.fixture
def world(settings: Settings, scheduler: Scheduler) -> Iterator[tuple[Flask, FlaskClient, str]]:
    """The app with a booking, an administrator signed in and an API token."""
    accounts = Accounts(scheduler.session_factory)
    accounts.create_user("root", "admin", PASSWORD, actor="test")
    token = accounts.create_token("root", actor="test")
    scheduler.book(BOOKING, actor="test")
    # Exceptions answer 500 as in production instead of propagating into the test.
    app = create_app(settings, scheduler, secret_key="k", testing=False)
    client = app.test_client()
    assert login(client, "root").status_code == 302
    yield app, client, token


def urls_of(rule: Rule, values: tuple[str, ...]) -> Iterator[str]:
    """The rule's path with every argument set to each of ``values`` in turn."""
    for value in values:
        yield _ARGUMENT.sub(value, rule.rule)


def walk(app: Flask) -> Iterator[tuple[Rule, str]]:
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method


def test_every_route_answers_hostile_ids_and_dates_without_a_500(
    world: tuple[Flask, FlaskClient, str],
) -> None:
    app, client, token = world
    failures: list[str] = []
    tried = 0

    def check(method: str, url: str, **kwargs: Any) -> Any:
        nonlocal tried
        tried += 1
        answer = client.open(url, method=method, **kwargs)
        if answer.status_code >= 500:
            body = kwargs.get("data") or kwargs.get("json")
            if isinstance(body, dict):
                body = {k: v for k, v in body.items() if k != "csrf_token"}
            failures.append(f"{method} {url} {body!r:.120}")
        location = answer.headers.get("Location", "")
        if location:
            target = urlsplit(location)
            if target.netloc not in ("", "localhost") or "\n" in location or "\r" in location:
                failures.append(f"{method} {url}: redirect off the site to {location!r}")
        return answer

    form_token = ""

    def signed_in_token() -> str:
        """The CSRF token of the signed-in session (signing in again when the walk ended it)."""
        nonlocal form_token
        if client.get("/api/procedures?limit=1").status_code != 200:
            assert login(client, "root").status_code == 302
            form_token = ""
        if not form_token:
            form_token = csrf_token(client, "/")
        return form_token

    rules = list(walk(app))
    assert len({r.rule for r, _ in rules}) >= 30, "the walk must see the whole app"
    for rule, method in rules:
        # Each rule starts signed in (an earlier one may have signed out or changed a password).
        token_of_session = signed_in_token()
        ids = ("1", *HOSTILE_IDS) if rule.arguments else ("",)
        for url in urls_of(rule, ids):
            plain = url == _ARGUMENT.sub("1", rule.rule)
            if method == "GET":
                check("GET", url)
                if plain:
                    for query in QUERIES:
                        check("GET", f"{url}?{query}")
            elif url.startswith("/api/"):
                bearer = {"Authorization": f"Bearer {token}"}
                for body in JSON_BODIES:
                    check(method, url, json=body, headers=bearer)
                # Signed in by the session instead: the same handlers behind another door.
                for body in JSON_BODIES[:3]:
                    check(method, url, json=body, headers={"X-CSRFToken": token_of_session})
                check(
                    method, url, data=b"\x00" * 10, content_type="application/json", headers=bearer
                )
            else:
                for number, form in enumerate(FORMS if plain or not rule.arguments else FORMS[:2]):
                    # Every form with a hostile next (redirects), the first two with a date.
                    queries = ("", "?next=%0D%0AX:%20y", "?date=9999-12-31")[
                        : 3 if number < 2 else 2
                    ]
                    for query in queries:
                        data = {**form, "csrf_token": token_of_session}
                        check(method, f"{url}{query}", data=data)
    assert tried > 1000
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} in all)"


@pytest.mark.parametrize(
    "target",
    [
        "\r\nSet-Cookie: x=1",
        "/\r\nLocation: http://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "http://evil.example/",
        "https:evil.example",
        "/%0d%0aX: y",
        "javascript:alert(1)",
        " //evil.example",
        "/\t/evil.example",
    ],
)
def test_sign_in_follows_only_local_next(
    settings: Settings, scheduler: Scheduler, target: str
) -> None:
    Accounts(scheduler.session_factory).create_user("alice", "frontdesk", PASSWORD, actor="t")
    app = create_app(settings, scheduler, secret_key="k", testing=True)
    client = app.test_client()
    token = csrf_token(client, "/login")
    answer = client.post(
        f"/login?next={quote(target, safe='')}",
        data={"name": "alice", "password": PASSWORD, "csrf_token": token},
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location == "/", (target, location)


def test_sign_in_keeps_a_local_next(settings: Settings, scheduler: Scheduler) -> None:
    Accounts(scheduler.session_factory).create_user("alice", "frontdesk", PASSWORD, actor="t")
    app = create_app(settings, scheduler, secret_key="k", testing=True)
    client = app.test_client()
    page = client.get("/patients?q=doe")
    assert page.status_code == 302
    login_url = page.headers["Location"]
    token = csrf_token(client, login_url)
    answer = client.post(
        login_url, data={"name": "alice", "password": PASSWORD, "csrf_token": token}
    )
    assert answer.headers["Location"] == "/patients?q=doe"


def test_patient_search_ignores_control_characters(
    settings: Settings, scheduler: Scheduler
) -> None:
    Accounts(scheduler.session_factory).create_user("alice", "frontdesk", PASSWORD, actor="t")
    for n, name in enumerate(("DOE^JANE", "ROE^RICHARD", "MÜLLER^HANS")):
        scheduler.book(
            {
                **BOOKING,
                "patient_id": f"P{n}",
                "patient_name": name,
                "accession_number": f"A{n}",
                "scheduled_start": f"2026-11-26T{9 + n:02d}:00",
            },
            actor="t",
        )
    app = create_app(settings, scheduler, secret_key="k", testing=True)
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    for query in ("%00", "%00%00", "%01", "%1F", "%7F", "%00*", "*%00", "%C2%85"):
        page = client.get(f"/patients?q={query}")
        assert page.status_code in (200, 400), query
        html = page.get_data(as_text=True)
        assert "DOE" not in html and "ROE" not in html and "MÜLLER" not in html, query
    # The characters are ignored, not the words around them.
    html = client.get("/patients?q=D%00OE").get_data(as_text=True)
    assert "DOE" in html and "ROE" not in html


def test_what_hostile_ids_and_dates_answer(world: tuple[Flask, FlaskClient, str]) -> None:
    _, client, token = world
    for url in (
        "/procedures/9223372036854775808",
        "/procedures/1" + "0" * 40 + "/slip.pdf",
        "/print-jobs/18446744073709551616/pdf",
        "/admin/users/9223372036854775808",
        "/procedures/9223372036854775807",
        "/procedures/2147483647",  # the largest id there is: simply not found
    ):
        assert client.get(url).status_code == 404, url
    api = {"Authorization": f"Bearer {token}"}
    answer = client.get("/api/procedures/9223372036854775808", headers=api)
    assert answer.status_code == 404 and answer.is_json
    for day in ("9999-12-31", "0001-01-01", "garbage", "2026-02-30"):
        assert client.get(f"/?date={day}").status_code == 400, day
        answer = client.get(f"/api/procedures?date={day}", headers=api)
        assert answer.status_code == 400 and "date" in answer.get_json()["errors"], day
    assert client.get("/?date=2999-12-31").status_code == 200
    assert client.get("/?date=1900-01-01").status_code == 200
    page = client.get("/admin/audit?since=9999-12-31").get_data(as_text=True)
    assert "Days from 1900-01-01 to 2999-12-31" in page


def test_api_refuses_nul_characters_by_field(world: tuple[Flask, FlaskClient, str]) -> None:
    _, client, token = world
    api = {"Authorization": f"Bearer {token}"}
    answer = client.post(
        "/api/procedures", json={**BOOKING, "notes": "a\x00b", "step_id\x00": "x"}, headers=api
    )
    assert answer.status_code == 422
    errors = answer.get_json()["errors"]
    assert errors["notes"] == errors["step_id"] == "must not contain a NUL character"
    # A backslash and the letters u0000 are text, not a NUL.
    answer = client.post(
        f"/api/patients/{BOOKING['patient_id']}/merge", json={"patient_id": "\\u0000"}, headers=api
    )
    assert answer.status_code in (403, 404, 422) and "NUL" not in answer.get_data(as_text=True)


def test_bookings_stay_on_days_the_calendar_can_count(
    world: tuple[Flask, FlaskClient, str],
) -> None:
    _, client, token = world
    api = {"Authorization": f"Bearer {token}"}
    for start in ("9999-12-31T23:59", "0001-01-01T00:00", "3000-01-01T08:00"):
        answer = client.post(
            "/api/procedures", json={**BOOKING, "scheduled_start": start}, headers=api
        )
        assert answer.status_code == 422, start
        assert "between 1900-01-01 and 2999-12-31" in answer.get_json()["errors"]["scheduled_start"]
        answer = client.patch("/api/procedures/1", json={"scheduled_start": start}, headers=api)
        assert answer.status_code == 422, start
    assert client.get("/week?station=XRAY1&date=9999-12-31").status_code == 400
    answer = client.get("/api/free-slots?station=XRAY1&date=9999-12-31", headers=api)
    assert answer.status_code == 400 and "date" in answer.get_json()["errors"]


def test_text_in_paths_with_control_characters_matches_no_route(
    world: tuple[Flask, FlaskClient, str],
) -> None:
    _, client, token = world
    api = {"Authorization": f"Bearer {token}"}
    for text in ("%00", "P100%00", "%0D%0A", "%7F", "%C2%85"):
        assert client.get(f"/patients/{text}").status_code == 404, text
        assert client.get(f"/api/patients/{text}", headers=api).status_code == 404, text
    assert client.get(f"/patients/{BOOKING['patient_id']}").status_code == 200
