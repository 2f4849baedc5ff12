"""Bookings racing for one new patient through the real REST door: 201 or 409, never 500,
and the patient's data never reaches the log."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from clinic.domain.accounts import Accounts
from clinic.server import ClinicServer

PATIENT = {
    "patient_id": "RACE-4711",
    "patient_name": "ZWIEBELFISCH^KUNIGUNDE",
    "patient_sex": "F",
    "modality": "CR",
    "station_ae_title": "XRAY1",
}
BIRTH_DATES = ("1961-07-13", "1961-07-31")


def _post(port: int, token: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/procedures",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize("mixed", [False, True], ids=["same details", "two birth dates"])
def test_ten_bookings_at_once_for_one_new_patient(
    server: ClinicServer, caplog: pytest.LogCaptureFixture, mixed: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    assert server.session_factory is not None
    accounts = Accounts(server.session_factory)
    accounts.create_user("racer", "frontdesk", "a-long-password", actor="test")
    token = accounts.create_token("racer", actor="test")
    barrier = threading.Barrier(10)
    statuses: list[int] = []

    def book(n: int) -> None:
        body = {
            **PATIENT,
            "patient_birth_date": BIRTH_DATES[n % 2 if mixed else 0],
            "scheduled_start": f"2026-12-02T{8 + n:02d}:00",
        }
        barrier.wait()
        statuses.append(_post(server.web_port, token, body))

    threads = [threading.Thread(target=book, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if mixed:
        assert sorted(statuses) == [201] * 5 + [409] * 5
    else:
        assert statuses == [201] * 10
    for secret in ("RACE-4711", "ZWIEBELFISCH", "KUNIGUNDE", "1961"):
        assert secret not in caplog.text
