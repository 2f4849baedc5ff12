"""The print-jobs page (previews, download, reprint) and the print-jobs REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from clinic.config import Settings
from clinic.domain.bookings import Scheduler
from clinic.printing.spool import requeue
from clinic.store.db import transaction
from clinic.store.models import PrintJob
from clinic.web import create_app
from clinic.web.security import LoginThrottle
from tests.support.printing import make_pdf
from tests.support.web import csrf_token, login, post_form


@pytest.fixture
def jobs(scheduler: Scheduler, tmp_path: Path) -> list[int]:
    done_pdf = tmp_path / "job1.pdf"
    make_pdf(done_pdf, 2)
    ids = []
    with transaction(scheduler.session_factory) as session:
        for n, (status, pdf, pages, error) in enumerate(
            [
                ("done", str(done_pdf), 2, ""),
                ("queued", "", 0, ""),
                ("failed", "", 0, "RuntimeError: lp: no such queue"),
            ]
        ):
            job = PrintJob(
                sop_instance_uid=f"1.2.3.{n}",
                status=status,
                calling_ae_title="PANO1",
                printer_ae_title="PDFPRINT",
                films=1,
                pages=pages,
                spool_dir=f"job{n}",
                pdf_path=pdf,
                error=error,
            )
            session.add(job)
            session.flush()
            ids.append(job.id)
    return ids


@pytest.fixture
def requeued() -> list[int]:
    return []


@pytest.fixture
def app(
    settings: Settings, scheduler: Scheduler, throttle: LoginThrottle, requeued: list[int]
) -> Flask:
    def reprint(job_id: int, actor: str) -> bool:
        requeued.append(job_id)
        return requeue(scheduler.session_factory, job_id, actor) is not None

    return create_app(
        settings, scheduler, secret_key="s", login_throttle=throttle, reprint=reprint, testing=True
    )


def test_page_lists_jobs_with_previews(desk: FlaskClient, jobs: list[int]) -> None:
    html = desk.get("/print-jobs").get_data(as_text=True)
    done, queued, failed = jobs
    assert f"/print-jobs/{done}/pages/1.png" in html and f"/print-jobs/{done}/pages/2.png" in html
    assert f"/print-jobs/{done}/pdf" in html and f"/print-jobs/{queued}/pdf" not in html
    assert "lp: no such queue" in html and "Waiting" in html and "Printed" in html
    png = desk.get(f"/print-jobs/{done}/pages/1.png")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    assert desk.get(f"/print-jobs/{done}/pages/3.png").status_code == 404
    assert desk.get(f"/print-jobs/{queued}/pages/1.png").status_code == 404
    pdf = desk.get(f"/print-jobs/{done}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert desk.get(f"/print-jobs/{queued}/pdf").status_code == 404


def test_pages_need_login(client: FlaskClient, jobs: list[int]) -> None:
    for url in ("/print-jobs", f"/print-jobs/{jobs[0]}/pdf", f"/print-jobs/{jobs[0]}/pages/1.png"):
        assert client.get(url).status_code == 302


def test_reprint_is_audited(
    desk: FlaskClient, jobs: list[int], requeued: list[int], audit_rows: Any
) -> None:
    failed = jobs[2]
    assert desk.post(f"/print-jobs/{failed}/reprint").status_code == 400  # no CSRF token
    assert requeued == []
    response = post_form(desk, "/print-jobs", f"/print-jobs/{failed}/reprint", {})
    assert response.status_code == 302
    assert requeued == [failed]
    [row] = audit_rows("print_job")
    assert (row.action, row.actor, row.entity_id) == ("reprint", "web:alice", str(failed))
    assert post_form(desk, "/print-jobs", "/print-jobs/999/reprint", {}).status_code == 404


def test_no_reprint_without_hook(
    settings: Settings, scheduler: Scheduler, users: None, jobs: list[int]
) -> None:
    app = create_app(settings, scheduler, secret_key="s", testing=True)
    c = app.test_client()
    login(c, "alice")
    assert "Reprint" not in c.get("/print-jobs").get_data(as_text=True)
    token = csrf_token(c, "/print-jobs")
    assert c.post(f"/print-jobs/{jobs[0]}/reprint", data={"csrf_token": token}).status_code == 404


def test_api_print_jobs(api: FlaskClient, client: FlaskClient, jobs: list[int]) -> None:
    assert client.get("/api/print-jobs").status_code == 401
    assert client.get(f"/api/print-jobs/{jobs[0]}/pdf").status_code == 401
    listed = api.get("/api/print-jobs")
    assert listed.status_code == 200
    body = listed.get_json()
    assert [j["id"] for j in body] == sorted(jobs, reverse=True)
    done = next(j for j in body if j["id"] == jobs[0])
    assert {
        "id",
        "status",
        "calling_ae_title",
        "printer_ae_title",
        "films",
        "pages",
        "pdf_path",
        "created_at",
    } <= set(done)
    assert done["status"] == "done" and Path(done["pdf_path"]).is_absolute()
    page = api.get("/api/print-jobs?limit=1")
    assert len(page.get_json()) == 1 and 'rel="next"' in page.headers["Link"]
    assert api.get("/api/print-jobs?limit=x").status_code == 400
    pdf = api.get(f"/api/print-jobs/{jobs[0]}/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    missing = api.get(f"/api/print-jobs/{jobs[1]}/pdf")
    assert missing.status_code == 404 and missing.is_json
    assert api.get("/api/print-jobs/999/pdf").status_code == 404
