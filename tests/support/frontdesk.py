"""Shared test helpers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask.testing import FlaskClient

from tests.support.web import post_form

TODAY = dt.date.today()


def booking_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "family_name": "Doe",
        "given_name": "Jane",
        "birth_date": "1980-02-03",
        "sex": "F",
        "procedure": "CXR",
        "station": "",
        "date": TODAY.isoformat(),
        "time": "10:30",
        "referring_physician": "House, Gregory",
        "priority": "",
        "notes": "wheelchair",
    }
    data.update(overrides)
    return data


def book(client: FlaskClient, **overrides: Any) -> Any:
    return post_form(client, "/book", "/book", booking_form(**overrides))
