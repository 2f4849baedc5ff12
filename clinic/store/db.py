"""Engine and session factory, and the rule that database errors never log patient data.

SQLite gets the settings that keep acknowledged writes safe and concurrent readers
fast: WAL journal, ``synchronous=FULL``, a busy timeout and foreign keys. Any other
SQLAlchemy URL (PostgreSQL to scale out) is used as given.

Every engine hides bound parameters from its exceptions and logs; a database's own
message may still quote values (PostgreSQL: ``Key (patient_id)=(...) already
exists``), so :class:`DatabaseErrorRedactor` on the log handlers withholds the
messages of database errors from every logged traceback.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

BUSY_TIMEOUT_MS = 10_000


def make_engine(url: str) -> Engine:
    """Create the engine for ``url``, tuned per backend.

    Parameters
    ----------
    url : str
        A SQLAlchemy database URL.

    Returns
    -------
    Engine
        The engine; for SQLite the database's folder is created if needed.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True
        )

    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        pool_size=20,
        max_overflow=20,
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if database and database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # DICOM matching of codes and IDs is case-sensitive; names are folded beforehand.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory every door uses (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session, commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


#: What a logged traceback says instead of a database error's message.
WITHHELD = "(message withheld: database errors may quote patient data)"


def _database_errors(exc: BaseException) -> set[int]:
    """Ids of the exceptions in ``exc``'s chain whose message a database wrote."""
    found: set[int] = set()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SQLAlchemyError):
            found.add(id(current))
            if isinstance(current, StatementError) and current.orig is not None:
                found.add(id(current.orig))
        elif type(current).__module__.split(".")[0] in _DRIVER_MODULES:
            found.add(id(current))
        current = current.__cause__ or current.__context__
    return found


#: Database drivers whose exceptions may carry values from the database.
_DRIVER_MODULES = frozenset({"sqlite3", "psycopg", "psycopg2", "pg8000", "asyncpg"})


def redacted_traceback(exc: BaseException) -> str:
    """Format ``exc`` and its chain like :mod:`traceback`, database messages withheld.

    Parameters
    ----------
    exc : BaseException
        The exception to format.

    Returns
    -------
    str
        The frames of every exception in the chain and each exception's type; the
        message of a database error (SQLAlchemy's or the driver's) is replaced by
        :data:`WITHHELD`.
    """
    withheld = _database_errors(exc)
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            link = "\nThe above exception was the direct cause of the following exception:\n\n"
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            link = "\nDuring handling of the above exception, another exception occurred:\n\n"
            current = current.__context__
        else:
            current = None
    parts: list[str] = []
    for item, link_after in reversed(chain):
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(item.__traceback__))
        name = f"{type(item).__module__}.{type(item).__qualname__}"
        message = WITHHELD if id(item) in withheld else str(item)
        parts.append(f"{name}: {message}\n" if message else f"{name}\n")
        parts.append(link_after)
    return "".join(parts).rstrip("\n")


class DatabaseErrorRedactor(logging.Filter):
    """A log handler filter: tracebacks of database errors lose the errors' messages.

    The record is kept (its own message names what failed, never values); only the
    formatted exception changes. Records without a database error pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Pre-format ``record``'s exception without database messages; always keep it."""
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None and _database_errors(exc_info[1]):
            record.exc_text = redacted_traceback(exc_info[1])
        return True


def redact_database_errors(logger: logging.Logger | None = None) -> None:
    """Put a :class:`DatabaseErrorRedactor` on every handler of ``logger`` (the root).

    Idempotent. Handlers see the records of every logger that propagates to them, so
    the root's handlers cover the web, the DICOM and the HL7 doors alike.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, DatabaseErrorRedactor) for f in handler.filters):
            handler.addFilter(DatabaseErrorRedactor())
