"""The calendar in a real browser (Debian's Chromium via Playwright) on ``clinic serve``.

Book into free time from the week view, drag a booking onto free time (and move one
with the reschedule form, the path without script), check a patient in from the day
view and see SPS Status ``ARRIVED`` with DCMTK's ``findscu``. Screenshots go to
``tests/artifacts/``.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pydicom
from babel.dates import format_date
from playwright.sync_api import sync_playwright

from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD, call_api
from tests.support.serve import ServeProcess, run_clinic
from tests.support.tools import require_tool

#: Wednesday of next week: open, and in the future whatever day the test runs.
TODAY = dt.date.today()
DAY = TODAY + dt.timedelta(days=7 - TODAY.weekday() + 2)


def at(hhmm: str) -> str:
    return f"{DAY.isoformat()}T{hhmm}"


def sps_statuses(svc: ServeProcess, out: Path) -> list[tuple[str, str]]:
    """(Patient ID, SPS Status) of station XRAY1's worklist on DAY, as findscu sees it."""
    out.mkdir(parents=True, exist_ok=True)
    args = [
        require_tool("findscu"),
        "-W",
        "-aet",
        "XRAY1",
        "-aec",
        svc.ae_titles["mwl"],
        "-to",
        "20",
        "-X",
        "-od",
        str(out),
        "-k",
        "PatientID",
        "-k",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=XRAY1",
        "-k",
        f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={DAY:%Y%m%d}",
        "-k",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus",
        "127.0.0.1",
        str(svc.mwl_port),
    ]
    result = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    answers = [pydicom.dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]
    return sorted(
        (
            str(a.PatientID),
            str(a.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus),
        )
        for a in answers
    )


def test_plan_a_week_drag_and_check_in(
    service: ServeProcess,
    tmp_path: Path,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = service.web_url
    made = run_clinic("tokens", "create", "admin", env=service.env, cwd=service.cwd)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    status, first = call_api(
        base,
        "POST",
        "/api/procedures",
        token,
        {
            "patient_id": "WEEK1",
            "patient_name": "ERSTE^ANNA",
            "modality": "CR",
            "station_ae_title": "XRAY1",
            "scheduled_start": at("09:00"),
            "duration_minutes": 30,
        },
    )
    assert status == 201

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(20_000)
            page.goto(base + "/login")
            page.get_by_label("User name").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(base + "/")

            # The week: the booking 09:00-09:30, free time around it; book into 09:30.
            page.goto(f"{base}/week?station=XRAY1&date={DAY.isoformat()}")
            page.get_by_text("09:00–09:30").wait_for()
            page.screenshot(path=str(ARTIFACTS / "20-week.png"), full_page=True)
            day_words = format_date(DAY, "full", locale="en")  # the page's language: English
            page.get_by_role("link", name=f"Book at 09:30 on {day_words}").click()
            assert page.get_by_label("Time").input_value() == "09:30"
            assert page.get_by_label("Date", exact=True).input_value() == DAY.isoformat()
            page.get_by_label("Family name").fill("Zweite")
            page.get_by_label("Given name").fill("Berta")
            page.get_by_label("Modality").fill("CR")
            page.get_by_role("button", name="Book", exact=True).click()
            page.get_by_text("Booked. Accession number").wait_for()
            status, day = call_api(base, "GET", f"/api/procedures?date={DAY}", token)
            second = next(p for p in day if p["patient_name"] == "Zweite^Berta")
            assert second["scheduled_start"] == at("09:30")
            assert second["duration_minutes"] == 15

            # Drag the first booking onto the free time after the second (09:45).
            page.goto(f"{base}/week?station=XRAY1&date={DAY.isoformat()}")
            source = page.locator(f"li[data-booking='{first['id']}']")
            target = page.locator(f"li.free[data-start='{at('09:45')}']")
            with page.expect_navigation():
                source.drag_to(target)
            page.get_by_text("09:45–10:15").wait_for()
            assert call_api(base, "GET", f"/api/procedures/{first['id']}", token)[1][
                "scheduled_start"
            ] == at("09:45")
            page.screenshot(path=str(ARTIFACTS / "21-week-after-drag.png"), full_page=True)

            # Without script: the reschedule form moves the second booking to 11:00.
            page.goto(f"{base}/procedures/{second['id']}")
            page.locator("#resched-h ~ form input[name=time]").fill("11:00")
            page.get_by_role("button", name="Save changes").click()
            page.get_by_text("The booking is changed.").wait_for()
            assert call_api(base, "GET", f"/api/procedures/{second['id']}", token)[1][
                "scheduled_start"
            ] == at("11:00")

            # Check in from the day view; findscu sees ARRIVED.
            page.goto(f"{base}/?date={DAY.isoformat()}")
            page.get_by_role("button", name="Arrived: ERSTE, ANNA").click()
            page.get_by_text("Checked in: ERSTE, ANNA.").wait_for()
            page.screenshot(path=str(ARTIFACTS / "22-day-arrived.png"), full_page=True)
            assert dict(sps_statuses(service, tmp_path / "find")) == {
                "WEEK1": "ARRIVED",
                second["patient_id"]: "SCHEDULED",
            }

            # The patient's page lists the booking; on a tablet the week fits.
            page.goto(f"{base}/patients/WEEK1")
            page.get_by_role("heading", name="Upcoming exams (1)").wait_for()
            page.screenshot(path=str(ARTIFACTS / "23-patient.png"), full_page=True)
            tablet = browser.new_page(viewport={"width": 820, "height": 1180})
            tablet.context.add_cookies(page.context.cookies())
            tablet.goto(f"{base}/week?station=XRAY1&date={DAY.isoformat()}")
            assert tablet.evaluate("document.documentElement.scrollWidth") <= 820
            tablet.screenshot(path=str(ARTIFACTS / "24-week-tablet.png"), full_page=True)
        finally:
            browser.close()
