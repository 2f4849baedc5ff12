"""A database error never puts patient data in the log: no bound parameters, no driver text."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.server import ClinicServer
from clinic.store.db import (
    WITHHELD,
    DatabaseErrorRedactor,
    make_engine,
    make_session_factory,
    redacted_traceback,
    transaction,
)
from clinic.store.migrate import upgrade
from clinic.store.models import Patient

NAME = "GEHEIMNIS^MARIA"
PATIENT_ID = "PX-4711"


def duplicate_patient(factory: Any) -> None:
    """Insert one patient ID twice: a real unique-constraint error, the name a parameter."""
    with transaction(factory) as session:
        for _ in range(2):
            session.add(Patient(patient_id=PATIENT_ID, name=NAME, name_fold=NAME, name_ascii=NAME))
            session.flush()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """A handler on the root logger, as ``clinic serve`` has one, writing into a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def test_engine_errors_carry_no_parameters(settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with pytest.raises(IntegrityError) as caught:
        duplicate_patient(make_session_factory(engine))
    text = str(caught.value)
    assert "parameters hidden" in text
    assert "GEHEIMNIS" not in text
    engine.dispose()


def test_statement_logging_carries_no_parameters(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG (``CLINIC_LOG_LEVEL``) SQLAlchemy logs statements: never their values."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"), pytest.raises(IntegrityError):
        duplicate_patient(make_session_factory(engine))
    assert "INSERT INTO patients" in caplog.text  # statements are logged...
    assert "GEHEIMNIS" not in caplog.text and PATIENT_ID not in caplog.text  # ...values not
    engine.dispose()


def test_driver_messages_are_withheld_from_tracebacks() -> None:
    # What PostgreSQL writes for a unique violation: the value itself.
    driver = sqlite3.IntegrityError(f"Key (patient_id)=({PATIENT_ID}) already exists")
    try:
        try:
            raise driver
        except sqlite3.IntegrityError as exc:
            raise IntegrityError("INSERT INTO patients ...", None, exc) from exc
    except IntegrityError as exc:
        text = redacted_traceback(exc)
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "booking failed", (), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert PATIENT_ID not in text
    assert text.count(WITHHELD) == 2  # the driver's error and SQLAlchemy's
    assert "sqlite3.IntegrityError" in text and "sqlalchemy.exc.IntegrityError" in text
    assert "direct cause" in text and "test_database_errors.py" in text
    assert DatabaseErrorRedactor().filter(record)
    formatted = logging.Formatter().format(record)
    assert "booking failed" in formatted and PATIENT_ID not in formatted


def test_other_tracebacks_are_left_alone() -> None:
    try:
        raise ValueError("an ordinary problem")
    except ValueError as exc:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "x", (), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert DatabaseErrorRedactor().filter(record)
    assert record.exc_text is None
    assert "an ordinary problem" in logging.Formatter().format(record)


def test_a_failing_booking_logs_no_patient_data(
    settings: Settings, log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ClinicServer(settings)
    server.start()  # installs the redaction on the handlers that exist
    try:
        assert server.session_factory is not None and server.scheduler is not None
        accounts = Accounts(server.session_factory)
        accounts.create_user("desk", "frontdesk", "a-long-password-1", actor="test")
        token = accounts.create_token("desk", actor="test")
        factory = server.session_factory

        def failing_book(raw: Mapping[str, Any], actor: str, **options: Any) -> Any:
            duplicate_patient(factory)  # as two bookings racing for one new patient do
            raise AssertionError("not reached")

        monkeypatch.setattr(server.scheduler, "book", failing_book)
        body = {"patient_id": PATIENT_ID, "patient_name": NAME, "modality": "CR"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.web_port}/api/procedures",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 500
        answer = caught.value.read().decode()
    finally:
        server.stop()
    log = log_stream.getvalue()
    assert "IntegrityError" in log and WITHHELD in log  # the failure is logged...
    for secret in ("GEHEIMNIS", "MARIA", PATIENT_ID):  # ...without the patient
        assert secret not in log
        assert secret not in answer
