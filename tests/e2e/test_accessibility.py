"""Every page passes axe-core without a serious or critical violation, and none scrolls
sideways on an 820 px tablet (Debian's Chromium through Playwright, axe-core from npm)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD
from tests.support.serve import ServeProcess

#: axe-core's browser build; `.ci/run` installs it with npm into tests/.node.
AXE = Path(
    os.environ.get(
        "CLINIC_AXE",
        Path(__file__).resolve().parents[1] / ".node" / "node_modules" / "axe-core" / "axe.min.js",
    )
)
PAGES = [
    "/",
    "/book",
    "/patients",
    "/week?station=XRAY1",
    "/print-jobs",
    "/exams-without-booking",
    "/admin/",
    "/admin/stations",
    "/admin/catalog",
    "/admin/users",
    "/admin/printers",
    "/admin/audit",
    "/admin/worklist",
    "/admin/patients/merge",
]


def _violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _scrolls_sideways(page: Page) -> bool:
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
    )


def test_pages_are_accessible_and_fit_a_tablet(service: ServeProcess) -> None:
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed at {AXE}; .ci/run installs it with npm")
    base = service.web_url.rstrip("/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for width, height in ((1366, 768), (820, 1180)):
                # The pages forbid inline scripts (CSP); the test injects axe-core anyway.
                page = browser.new_page(
                    viewport={"width": width, "height": height}, bypass_csp=True
                )
                page.goto(base + "/login")
                bad = _violations(page)
                if bad:
                    found[f"/login@{width}"] = bad
                page.get_by_label("User name").fill("admin")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(base + "/")
                for path in PAGES:
                    page.goto(base + path)
                    bad = _violations(page)
                    if bad:
                        found[f"{path}@{width}"] = bad
                    if width == 820 and _scrolls_sideways(page):
                        found[f"{path}@{width}"] = [
                            *found.get(f"{path}@{width}", []),
                            "scrolls sideways",
                        ]
                    name = path.strip("/").replace("/", "-").split("?")[0] or "day"
                    page.screenshot(
                        path=str(ARTIFACTS / f"a11y-{width}-{name}.png"), full_page=True
                    )
                page.close()
        finally:
            browser.close()
    (ARTIFACTS / "a11y-findings.json").write_text(json.dumps(found, indent=1))
    assert found == {}
