"""End to end in a real browser: ``clinic serve`` on free ports, Debian's Chromium via Playwright.

An administrator made with ``clinic users create`` signs in, adds a station and a
catalog procedure, books an exam, sees it on the day view, a pynetdicom worklist
SCU finds it, the exam is cancelled and the worklist no longer has it; then the same
through the REST API with a token from ``clinic tokens create``. Screenshots of the
main pages go to ``tests/artifacts/``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from playwright.sync_api import sync_playwright
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD, call_api
from tests.support.serve import ServeProcess, run_clinic

FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
GRAYSCALE_IMAGE_BOX = "1.2.840.10008.5.1.1.4"
GRAYSCALE_META = "1.2.840.10008.5.1.1.9"


def print_one_film(svc: ServeProcess) -> None:
    """Print one 1x1 grayscale film as a modality does (the SCU assigns every UID)."""
    ae = AE(ae_title="PANO1")
    ae.add_requested_context(GRAYSCALE_META)
    assoc = ae.associate("127.0.0.1", svc.print_port, ae_title=svc.ae_titles["print"])
    assert assoc.is_established
    try:
        session_uid, box_uid = generate_uid(), generate_uid()
        film_session = Dataset()
        film_session.NumberOfCopies = "1"
        status, _ = assoc.send_n_create(
            film_session, FILM_SESSION, session_uid, meta_uid=GRAYSCALE_META
        )
        assert status.Status == 0x0000
        film_box = Dataset()
        film_box.ImageDisplayFormat = "STANDARD\\1,1"
        ref = Dataset()
        ref.ReferencedSOPClassUID = FILM_SESSION
        ref.ReferencedSOPInstanceUID = session_uid
        film_box.ReferencedFilmSessionSequence = [ref]
        status, reply = assoc.send_n_create(film_box, FILM_BOX, box_uid, meta_uid=GRAYSCALE_META)
        assert status.Status == 0x0000 and reply is not None
        image_box_uid = str(reply.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID)
        image = Dataset()
        image.SamplesPerPixel = 1
        image.PhotometricInterpretation = "MONOCHROME2"
        image.Rows, image.Columns = 64, 64
        image.BitsAllocated, image.BitsStored, image.HighBit = 8, 8, 7
        image.PixelRepresentation = 0
        image.PixelData = bytes(range(64)) * 64
        content = Dataset()
        content.ImageBoxPosition = 1
        content.BasicGrayscaleImageSequence = [image]
        status, _ = assoc.send_n_set(
            content, GRAYSCALE_IMAGE_BOX, image_box_uid, meta_uid=GRAYSCALE_META
        )
        assert status.Status == 0x0000
        status, _ = assoc.send_n_action(None, 1, FILM_BOX, box_uid, meta_uid=GRAYSCALE_META)
        assert status.Status in (0x0000, 0xB603)
    finally:
        assoc.release()


def worklist_names(svc: ServeProcess, station: str) -> list[str]:
    """Ask the worklist as modality ``station`` for today's steps; return patient names."""
    ae = AE(ae_title=station)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", svc.mwl_port, ae_title=svc.ae_titles["mwl"])
    assert assoc.is_established
    query = Dataset()
    query.PatientName = ""
    query.PatientID = ""
    query.AccessionNumber = ""
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = dt.date.today().strftime("%Y%m%d")
    step.Modality = ""
    query.ScheduledProcedureStepSequence = [step]
    try:
        answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    finally:
        assoc.release()
    assert answers[-1][0].Status == 0x0000
    return [str(ds.PatientName) for status, ds in answers if status.Status in (0xFF00, 0xFF01)]


def reload_until_visible(page: Any, locator: Any, seconds: float = 30.0) -> None:
    """Reload ``page`` until ``locator`` matches something, for rows written in the background.

    Raises ``AssertionError`` when nothing matched within ``seconds``.
    """
    for _ in range(int(seconds / 0.25)):
        if locator.count():
            return
        page.wait_for_timeout(250)
        page.reload()
    raise AssertionError(f"{locator} never appeared on {page.url}")


def test_book_find_on_worklist_cancel(service: ServeProcess) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = service.web_url
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(20_000)

            # Patient pages send a visitor to the sign-in page.
            page.goto(base + "/")
            assert "/login" in page.url
            page.screenshot(path=str(ARTIFACTS / "01-login.png"))
            page.get_by_label("User name").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(base + "/")
            assert page.get_by_role("heading", level=1).inner_text().endswith("(today)")

            # The administrator adds a station and a catalog procedure.
            page.goto(base + "/admin/stations")
            page.get_by_label("AE title").fill("XRAY1")
            page.get_by_label("Modality").fill("CR")
            page.get_by_label("Name").fill("X-ray 1")
            page.get_by_label("Location").fill("Room 1")
            page.get_by_role("button", name="Add the station").click()
            page.get_by_role("cell", name="XRAY1").wait_for()
            page.screenshot(path=str(ARTIFACTS / "06-admin-stations.png"))
            page.goto(base + "/admin/catalog")
            page.get_by_label("Code").fill("CXR")
            page.get_by_label("Description").fill("Chest PA")
            page.get_by_label("Modality").fill("CR")
            page.get_by_label("Default station").select_option("XRAY1")
            page.get_by_label("Duration (minutes)").fill("10")
            page.get_by_role("button", name="Add to the catalog").click()
            page.get_by_role("cell", name="Chest PA").wait_for()
            page.screenshot(path=str(ARTIFACTS / "07-admin-catalog.png"))

            # Book an exam for a new patient, first forgetting the family name.
            page.get_by_role("link", name="Book an exam").first.click()
            page.get_by_label("Given name").fill("Hans")
            page.get_by_label("Date of birth").fill("1970-05-01")
            page.get_by_label("Sex").select_option("M")
            page.get_by_label("Procedure").select_option("CXR")
            page.get_by_label("Time").fill("10:30")
            page.get_by_label("Referring physician").fill("House, Gregory")
            page.get_by_role("button", name="Book").click()
            page.get_by_text("Please enter the patient's family name.").wait_for()
            page.screenshot(path=str(ARTIFACTS / "03-booking-errors.png"), full_page=True)
            page.get_by_label("Family name").fill("Müller")
            page.get_by_role("button", name="Book").click()
            page.get_by_text("Booked. Accession number").wait_for()
            accession = page.locator("#accession").inner_text().strip()
            assert accession
            page.screenshot(path=str(ARTIFACTS / "04-booking.png"), full_page=True)

            # The day view shows it.
            page.get_by_role("link", name="Day", exact=True).click()
            page.get_by_role("link", name="Müller, Hans").wait_for()
            assert accession in page.content()
            page.screenshot(path=str(ARTIFACTS / "02-day-view.png"), full_page=True)

            # The patient is found by name without accents.
            page.goto(base + "/patients?q=muller")
            page.get_by_role("cell", name="Müller, Hans").wait_for()
            page.screenshot(path=str(ARTIFACTS / "05-patients.png"))

            # A modality sees it on the worklist.
            assert worklist_names(service, "XRAY1") == ["Müller^Hans"]

            # Cancel it, with a reason; it leaves the worklist.
            page.goto(base + "/")
            page.get_by_role("link", name="Müller, Hans").click()
            page.get_by_label("Reason for cancelling").fill("Patient called in sick")
            page.get_by_role("button", name="Cancel the exam").click()
            page.get_by_text(f"Cancelled: {accession}.").wait_for()
            page.screenshot(path=str(ARTIFACTS / "08-day-after-cancel.png"), full_page=True)
            assert worklist_names(service, "XRAY1") == []

            # The audit log shows who did it.
            page.goto(base + "/admin/audit?entity=procedure")
            page.get_by_role("cell", name="web:admin").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "09-admin-audit.png"), full_page=True)
            # Diagnostics are stored in batches off the answering thread: the row may
            # arrive after the page was drawn, so reload until it is there.
            page.goto(base + "/admin/worklist")
            reload_until_visible(page, page.get_by_role("cell", name="XRAY1"))
            page.screenshot(path=str(ARTIFACTS / "10-admin-worklist.png"))

            # A modality prints a film: the print-jobs page previews and offers it.
            print_one_film(service)
            page.goto(base + "/print-jobs")
            # The spool renders in the background: reload until the preview is there.
            reload_until_visible(page, page.get_by_role("img", name="Preview of page 1 of job 1"))
            page.wait_for_function(
                "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
            assert page.get_by_role("link", name="Download PDF").count() == 1
            page.screenshot(path=str(ARTIFACTS / "12-print-jobs.png"))
            page.get_by_role("button", name="Reprint job 1").click()
            page.get_by_text("Print job 1 is queued again.").wait_for()

            # On a tablet the day view still fits.
            tablet = browser.new_page(viewport={"width": 820, "height": 1180})
            tablet.context.add_cookies(page.context.cookies())
            tablet.goto(base + "/")
            width = tablet.evaluate("document.documentElement.scrollWidth")
            assert width <= 820
            tablet.screenshot(path=str(ARTIFACTS / "11-day-tablet.png"))

            # Sign out.
            page.goto(base + "/")
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(re.compile(r".*/login"))
        finally:
            browser.close()

    # The REST API does the same with a token from `clinic tokens create`.
    made = run_clinic("tokens", "create", "admin", env=service.env, cwd=service.cwd)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    booking = {
        "patient_id": "API1",
        "patient_name": "DOE^JANE",
        "modality": "CR",
        "station_ae_title": "XRAY1",
        "scheduled_start": f"{dt.date.today().isoformat()}T11:00",
    }
    status, created = call_api(base, "POST", "/api/procedures", token, booking)
    assert status == 201 and created["status"] == "SCHEDULED"
    assert worklist_names(service, "XRAY1") == ["DOE^JANE"]
    status, listed = call_api(base, "GET", f"/api/procedures?date={dt.date.today()}", token)
    assert status == 200 and [p["patient_id"] for p in listed][-1] == "API1"
    status, cancelled = call_api(
        base, "POST", f"/api/procedures/{created['id']}/cancel", token, {"reason": "test"}
    )
    assert status == 200 and cancelled["status"] == "CANCELLED"
    assert worklist_names(service, "XRAY1") == []
    assert call_api(base, "GET", "/api/procedures", "wrong-token")[0] == 401

    assert service.stop() == 0
    assert "Müller" not in service.log()  # no patient data in the log
