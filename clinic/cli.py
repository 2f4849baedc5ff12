"""The ``clinic`` command: serve, db, procedures, print-jobs."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from clinic.config import ConfigError, Settings, load_settings
from clinic.domain.bookings import Scheduler
from clinic.domain.errors import NotFound, PatientConflict, ValidationError
from clinic.domain.fields import procedure_to_dict
from clinic.domain.vr import parse_date
from clinic.store import migrate
from clinic.store.db import make_engine, make_session_factory, redact_database_errors
from clinic.store.private import make_private

log = logging.getLogger("clinic")

#: Files with at least this many rows get a progress bar.
PROGRESS_THRESHOLD = 1000


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # A database error's message may quote values: every handler withholds it.
    redact_database_errors()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # pynetdicom's own INFO lines are per PDU; keep them out of the service log.
    logging.getLogger("pynetdicom").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    )


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Configuration file (default: $CLINIC_CONFIG or config/clinic.toml).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """clinic: modality worklist, MPPS and DICOM print service."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        ctx.exit(2)
    _configure_logging(settings.log_level)
    # Whatever a command writes (database, backup, spool) is private to this user;
    # `clinic serve` creates the folder, the other commands only secure an existing one.
    make_private(settings.data_dir, create=False)
    ctx.obj = settings
    _log_database(settings, ctx.invoked_subcommand)


def _log_database(settings: Settings, command: str | None) -> None:
    """Say which database and data folder this command works on (never a password)."""
    origin = settings.config_file or "built-in defaults (no configuration file found)"
    log.info(
        "database %s, data folder %s, configuration %s",
        settings.database_label,
        settings.data_dir.resolve(),
        origin,
    )
    path = settings.resolved_database_url.removeprefix("sqlite:///")
    new_file = path != settings.resolved_database_url and not Path(path).exists()
    if new_file and command not in (None, "serve", "db", "restore"):
        log.warning(
            "there is no database at %s yet: a new, empty one is made "
            "(set CLINIC_DATA_DIR or CLINIC_CONFIG to use another)",
            path,
        )


def _scheduler(settings: Settings) -> Scheduler:
    engine = make_engine(settings.resolved_database_url)
    migrate.upgrade(engine)
    return Scheduler(
        make_session_factory(engine), settings.uid_root, settings.default_duration_minutes
    )


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Start the web front desk, the worklist SCP and the print SCP."""
    from clinic.server import ClinicServer

    settings = _settings(ctx)
    log.info("starting clinic with %s", json.dumps(settings.describe(), default=str))
    server = ClinicServer(settings)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    # Handlers first: a SIGTERM arriving while the listeners start still ends in a clean stop.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        server.start()
    except (OSError, ConfigError) as exc:  # ConfigError: an invalid [printers.*] profile
        log.error("cannot start: %s", exc)
        server.stop()
        ctx.exit(1)
    # What is loaded by now (modules, the DICOM dictionary, mappers, templates) lives as
    # long as the process: keep it out of the collector's full passes, each of which
    # otherwise walked it all and stalled every thread for ~70 ms every few seconds.
    gc.collect()
    gc.freeze()
    while not stop.wait(1.0):
        pass
    server.stop()


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Bring the database schema up to date."""
    settings = _settings(ctx)
    migrate.upgrade(make_engine(settings.resolved_database_url))
    click.echo("database is up to date")


@main.group()
def procedures() -> None:
    """Bookings: import and list."""


#: JSON's insignificant white space (RFC 8259 section 2), as the json module skips it.
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _after_space(text: str, at: int) -> int:
    """The offset of the first character at or after ``at`` that is not JSON white space."""
    return _JSON_SPACE.match(text, at).end()  # type: ignore[union-attr]  # always matches


class ImportRows:
    """The rows of an import file: checked whole when opened, parsed row by row when read.

    Only the file's text is held; each row is parsed again as it is handed out and let go
    once the importer has it, so a 100,000-row file costs its text plus one batch instead
    of a list of 100,000 dictionaries. Iterating again starts again at the first row.
    """

    def __init__(self, path: Path, text: str, as_json: bool) -> None:
        self._path = path
        self._text = text
        self._as_json = as_json
        self._count = sum(1 for _ in self)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._json_rows() if self._as_json else self._csv_rows()

    def _json_rows(self) -> Iterator[dict[str, Any]]:
        """The objects of the top-level JSON array, one at a time.

        Refuses what ``json.loads`` refuses, with the same message, and anything but a
        list of objects (only once the whole text is known to be JSON, as before).
        """
        text, decoder = self._text, json.JSONDecoder()
        at = _after_space(text, 0)
        if not text.startswith("[", at):
            with self._json_errors():
                json.loads(text)
            raise click.ClickException(f"{self._path}: expected a JSON list of objects")
        at = _after_space(text, at + 1)
        only_objects = True
        while not text.startswith("]", at):
            with self._json_errors():
                row, at = decoder.raw_decode(text, at)
            if isinstance(row, dict):
                yield row
            else:
                only_objects = False
            at = _after_space(text, at)
            if text.startswith(",", at):
                at = _after_space(text, at + 1)
                if text.startswith("]", at):  # a trailing comma: json.loads expects a value
                    with self._json_errors():
                        decoder.raw_decode(text, at)
            elif not text.startswith("]", at):
                with self._json_errors():
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        at = _after_space(text, at + 1)
        if at != len(text):
            with self._json_errors():
                raise json.JSONDecodeError("Extra data", text, at)
        if not only_objects:
            raise click.ClickException(f"{self._path}: expected a JSON list of objects")

    @contextlib.contextmanager
    def _json_errors(self) -> Iterator[None]:
        """Turn the JSON errors raised inside the block into the command's error message."""
        try:
            yield
        except json.JSONDecodeError as exc:
            raise click.ClickException(
                f"{self._path}: invalid JSON at line {exc.lineno}: {exc.msg}"
            ) from None
        except RecursionError:  # arrays nested thousands deep exhaust the decoder's stack
            raise click.ClickException(f"{self._path}: invalid JSON: nested too deeply") from None

    def _csv_rows(self) -> Iterator[dict[str, Any]]:
        reader = csv.DictReader(io.StringIO(self._text, newline=""))
        if not reader.fieldnames:
            raise click.ClickException(f"{self._path}: the CSV file has no header row")
        for number, row in enumerate(reader, start=1):
            if None in row:
                raise click.ClickException(f"row {number}: more cells than header columns")
            yield {k.strip(): v for k, v in row.items() if k is not None}


def read_rows(path: Path) -> ImportRows:
    """Open an import file: a JSON list of objects, or a CSV with a header row.

    Raises
    ------
    click.ClickException
        When the file cannot be read or has the wrong shape.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from None
    del data  # a large file's bytes need not stay beside its text
    as_json = path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{"))
    return ImportRows(path, text, as_json)


@procedures.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--actor", default="import", show_default=True, help="Name in the audit log.")
@click.option(
    "--update-patients",
    is_flag=True,
    help="Let rows change the stored name, birth date or sex of an existing patient ID.",
)
@click.pass_context
def procedures_import(ctx: click.Context, file: Path, actor: str, update_patients: bool) -> None:
    """Import bookings from FILE (JSON list or CSV): all rows, or none."""
    rows = read_rows(file)
    scheduler = _scheduler(_settings(ctx))
    bar = tqdm(total=len(rows), unit="row", file=sys.stderr, disable=len(rows) < PROGRESS_THRESHOLD)
    try:
        result = scheduler.import_procedures(
            iter(rows),
            actor=f"cli:{actor}",
            progress=bar.update,
            update_patients=update_patients,
        )
    except ValidationError as exc:
        bar.close()
        for field_name, message in exc.errors.items():
            click.echo(f"error: row {exc.row}, field {field_name}: {message}", err=True)
        click.echo("nothing was imported", err=True)
        ctx.exit(1)
    except PatientConflict as exc:
        bar.close()
        for field_name, values in exc.conflicts.items():
            click.echo(
                f"error: row {exc.row}, field {field_name}: the patient ID is stored with "
                f"{values['stored']!r}, the row has {values['sent']!r} "
                "(--update-patients changes the stored patient)",
                err=True,
            )
        click.echo("nothing was imported", err=True)
        ctx.exit(1)
    bar.close()
    total = result.created + result.updated
    click.echo(f"imported {total} row(s): {result.created} created, {result.updated} updated")


@procedures.command("list")
@click.option("--date", "day", default=None, help="Only bookings of this day (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def procedures_list(ctx: click.Context, day: str | None, as_json: bool) -> None:
    """List bookings, ordered by start time."""
    try:
        parsed = parse_date(day) if day else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--date") from None
    scheduler = _scheduler(_settings(ctx))
    items = [procedure_to_dict(p) for p in scheduler.list_procedures(parsed)]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    for item in items:
        click.echo(
            f"{item['scheduled_start']}  {item['station_ae_title']:<16} {item['modality']:<4} "
            f"{item['accession_number']:<16} {item['status']:<12} {item['patient_name']}"
        )


def _accounts(settings: Settings) -> Any:
    from clinic.domain.accounts import Accounts

    engine = make_engine(settings.resolved_database_url)
    migrate.upgrade(engine)
    return Accounts(make_session_factory(engine))


def _read_password() -> str:
    """The new password: prompted twice on a terminal, else the first line of stdin."""
    stdin = sys.stdin
    if stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return stdin.readline().rstrip("\r\n")


@main.group()
def users() -> None:
    """Staff accounts of the web front desk."""


@users.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["frontdesk", "admin"]),
    default="frontdesk",
    show_default=True,
    help="What the user may do.",
)
@click.pass_context
def users_create(ctx: click.Context, name: str, role: str) -> None:
    """Create user NAME; the password is read from standard input."""
    password = _read_password()
    try:
        _accounts(_settings(ctx)).create_user(name, role, password, actor="cli")
    except ValidationError as exc:
        for field_name, message in exc.errors.items():
            click.echo(f"error: {field_name} {message}", err=True)
        ctx.exit(1)
    click.echo(f"user {name} created with role {role}")


def _user_id(ctx: click.Context, accounts: Any, name: str) -> int:
    try:
        user_id: int = accounts.user_id_for(name)
    except NotFound:
        click.echo(f"error: there is no user called {name}", err=True)
        ctx.exit(1)
    return user_id


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the users as JSON.")
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """List the users: name, role, whether they may sign in, last sign-in (UTC)."""
    rows = [
        {
            "name": u.name,
            "role": u.role,
            "active": u.active,
            "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
        }
        for u in _accounts(_settings(ctx)).list_users()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no users yet: clinic users create NAME --role admin")
        return
    for row in rows:
        state = "active" if row["active"] else "deactivated"
        last = row["last_login_at"] or "never"
        click.echo(f"{row['name']:<24} {row['role']:<10} {state:<12} last sign-in {last}")


@users.command("set-password")
@click.argument("name")
@click.pass_context
def users_set_password(ctx: click.Context, name: str) -> None:
    """Give user NAME a new password, read from standard input."""
    accounts = _accounts(_settings(ctx))
    user_id = _user_id(ctx, accounts, name)
    password = _read_password()
    try:
        accounts.update_user(user_id, "cli", password=password or " ")
    except ValidationError as exc:
        for field_name, message in exc.errors.items():
            click.echo(f"error: {field_name} {message}", err=True)
        ctx.exit(1)
    click.echo(f"password of {name} changed")


def _set_active(ctx: click.Context, name: str, active: bool) -> None:
    accounts = _accounts(_settings(ctx))
    accounts.update_user(_user_id(ctx, accounts, name), "cli", active=active)
    click.echo(f"user {name} {'activated' if active else 'deactivated'}")


@users.command("deactivate")
@click.argument("name")
@click.pass_context
def users_deactivate(ctx: click.Context, name: str) -> None:
    """Stop user NAME from signing in (their API tokens stop working too)."""
    _set_active(ctx, name, False)


@users.command("activate")
@click.argument("name")
@click.pass_context
def users_activate(ctx: click.Context, name: str) -> None:
    """Let user NAME sign in again."""
    _set_active(ctx, name, True)


@users.command("unlock")
@click.argument("name")
@click.pass_context
def users_unlock(ctx: click.Context, name: str) -> None:
    """Let user NAME sign in at once after too many failed tries (the running service
    forgets the name's failed sign-ins at its next attempt)."""
    accounts = _accounts(_settings(ctx))
    accounts.unlock(_user_id(ctx, accounts, name), "cli")
    click.echo(f"user {name} unlocked")


@main.group()
def tokens() -> None:
    """REST API tokens."""


@tokens.command("create")
@click.argument("name")
@click.pass_context
def tokens_create(ctx: click.Context, name: str) -> None:
    """Create an API token for user NAME and print it on the last line (shown once)."""
    try:
        token = _accounts(_settings(ctx)).create_token(name, actor="cli")
    except NotFound:
        click.echo(f"error: there is no user called {name}", err=True)
        ctx.exit(1)
    click.echo(f"API token for {name} (shown only once; send it as Authorization: Bearer TOKEN):")
    click.echo(token)


@main.group("print-jobs")
def print_jobs() -> None:
    """The print spool: list jobs, print one again, send one to the archive again."""


def _print_store(settings: Settings) -> Any:
    engine = make_engine(settings.resolved_database_url)
    migrate.upgrade(engine)
    return make_session_factory(engine)


@print_jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def print_jobs_list(ctx: click.Context, as_json: bool) -> None:
    """List print jobs, newest first."""
    from clinic.domain.print_jobs import job_to_dict, list_jobs

    items = [job_to_dict(job) for job in list_jobs(_print_store(_settings(ctx)))]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    for item in items:
        click.echo(
            f"{item['id']:>6}  {item['created_at']}  {item['status']:<7} "
            f"{item['calling_ae_title']:<16} -> {item['printer_ae_title']:<16} "
            f"{item['films']} film(s)  {item['pdf_path']}"
            + (f"  archive: {item['archive_status']}" if item["archive_status"] else "")
        )


@print_jobs.command("reprint")
@click.argument("job_id", type=int)
@click.pass_context
def print_jobs_reprint(ctx: click.Context, job_id: int) -> None:
    """Queue print job JOB_ID again (a reprint, or a retry after a failure)."""
    from clinic.printing.spool import requeue

    if requeue(_print_store(_settings(ctx)), job_id, actor="cli") is None:
        click.echo(f"error: there is no print job {job_id}", err=True)
        ctx.exit(1)
    click.echo(f"print job {job_id} queued again; the running service prints it")


@print_jobs.command("archive")
@click.argument("job_id", type=int)
@click.pass_context
def print_jobs_archive(ctx: click.Context, job_id: int) -> None:
    """Send printed job JOB_ID to its printer's archive (PACS) again."""
    from clinic.domain.errors import NotFound
    from clinic.domain.print_jobs import DeskRefusal, PrintDesk
    from clinic.printing.profiles import load_profiles

    settings = _settings(ctx)
    try:
        profiles = load_profiles(settings)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    printers = {ae: str(p.archive) if p.archive else "" for ae, p in profiles.items()}
    try:
        PrintDesk(_print_store(settings), printers).send_again(job_id, "cli")
    except NotFound:
        click.echo(f"error: there is no print job {job_id}", err=True)
        ctx.exit(1)
    except DeskRefusal as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    click.echo(f"print job {job_id} queued for its archive; the running service sends it")


@main.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def backup_command(ctx: click.Context, path: Path) -> None:
    """Write a consistent copy of the database to PATH, while the service runs.

    SQLite: a database file (SQLite's online backup). PostgreSQL: a pg_dump archive.
    """
    from clinic.store.backup import BackupError, backup

    settings = _settings(ctx)
    try:
        written = backup(settings.resolved_database_url, path)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    click.echo(f"backup written to {written}")


@main.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Restore even while a service uses the database (its data is replaced under it).",
)
@click.pass_context
def restore_command(ctx: click.Context, path: Path, force: bool) -> None:
    """Replace the database's content with the backup PATH (stop the service first)."""
    from clinic.store.backup import BackupError, DatabaseInUse, restore

    settings = _settings(ctx)
    try:
        restore(settings.resolved_database_url, settings.data_dir, path, force=force)
    except DatabaseInUse as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(3)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    click.echo(f"database restored from {path.resolve()}")


@main.group()
def retention() -> None:
    """Removal of old print jobs, their PDFs and spooled images."""


@retention.command("run")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Age limit in days (default: [retention] print_job_days).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@click.pass_context
def retention_run(ctx: click.Context, days: int | None, as_json: bool) -> None:
    """Remove print jobs older than the retention period whose booking is finished."""
    from clinic.domain.retention import apply_retention

    settings = _settings(ctx)
    limit = days if days is not None else settings.retention_days
    if limit <= 0:
        click.echo("retention is off ([retention] print_job_days = 0); nothing removed")
        return
    result = apply_retention(_print_store(settings), settings.data_dir, limit, actor="cli")
    if as_json:
        click.echo(
            json.dumps(
                {"jobs": result.jobs, "pdfs": result.pdfs, "spool_folders": result.spool_folders}
            )
        )
        return
    click.echo(
        f"removed {len(result.jobs)} print job(s) older than {limit} days, "
        f"{result.pdfs} PDF(s), {result.spool_folders} spool folder(s)"
    )
