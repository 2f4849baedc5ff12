"""The print-jobs page and API: the hold queue (release, discard) and the archive status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from clinic.cli import main
from clinic.config import Settings
from clinic.domain.bookings import Scheduler
from clinic.domain.print_jobs import PrintDesk
from clinic.store.db import transaction
from clinic.store.models import PrintJob
from clinic.web import create_app
from clinic.web.security import LoginThrottle
from tests.support.printing import make_pdf
from tests.support.web import post_form

PACS = "PACS@127.0.0.1:11120"


@pytest.fixture
def jobs(scheduler: Scheduler, tmp_path: Path) -> dict[str, int]:
    """A held job, a printed job the PACS refused, and a printed job of a plain printer."""
    pdf = tmp_path / "job.pdf"
    make_pdf(pdf, 1)
    rows = {
        "held": {"status": "queued", "held": True, "archive_status": "pending"},
        "refused": {
            "status": "done",
            "archive_status": "failed",
            "archive_error": "PACS refused Encapsulated PDF Storage: status 0xA900",
        },
        "plain": {"status": "done", "printer_ae_title": "PLAINPRN"},
    }
    ids = {}
    with transaction(scheduler.session_factory) as session:
        for n, (name, fields) in enumerate(rows.items()):
            values: dict[str, Any] = {
                "sop_instance_uid": f"1.2.3.{n}",
                "calling_ae_title": "PANO1",
                "printer_ae_title": "PANOPRN",
                "films": 1,
                "pages": 1,
                "spool_dir": f"job{n}",
                "pdf_path": str(pdf),
                "error": "",
                "archive_to": PACS if "archive_status" in fields else "",
                **fields,
            }
            job = PrintJob(**values)
            session.add(job)
            session.flush()
            ids[name] = job.id
    return ids


@pytest.fixture
def woken() -> list[int]:
    return []


@pytest.fixture
def app(
    settings: Settings, scheduler: Scheduler, throttle: LoginThrottle, woken: list[int]
) -> Flask:
    desk = PrintDesk(
        scheduler.session_factory,
        {"PANOPRN": PACS, "PLAINPRN": ""},
        lambda: woken.append(1),
    )
    return create_app(
        settings,
        scheduler,
        secret_key="s",
        login_throttle=throttle,
        print_desk=desk,
        reprint=lambda job_id, who: True,
        testing=True,
    )


def job(scheduler: Scheduler, job_id: int) -> PrintJob:
    with scheduler.session_factory() as session:
        row = session.get(PrintJob, job_id)
        assert row is not None
        return row


def test_page_shows_the_hold_queue_and_the_archive(desk: FlaskClient, jobs: dict[str, int]) -> None:
    html = desk.get("/print-jobs").get_data(as_text=True)
    assert "Held at the front desk" in html
    assert f"/print-jobs/{jobs['held']}/reprint" not in html  # released, not reprinted
    assert f"/print-jobs/{jobs['refused']}/reprint" in html
    assert f"/print-jobs/{jobs['held']}/release" in html
    assert f"/print-jobs/{jobs['held']}/discard" in html
    assert f"/print-jobs/{jobs['refused']}/release" not in html
    assert "status 0xA900" in html and PACS in html
    assert f"/print-jobs/{jobs['refused']}/archive" in html
    assert f"/print-jobs/{jobs['held']}/archive" not in html  # not printed yet
    assert f"/print-jobs/{jobs['plain']}/archive" not in html


def test_release_with_printer_and_copies_is_audited(
    desk: FlaskClient, jobs: dict[str, int], scheduler: Scheduler, audit_rows: Any, woken: list[int]
) -> None:
    held = jobs["held"]
    assert desk.post(f"/print-jobs/{held}/release", data={"printer": "PLAINPRN"}).status_code == 400
    bad = post_form(desk, "/print-jobs", f"/print-jobs/{held}/release", {"printer": "NOPE"})
    assert bad.status_code == 302 and job(scheduler, held).held
    response = post_form(
        desk, "/print-jobs", f"/print-jobs/{held}/release", {"printer": "PLAINPRN", "copies": "2"}
    )
    assert response.status_code == 302
    row = job(scheduler, held)
    assert not row.held and row.status == "queued" and woken
    assert (row.printer_ae_title, row.copies) == ("PLAINPRN", 2)
    assert row.archive_status == "" and row.archive_to == ""  # the plain printer archives not
    [entry] = [e for e in audit_rows("print_job") if e.action == "release"]
    assert entry.actor == "web:alice" and entry.entity_id == str(held)
    assert '"PLAINPRN"' in entry.detail


def test_discard_keeps_the_job_from_printer_and_archive(
    desk: FlaskClient, jobs: dict[str, int], scheduler: Scheduler, audit_rows: Any
) -> None:
    held = jobs["held"]
    assert post_form(desk, "/print-jobs", f"/print-jobs/{held}/discard", {}).status_code == 302
    row = job(scheduler, held)
    assert row.status == "failed" and not row.held and row.archive_status == "failed"
    [entry] = [e for e in audit_rows("print_job") if e.action == "discard"]
    assert entry.actor == "web:alice"
    # Discarded once: neither a second discard nor a release.
    post_form(desk, "/print-jobs", f"/print-jobs/{held}/release", {"printer": "PANOPRN"})
    assert job(scheduler, held).status == "failed"


def test_send_again_from_the_page(
    desk: FlaskClient, jobs: dict[str, int], scheduler: Scheduler, audit_rows: Any
) -> None:
    refused = jobs["refused"]
    assert post_form(desk, "/print-jobs", f"/print-jobs/{refused}/archive", {}).status_code == 302
    row = job(scheduler, refused)
    assert row.archive_status == "pending" and row.archive_error == ""
    [entry] = [e for e in audit_rows("print_job") if e.action == "archive-again"]
    assert entry.actor == "web:alice" and '"failed"' in entry.detail


def test_api_hold_queue_and_send_again(api: FlaskClient, jobs: dict[str, int]) -> None:
    listed = {j["id"]: j for j in api.get("/api/print-jobs").get_json()}
    assert listed[jobs["held"]]["held"] is True
    assert listed[jobs["held"]]["archive_status"] == "pending"
    assert listed[jobs["held"]]["archive_error"] == "held at the front desk"
    assert listed[jobs["refused"]]["archive_status"] == "failed"
    assert "0xA900" in listed[jobs["refused"]]["archive_error"]
    assert listed[jobs["plain"]]["archive_status"] is None

    again = api.post(f"/api/print-jobs/{jobs['refused']}/archive")
    assert again.status_code == 200 and again.get_json()["archive_status"] == "pending"
    assert api.post(f"/api/print-jobs/{jobs['plain']}/archive").status_code == 409
    assert api.post(f"/api/print-jobs/{jobs['held']}/archive").status_code == 409
    assert api.post("/api/print-jobs/999/archive").status_code == 404

    assert (
        api.post(f"/api/print-jobs/{jobs['held']}/release", json={"copies": "x"}).status_code == 422
    )
    assert (
        api.post(f"/api/print-jobs/{jobs['held']}/release", json={"copies": 0}).status_code == 409
    )
    released = api.post(f"/api/print-jobs/{jobs['held']}/release", json={"copies": 2})
    assert released.status_code == 200
    body = released.get_json()
    assert body["held"] is False and body["copies"] == 2 and body["printer_ae_title"] == "PANOPRN"
    assert api.post(f"/api/print-jobs/{jobs['held']}/discard").status_code == 409
    assert api.post(f"/api/print-jobs/{jobs['refused']}/release", json={}).status_code == 409


def test_cli_sends_a_job_to_its_archive_again(
    settings: Settings, scheduler: Scheduler, jobs: dict[str, int], tmp_path: Path
) -> None:
    env = {"CLINIC_DATA_DIR": str(settings.data_dir), "CLINIC_CONFIG": str(tmp_path / "c.toml")}
    (tmp_path / "c.toml").write_text("", encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(main, ["print-jobs", "archive", str(jobs["refused"])], env=env)
    assert done.exit_code == 0, done.output
    assert job(scheduler, jobs["refused"]).archive_status == "pending"
    plain = runner.invoke(main, ["print-jobs", "archive", str(jobs["plain"])], env=env)
    assert plain.exit_code == 1 and "does not archive" in plain.output
    missing = runner.invoke(main, ["print-jobs", "archive", "999"], env=env)
    assert missing.exit_code == 1 and "no print job 999" in missing.output
