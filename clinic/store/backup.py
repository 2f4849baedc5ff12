"""Online backups of the store and their restore (``clinic backup`` / ``clinic restore``).

A backup is one file holding the whole database as it was at one instant, taken while
the service runs: SQLite's online backup API (:meth:`sqlite3.Connection.backup`) for
the embedded database, ``pg_dump`` (custom format, one snapshot) for PostgreSQL. The
print spool and PDF folders are plain files and are not part of it.

Restoring replaces the database's whole content, so it refuses while a service uses
that database: a ``clinic serve`` holds :data:`SERVICE_LOCK` in its data folder, and on
PostgreSQL any other connection to the database counts too. ``force=True`` overrides.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from clinic.store import migrate
from clinic.store.db import make_engine

#: Held (shared) by every running ``clinic serve`` of a data folder.
SERVICE_LOCK = ".serve.lock"

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(Exception):
    """A backup or restore cannot be done; the message says why."""


class DatabaseInUse(BackupError):
    """A restore would overwrite a database that a running service uses."""


def hold_service_lock(data_dir: Path) -> BinaryIO:
    """Take the data folder's service lock (shared); it is held until the file is closed.

    Several services may share one data folder (PostgreSQL, scale-out); a restore
    asks for the lock exclusively and so sees whether any of them runs.

    Parameters
    ----------
    data_dir : Path
        The service's data folder (created if needed).

    Returns
    -------
    BinaryIO
        The open lock file; closing it releases the lock.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / SERVICE_LOCK, "ab")  # noqa: SIM115 - the caller closes it
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    except BaseException:
        handle.close()
        raise
    return handle


def service_running(data_dir: Path) -> bool:
    """Return whether a ``clinic serve`` holds the service lock of ``data_dir``."""
    path = data_dir / SERVICE_LOCK
    if not path.exists():
        return False
    with open(path, "ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _sqlite_path(url: URL) -> Path:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("only a SQLite database in a file can be backed up or restored")
    return Path(database)


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for the PostgreSQL tools, and the environment with its password.

    The password goes through ``PGPASSWORD`` so that it never shows in a process list.
    """
    plain = url.set(drivername="postgresql", password=None)
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return path


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()
        raise BackupError(f"{Path(argv[0]).name} failed: {message[-1] if message else '?'}")


def backup(database_url: str, target: Path) -> Path:
    """Write a consistent copy of the database to ``target`` while the service runs.

    The copy is written next to ``target`` under a temporary name, synced, then renamed
    into place, so ``target`` is always either the old file or a complete new one.

    Parameters
    ----------
    database_url : str
        The service's SQLAlchemy URL.
    target : Path
        The backup file to write (replaced if it exists).

    Returns
    -------
    Path
        ``target``, resolved.

    Raises
    ------
    BackupError
        When the database cannot be read or the file cannot be written.
    """
    url = make_url(database_url)
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        if url.get_backend_name() == "sqlite":
            source_path = _sqlite_path(url)
            if not source_path.is_file():
                raise BackupError(f"there is no database at {source_path}")
            source = sqlite3.connect(source_path, timeout=30)
            dest = sqlite3.connect(partial)
            try:
                # One step, in one read transaction: a consistent snapshot. In WAL mode the
                # service keeps writing meanwhile (a step-wise copy would start over after
                # each of its writes, and might never finish on a busy day).
                source.backup(dest)
                dest.execute("PRAGMA journal_mode=DELETE")
            finally:
                dest.close()
                source.close()
        elif url.get_backend_name() == "postgresql":
            uri, env = _libpq(url)
            _run(
                [
                    _tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--file={partial}",
                    f"--dbname={uri}",
                ],
                env,
            )
        else:
            raise BackupError(f"backups of {url.get_backend_name()} databases are not supported")
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup failed: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _kind(source: Path) -> str:
    try:
        with open(source, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {source}: {exc.strerror}") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    raise BackupError(f"{source} is not a clinic backup")


def _other_connections(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            count = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        engine.dispose()
    return int(count or 0)


def restore(database_url: str, data_dir: Path, source: Path, *, force: bool = False) -> None:
    """Replace the database's content with the backup ``source``, then migrate it.

    Parameters
    ----------
    database_url : str
        The database to overwrite (the service's SQLAlchemy URL).
    data_dir : Path
        The service's data folder, whose service lock tells whether it runs.
    source : Path
        A file written by :func:`backup` for the same kind of database.
    force : bool
        Restore even while a service (or, on PostgreSQL, any client) uses the database.

    Raises
    ------
    DatabaseInUse
        When a service uses the database and ``force`` is false.
    BackupError
        When ``source`` is not a usable backup or the restore fails.
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    kind = _kind(source)
    if kind != backend:
        raise BackupError(f"{source} is a {kind} backup; the database is {backend}")
    if not force and service_running(data_dir):
        raise DatabaseInUse(
            "a clinic service is running on this data folder; stop it first (or use --force)"
        )
    if backend == "sqlite":
        _restore_sqlite(_sqlite_path(url), source)
    else:
        if not force and _other_connections(database_url):
            raise DatabaseInUse(
                "other clients are connected to the database (a clinic service on another "
                "machine?); stop them first (or use --force)"
            )
        uri, env = _libpq(url)
        _run(
            [
                _tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={uri}",
                str(source),
            ],
            env,
        )
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)  # a backup of an older release gets today's schema
    finally:
        engine.dispose()


def _restore_sqlite(target: Path, source: Path) -> None:
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            check = src.execute("PRAGMA integrity_check").fetchone()
            tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master")}
            if not check or check[0] != "ok" or "alembic_version" not in tables:
                raise BackupError(f"{source} is not an intact clinic database")
            target.parent.mkdir(parents=True, exist_ok=True)
            dest = sqlite3.connect(target, timeout=30)
            try:
                # Through the backup API the live file (and its WAL) is rewritten in place,
                # page by page under SQLite's own locks, never copied over underneath.
                src.backup(dest)
            finally:
                dest.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"restore failed: {exc}") from exc
