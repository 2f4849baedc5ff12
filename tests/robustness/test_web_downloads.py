"""Downloads name their file as RFC 6266 says: an ASCII ``filename=`` that needs no
escaping and the real name in ``filename*=UTF-8''``, whatever text a peer put in it."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.store.db import transaction
from clinic.store.models import PrintJob
from clinic.web import create_app
from clinic.web.downloads import ascii_filename, content_disposition
from tests.support.web import BOOKING, PASSWORD, login

#: inline; filename="ASCII"; filename*=UTF-8''percent-encoded
RFC6266 = re.compile(
    r"^inline; filename=\"([A-Za-z0-9._-]+)\"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)$"
)


def parts(header: str) -> tuple[str, str]:
    match = RFC6266.match(header)
    assert match, header
    return match.group(1), unquote(match.group(2), encoding="utf-8", errors="strict")


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("slip-A1.pdf", "slip-A1.pdf"),
        ('slip-A"B;C=Ü.pdf', "slip-A_B_C_U.pdf"),
        ("slip-\r\nX: y.pdf", "slip-_X_y.pdf"),
        ("Müller Ærø 漢字.pdf", "Muller_r_.pdf"),
        ("漢字", "download"),
    ],
)
def test_content_disposition(name: str, fallback: str) -> None:
    header = content_disposition(name)
    assert "\r" not in header and "\n" not in header and header.isascii()
    assert parts(header) == (fallback, name)
    assert ascii_filename(name) == fallback


@pytest.fixture
def client(settings: Settings, scheduler: Scheduler) -> FlaskClient:
    Accounts(scheduler.session_factory).create_user("alice", "frontdesk", PASSWORD, actor="t")
    app: Flask = create_app(settings, scheduler, secret_key="k", testing=True)
    browser = app.test_client()
    assert login(browser, "alice").status_code == 302
    return browser


def test_every_download_names_its_file(
    client: FlaskClient, scheduler: Scheduler, tmp_path: Path
) -> None:
    accession = 'A"B;C=Ü'  # an SH value may hold quotes, semicolons and accents
    proc = scheduler.book({**BOOKING, "accession_number": accession}, actor="t")
    slip = client.get(f"/procedures/{proc.id}/slip.pdf")
    assert slip.status_code == 200 and slip.data.startswith(b"%PDF")
    assert parts(slip.headers["Content-Disposition"]) == (
        "slip-A_B_C_U.pdf",
        f"slip-{accession}.pdf",
    )

    day = client.get("/?date=2026-11-26&print=1")
    assert day.status_code == 200 and accession.replace('"', "&#34;") in day.get_data(as_text=True)
    assert parts(day.headers["Content-Disposition"]) == ("day-list-2026-11-26.html",) * 2
    assert "Content-Disposition" not in client.get("/?date=2026-11-26").headers

    pdf = tmp_path / "job.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    with transaction(scheduler.session_factory) as session:
        job = PrintJob(
            sop_instance_uid="1.2.3",
            status="done",
            calling_ae_title="DENT1",
            printer_ae_title="PDFPRINT",
            spool_dir="x",
            pdf_path=str(pdf),
        )
        session.add(job)
        session.flush()
        job_id = job.id
    for url in (f"/print-jobs/{job_id}/pdf", f"/api/print-jobs/{job_id}/pdf"):
        answer = client.get(url)
        assert answer.status_code == 200 and answer.data.startswith(b"%PDF"), url
        name = f"print-job-{job_id}.pdf"
        assert parts(answer.headers["Content-Disposition"]) == (name, name), url
