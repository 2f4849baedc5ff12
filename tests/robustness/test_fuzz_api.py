"""Fuzzing the REST API: any body gets 2xx or a 4xx JSON error, never a 500, and a
refused request writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import example, given
from hypothesis import strategies as st

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.web import create_app
from tests.support.dicom_bytes import fuzz_settings
from tests.support.import_rows import GOOD, counts, rows
from tests.support.web import PASSWORD

FUZZ = fuzz_settings(120)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
bodies = st.one_of(
    rows().map(lambda r: json.dumps(r).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
)


@pytest.fixture
def api(settings: Settings, scheduler: Scheduler) -> tuple[FlaskClient, Scheduler, int]:
    """An API client with a token, and one booking to change."""
    accounts = Accounts(scheduler.session_factory)
    accounts.create_user("alice", "frontdesk", PASSWORD, actor="test")
    app: Flask = create_app(settings, scheduler, secret_key="k", testing=True)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {accounts.create_token('alice', 't')}"
    booked = scheduler.book(GOOD, actor="test")
    return client, scheduler, booked.id


def check(answer: Any, before: tuple[int, ...], scheduler: Scheduler) -> None:
    """2xx, or a 4xx with a JSON error and nothing written."""
    assert answer.status_code < 500, answer.get_data(as_text=True)
    if answer.status_code >= 400:
        assert "error" in answer.get_json()
        assert counts(scheduler) == before


@FUZZ
@given(body=bodies, target=st.sampled_from(["create", "update", "cancel"]))
@example(body=json.dumps({**GOOD, "patient_name": "\ud800"}).encode(), target="create")
@example(body=json.dumps({"reason": "\udfff"}).encode(), target="cancel")
@example(body=b"[" * 5000, target="create")
@example(body=b'{"patient_id": "\\ud800"}', target="update")
def test_api_bodies(api: tuple[FlaskClient, Scheduler, int], body: bytes, target: str) -> None:
    client, scheduler, procedure_id = api
    before = counts(scheduler)
    headers = {"Content-Type": "application/json"}
    if target == "create":
        answer = client.post("/api/procedures", data=body, headers=headers)
    elif target == "update":
        answer = client.patch(f"/api/procedures/{procedure_id}", data=body, headers=headers)
    else:
        answer = client.post(f"/api/procedures/{procedure_id}/cancel", data=body, headers=headers)
    check(answer, before, scheduler)


def test_regressions_answer_the_field(api: tuple[FlaskClient, Scheduler, int]) -> None:
    # Both were 500s: a lone surrogate reached the store, deep nesting the JSON decoder.
    client, scheduler, procedure_id = api
    headers = {"Content-Type": "application/json"}
    answer = client.post(
        f"/api/procedures/{procedure_id}/cancel", data='{"reason": "\\udfff"}', headers=headers
    )
    assert answer.status_code == 422 and answer.get_json()["errors"] == {
        "reason": "is not valid Unicode text"
    }
    body = json.dumps({**GOOD, "patient_name": "\ud800"})
    answer = client.post("/api/procedures", data=body, headers=headers)
    assert answer.status_code == 422 and "patient_name" in answer.get_json()["errors"]
    answer = client.post("/api/procedures", data="[" * 5000, headers=headers)
    assert answer.status_code == 400 and "body" in answer.get_json()["errors"]
    assert scheduler.get(procedure_id).status == "SCHEDULED"
