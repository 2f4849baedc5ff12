"""The front desk's listed faults, each through the Flask client: token page, aria-invalid,
status confirmations, the day list, plurals, local times, favicon, setup checklist."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
import subprocess
from typing import Any

from flask.testing import FlaskClient

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.web import create_app
from tests.support.web import BOOKING, login, post_form


def pdf_text(data: bytes) -> str:
    """The text of a PDF, read with poppler's pdftotext."""
    assert shutil.which("pdftotext"), "poppler-utils is needed"
    done = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True
    )
    return done.stdout.decode("utf-8")


def test_new_token_keeps_may_sign_in_checked_and_reload_works(
    admin: FlaskClient, accounts: Accounts
) -> None:
    alice = accounts.find_user("alice")
    assert alice is not None and alice.active
    url = f"/admin/users/{alice.id}"
    made = post_form(admin, url, f"{url}/tokens", {})
    assert made.status_code == 302
    html = admin.get(url).get_data(as_text=True)
    token = html.split('id="new-token">')[1].split("<")[0]
    assert accounts.user_for_token(token) is not None
    checkbox = re.search(r'<input[^>]*id="active"[^>]*>', html)
    assert checkbox is not None and "checked" in checkbox.group(0)
    # Shown once: a reload no longer shows it, and the old address is no 405.
    assert 'id="new-token"' not in admin.get(url).get_data(as_text=True)
    again = admin.get(f"{url}/tokens")
    assert again.status_code == 302 and again.headers["Location"].endswith(url)
    # Saving the page as shown keeps the user active.
    saved = post_form(admin, url, url, {"role": "frontdesk", "active": "y", "password": ""})
    assert saved.status_code == 302
    refreshed = accounts.find_user("alice")
    assert refreshed is not None and refreshed.active


def test_no_field_says_aria_invalid_none(admin: FlaskClient, desk: FlaskClient) -> None:
    for client, url in (
        (desk, "/book"),
        (admin, "/admin/users"),
        (admin, "/admin/stations"),
        (admin, "/admin/catalog"),
    ):
        html = client.get(url).get_data(as_text=True)
        assert "None" not in re.findall(r'aria-[a-z]+="([^"]*)"', html), url
        assert not re.findall(r"<(?:input|select|textarea)[^>]*aria-invalid", html), url


def test_only_fields_with_errors_are_invalid(admin: FlaskClient) -> None:
    response = post_form(
        admin, "/admin/users", "/admin/users", {"name": "", "role": "frontdesk", "password": ""}
    )
    html = response.get_data(as_text=True)
    invalid = re.findall(r'<input[^>]*aria-invalid="true"[^>]*>', html)
    assert invalid and all('id="name"' in i or 'id="password"' in i for i in invalid)
    assert "None" not in re.findall(r'aria-[a-z]+="([^"]*)"', html)


def _booking(day: dt.date, **extra: str) -> dict[str, str]:
    return dict(BOOKING, scheduled_start=f"{day.isoformat()}T09:30", **extra)


def test_done_and_stopped_are_confirmed_and_undone(
    desk: FlaskClient, scheduler: Scheduler, audit_rows: Any
) -> None:
    proc = scheduler.book(_booking(dt.date.today()), actor="t")
    url = f"/procedures/{proc.id}"
    assert post_form(desk, url, f"{url}/status", {"status": "IN_PROGRESS"}).status_code == 302
    asked = post_form(desk, url, f"{url}/status", {"status": "DISCONTINUED"})
    html = asked.get_data(as_text=True)
    assert asked.status_code == 200 and 'id="confirm-status"' in html
    assert 'name="confirm" value="1"' in html
    assert scheduler.get(proc.id).status == "IN_PROGRESS"
    stopped = post_form(desk, url, f"{url}/status", {"status": "DISCONTINUED", "confirm": "1"})
    assert stopped.status_code == 302 and scheduler.get(proc.id).status == "DISCONTINUED"
    page = desk.get(url).get_data(as_text=True)
    assert f'action="{url}/undo"' in page
    assert post_form(desk, url, f"{url}/undo", {}).status_code == 302
    assert scheduler.get(proc.id).status == "IN_PROGRESS"
    # Only the last move is taken back: nothing more to undo now.
    assert post_form(desk, url, f"{url}/undo", {}).status_code == 409
    assert scheduler.get(proc.id).status == "IN_PROGRESS"
    assert [r.action for r in audit_rows("procedure")][-1] == "undo"
    assert audit_rows("procedure")[-1].actor == "web:alice"


def test_undo_not_offered_after_mpps_or_too_late(desk: FlaskClient, scheduler: Scheduler) -> None:
    proc = scheduler.book(_booking(dt.date.today()), actor="t")
    scheduler.set_status(proc.id, "IN_PROGRESS", actor="mpps:CT1")
    assert scheduler.can_undo(proc.id) is None
    other = scheduler.book(_booking(dt.date.today(), accession_number="ACC-2"), actor="t")
    scheduler.set_status(other.id, "IN_PROGRESS", actor="web:alice")
    assert scheduler.can_undo(other.id) == "SCHEDULED"
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    assert scheduler.undo_status(other.id, "web:alice", now=later) is None


def test_status_moves_refused_before_the_booking_day(
    desk: FlaskClient, scheduler: Scheduler
) -> None:
    ahead = dt.date.today() + dt.timedelta(days=5)
    proc = scheduler.book(_booking(ahead), actor="t")
    url = f"/procedures/{proc.id}"
    page = desk.get(url).get_data(as_text=True)
    assert "Exam started" not in page and "on its day" in page
    refused = post_form(desk, url, f"{url}/status", {"status": "IN_PROGRESS"})
    assert refused.status_code == 409 and scheduler.get(proc.id).status == "SCHEDULED"
    assert "not before" in refused.get_data(as_text=True)


def test_cancel_error_is_announced_at_the_top(desk: FlaskClient, scheduler: Scheduler) -> None:
    proc = scheduler.book(_booking(dt.date.today()), actor="t")
    url = f"/procedures/{proc.id}"
    response = post_form(desk, url, f"{url}/cancel", {"reason": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    top = html.index('class="problems" role="alert"')
    assert top < html.index('id="cancel-h"')
    assert "not cancelled yet" in html[top : top + 300]


def test_setup_checklist_until_stations_and_procedures_exist(
    admin: FlaskClient, desk: FlaskClient, scheduler: Scheduler
) -> None:
    html = admin.get("/").get_data(as_text=True)
    assert 'id="setup"' in html and 'href="/admin/stations"' in html
    assert 'id="setup"' not in desk.get("/").get_data(as_text=True)  # administrators only
    catalog = Catalog(scheduler.session_factory)
    catalog.save_station({"ae_title": "XRAY1", "modality": "CR"}, "t")
    html = admin.get("/").get_data(as_text=True)
    assert 'id="setup"' in html and 'class="done"' in html
    catalog.save_entry({"code": "CXR", "description": "Chest", "modality": "CR"}, "t")
    assert 'id="setup"' not in admin.get("/").get_data(as_text=True)


def test_day_list_leaves_out_cancelled_and_names_the_clinic(
    settings: Settings, scheduler: Scheduler, users: None
) -> None:
    configured = dataclasses.replace(
        settings, clinic_name="Praxis Dr. Nowak", clinic_address="Hauptstr. 1\n12345 Berlin"
    )
    client = create_app(configured, scheduler, secret_key="k", testing=True).test_client()
    login(client, "alice")
    today = dt.date.today()
    kept = scheduler.book(_booking(today), actor="t")
    gone = scheduler.book(_booking(today, accession_number="GONE1"), actor="t")
    scheduler.cancel(gone.id, "ill", actor="t")
    html = client.get(f"/?date={today.isoformat()}&print=1").get_data(as_text=True)
    assert "Praxis Dr. Nowak" in html and "12345 Berlin" in html
    assert kept.accession_number in html and "GONE1" not in html
    # The screen view still shows the cancelled exam.
    assert "GONE1" in client.get(f"/?date={today.isoformat()}").get_data(as_text=True)


def test_slip_has_clinic_and_preparation(
    settings: Settings, scheduler: Scheduler, users: None
) -> None:
    configured = dataclasses.replace(
        settings, clinic_name="Clinique du Lac", clinic_phone="+33 1 23 45 67 89"
    )
    client = create_app(configured, scheduler, secret_key="k", testing=True).test_client()
    login(client, "alice")
    Catalog(scheduler.session_factory).save_entry(
        {
            "code": "CXR",
            "description": "Chest PA",
            "modality": "CR",
            "preparation": "Please <b>remove</b> jewellery.",
        },
        "t",
    )
    proc = scheduler.book(_booking(dt.date.today()), actor="t")
    pdf = client.get(f"/procedures/{proc.id}/slip.pdf")
    assert pdf.status_code == 200
    text = pdf_text(pdf.data)
    assert "Clinique du Lac" in text and "+33 1 23 45 67 89" in text
    assert "Please <b>remove</b> jewellery." in text


def test_catalog_preparation_is_edited_in_admin(admin: FlaskClient, scheduler: Scheduler) -> None:
    response = post_form(
        admin,
        "/admin/catalog",
        "/admin/catalog",
        {
            "code": "US1",
            "description": "Abdomen",
            "modality": "US",
            "duration_minutes": "20",
            "active": "y",
            "preparation": "Come fasting (6 hours).",
        },
    )
    assert response.status_code == 302
    [entry] = Catalog(scheduler.session_factory).entries()
    assert entry.preparation == "Come fasting (6 hours)."
    page = admin.get(f"/admin/catalog/{entry.id}").get_data(as_text=True)
    assert "Come fasting (6 hours)." in page


def test_timestamps_in_local_time_and_favicon(admin: FlaskClient, accounts: Accounts) -> None:
    root = accounts.find_user("root")
    assert root is not None and root.last_login_at is not None
    local = root.last_login_at.replace(tzinfo=dt.UTC).astimezone().replace(tzinfo=None)
    html = admin.get("/admin/users").get_data(as_text=True)
    assert local.strftime("%H:%M") in html and "UTC" not in html
    assert "UTC" not in admin.get("/admin/audit").get_data(as_text=True)
    icon = admin.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert 'rel="icon"' in admin.get("/").get_data(as_text=True)


def test_undo_returns_to_the_status_before(desk: FlaskClient, scheduler: Scheduler) -> None:
    proc = scheduler.book(_booking(dt.date.today()), actor="t")
    url = f"/procedures/{proc.id}"
    scheduler.arrive(proc.id, actor="web:alice")
    assert post_form(desk, url, f"{url}/status", {"status": "IN_PROGRESS"}).status_code == 302
    assert scheduler.can_undo(proc.id) == "ARRIVED"
    assert post_form(desk, url, f"{url}/undo", {}).status_code == 302
    assert scheduler.get(proc.id).status == "ARRIVED"
