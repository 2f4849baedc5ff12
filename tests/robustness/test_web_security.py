"""Web guards: security headers, escaping of DICOM and HL7 text (HTML and PDF), a new
session at sign-in, the sign-in rate limit and the append-only audit log.

Hostile text enters through the real doors of a running service (an HL7 order, an
MPPS N-CREATE, a print job and a worklist query, each from a peer with markup in its
AE title or values); the pages and PDFs built from it must show it as text.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
)
from sqlalchemy import delete, select, text, update

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.printing.render import FilmSpec, ImageSpec, PageOptions, render_pdf
from clinic.server import ClinicServer
from clinic.store.models import AuditEntry, AuditLogIsAppendOnly
from clinic.web import create_app
from clinic.web.security import LoginThrottle
from clinic.web.services import EXTENSION
from clinic.web.slip import appointment_slip
from tests.support.hl7 import ZDS, MllpClient, message, msh, obr, orc, pid
from tests.support.printing import FILM_BOX, PrintScu, gray_image, wait_for_job
from tests.support.tools import require_tool
from tests.support.waiting import wait_for
from tests.support.web import PASSWORD, csrf_token, login

SCRIPT = "<script>alert(1)</script>"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def assert_security_headers(headers: object, where: str) -> None:
    """The four headers every response carries."""
    get = headers.get  # type: ignore[attr-defined]
    for name, value in HEADERS.items():
        assert get(name) == value, (where, name, get(name))
    policy = get("Content-Security-Policy") or ""
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, where
    # Scripts fall under default-src 'self': no inline or injected script runs.
    assert "script-src" not in policy and "unsafe-eval" not in policy, where


# -- headers -------------------------------------------------------------------------


def test_headers_on_every_response_over_http(server: ClinicServer) -> None:
    base = f"http://127.0.0.1:{server.web_port}"
    urls = ["/login", "/healthz", "/", "/api/procedures", "/no-such-page", "/admin/audit"]
    for url in urls:
        request = urllib.request.Request(base + url)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                headers = answer.headers
        except urllib.error.HTTPError as exc:  # 401, 404: error pages carry them too
            headers = exc.headers
        assert_security_headers(headers, url)
    # A refused form post (no CSRF token) and a wrong method.
    for method, url in (("POST", "/login"), ("DELETE", "/healthz")):
        request = urllib.request.Request(base + url, data=b"", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert_security_headers(refused.value.headers, f"{method} {url}")


# -- escaping --------------------------------------------------------------------------


@pytest.fixture
def hostile(server: ClinicServer) -> ClinicServer:
    """A service that took markup through each of its doors."""
    today = dt.date.today()
    # HL7: a patient called <script>, booked for today.
    with MllpClient(server.hl7_port) as client:
        answer = client.send(
            message(
                msh("X1"),
                pid(f5=f"{SCRIPT}^<b>Eve</b>"),
                orc(),
                obr(f4="CR01^<iframe src=x>", f21="XRAY1", f27=f"^^^{today:%Y%m%d}1030"),
                ZDS,
            )
        )
    assert b"MSA|AA" in answer, answer
    # MPPS: an unscheduled exam from an AE called <b>MOD</b>, described with an <img>.
    ae = AE(ae_title="<b>MOD</b>")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedStationAETitle = "<i>ST</i>"
    ds.PerformedProcedureStepStartDate = f"{today:%Y%m%d}"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedProcedureStepDescription = "<img src=x onerror=alert(1)>"
    ds.Modality = "CR"
    ds.PatientName = "<svg onload=alert(1)>"
    item = Dataset()
    item.StudyInstanceUID = str(generate_uid())
    ds.ScheduledStepAttributesSequence = [item]
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, str(generate_uid()))
    assert status.Status == 0
    # Worklist query from the same AE: its title is on the diagnostics page.
    query = Dataset()
    query.PatientName = ""
    list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    assoc.release()
    # Print: a job from an AE called <u>PRN</u>, with a markup annotation.
    scu = PrintScu(server.print_port, calling="<u>PRN</u>")
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
    assert scu.fill(boxes[0], 1, gray_image(16, 16, 50)) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()
    assert server.session_factory is not None
    wait_for_job(server.session_factory)
    return server


@pytest.fixture
def admin_client(hostile: ClinicServer, settings: Settings) -> FlaskClient:
    """The front desk on the service's store, signed in as an administrator."""
    assert hostile.scheduler is not None and hostile.session_factory is not None
    Accounts(hostile.session_factory).create_user("root", "admin", PASSWORD, actor="test")
    app = create_app(settings, hostile.scheduler, secret_key="k", testing=True)
    client = app.test_client()
    assert login(client, "root").status_code == 302
    return client


def test_dicom_and_hl7_text_is_escaped_in_html(admin_client: FlaskClient) -> None:
    day = admin_client.get("/").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in day  # the HL7 patient
    assert "&lt;img src=x onerror=alert(1)&gt;" in day  # the MPPS description
    procedure_id = admin_client.get("/api/procedures").get_json()[0]["id"]
    pages = {
        "/": day,
        "/patients": "",
        f"/procedures/{procedure_id}": "",
        "/print-jobs": "",
        "/admin/worklist": "",
        "/admin/audit": "",
    }
    for url in pages:
        answer = admin_client.get(url)
        assert answer.status_code == 200, url
        assert_security_headers(answer.headers, url)
        html = answer.get_data(as_text=True)
        for raw in (SCRIPT, "<b>Eve", "<iframe", "<img src=x", "<svg", "<b>MOD", "<u>PRN"):
            assert raw not in html, (url, raw)
    assert "&lt;u&gt;PRN&lt;/u&gt;" in admin_client.get("/print-jobs").get_data(as_text=True)

    def diagnostics() -> str | None:  # the query log is written in the background
        page = admin_client.get("/admin/worklist").get_data(as_text=True)
        return page if "&lt;b&gt;MOD&lt;/b&gt;" in page else None

    assert "<b>MOD" not in wait_for(diagnostics, timeout=10, what="the worklist query log")


def test_templates_never_turn_escaping_off() -> None:
    root = Path(__file__).resolve().parents[2]
    for template in sorted((root / "templates").glob("*.html")):
        source = template.read_text(encoding="utf-8")
        assert "|safe" not in source.replace(" ", ""), template.name
        assert "autoescape false" not in source, template.name
    for module in sorted((root / "clinic" / "web").glob("*.py")):
        source = module.read_text(encoding="utf-8")
        assert "Markup(" not in source and "render_template_string" not in source, module.name


def pdf_text(pdf: Path) -> str:
    """The text poppler extracts from a PDF."""
    tool = require_tool("pdftotext")
    return subprocess.run(
        [tool, "-raw", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_markup_is_text_in_the_print_pdf(tmp_path: Path) -> None:
    markup = "<b>x</b> & <font size=40>y</font> <para>"
    image = ImageSpec(position=1, pixels=gray_pixels(), photometric="MONOCHROME2", bits_stored=8)
    film = FilmSpec(display_format="STANDARD\\1,1", images=[image], annotations={1: markup})
    options = PageOptions(
        printer_name="PDF",
        calling_ae_title="<u>PRN</u>",
        patient_name="<b>DOE</b>",
        patient_id="<i>P1</i>",
    )
    pdf = tmp_path / "film.pdf"
    render_pdf([film], pdf, options)
    shown = pdf_text(pdf)
    assert markup in shown and "<u>PRN</u>" in shown


def gray_pixels() -> NDArray[np.uint8]:
    """A small mid-gray image."""
    return np.full((8, 8), 128, dtype=np.uint8)


def test_markup_is_text_on_the_appointment_slip(scheduler: Scheduler, tmp_path: Path) -> None:
    proc = scheduler.book(
        {
            "patient_id": "P1",
            "patient_name": f"{SCRIPT}^<b>Eve</b>",
            "modality": "CR",
            "station_ae_title": "XRAY1",
            "scheduled_start": "2026-11-26T09:30",
            "procedure_description": "<para>& <font color=red>x",
        },
        actor="test",
    )
    pdf = tmp_path / "slip.pdf"
    pdf.write_bytes(appointment_slip(scheduler.get(proc.id)))
    shown = pdf_text(pdf)
    assert SCRIPT in shown and "<para>& <font color=red>x" in shown


# -- sessions, sign-in, audit ------------------------------------------------------------


@pytest.fixture
def app(settings: Settings, scheduler: Scheduler) -> Flask:
    """The front desk with the default sign-in limits."""
    Accounts(scheduler.session_factory).create_user("alice", "frontdesk", PASSWORD, actor="t")
    return create_app(settings, scheduler, secret_key="k", testing=True)


def test_a_new_session_at_sign_in(app: Flask) -> None:
    client = app.test_client()
    csrf_token(client, "/login")
    with client.session_transaction() as planted:  # what an attacker fixed beforehand
        planted["_fresh"] = False
        planted["planted"] = "by-attacker"
    before = client.get_cookie("clinic_session")
    assert before is not None
    assert login(client, "alice").status_code == 302
    after = client.get_cookie("clinic_session")
    assert after is not None and after.value != before.value
    with client.session_transaction() as current:
        assert "planted" not in current and current.get("_user_id")
    # The cookie from before sign-in does not carry the sign-in.
    other = app.test_client()
    other.set_cookie("clinic_session", before.value)
    assert other.get("/").status_code == 302
    assert after.http_only and after.same_site == "Lax"


def test_sign_in_rate_limit(app: Flask) -> None:
    throttle: LoginThrottle = app.extensions[EXTENSION].throttle
    assert (throttle.max_per_name, throttle.max_per_address, throttle.window) == (5, 20, 900)
    client = app.test_client()
    for _ in range(5):
        assert login(client, "alice", "wrong password").status_code == 401
    # The sixth try is refused even with the right password.
    assert login(client, "alice").status_code == 429
    # From the same address, 20 failures in all block every name.
    for n in range(15):
        assert login(client, f"nobody{n}", "x").status_code == 401
    assert login(client, "someone-else", "x").status_code == 429


def test_audit_log_is_append_only(scheduler: Scheduler, settings: Settings) -> None:
    scheduler.book(
        {
            "patient_id": "P1",
            "patient_name": "DOE^JANE",
            "modality": "CR",
            "station_ae_title": "XRAY1",
            "scheduled_start": "2026-11-26T09:30",
        },
        actor="test",
    )
    factory = scheduler.session_factory
    # The ORM guard.
    with factory() as session:
        entry = session.scalars(select(AuditEntry)).first()
        assert entry is not None
        entry.actor = "someone else"
        with pytest.raises(AuditLogIsAppendOnly):
            session.flush()
        session.rollback()
        session.delete(session.scalars(select(AuditEntry)).first())
        with pytest.raises(AuditLogIsAppendOnly):
            session.flush()
    # The database trigger, for SQL that bypasses the ORM.
    with factory() as session:
        for statement in (update(AuditEntry).values(actor="x"), delete(AuditEntry)):
            with pytest.raises(Exception, match="append-only"):
                session.execute(statement)
            session.rollback()
        with pytest.raises(Exception, match="append-only"):
            session.execute(text("DELETE FROM audit_log"))
    # And for another program on the same file (SQLite; on PostgreSQL the trigger above).
    if not settings.database_url:
        connection = sqlite3.connect(settings.data_dir / "clinic.db")
        try:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute("UPDATE audit_log SET actor = 'x'")
        finally:
            connection.close()
    with factory() as session:
        rows = list(session.scalars(select(AuditEntry)))
        assert rows and all(row.actor == "test" for row in rows)
