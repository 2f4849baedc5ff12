"""`clinic print-jobs list --json` and `reprint`, and failures recorded with their reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from clinic.cli import main
from clinic.config import Settings
from clinic.printing import spool
from clinic.server import ClinicServer
from tests.support.printing import FILM_BOX, PrintScu, gray_image, page_sizes_mm, wait_for_job
from tests.support.serve import clinic_env, run_clinic
from tests.support.waiting import wait_for

FIELDS = {
    "id",
    "status",
    "calling_ae_title",
    "printer_ae_title",
    "films",
    "pages",
    "pdf_path",
    "created_at",
}


def print_one_film(port: int, called: str = "PDFPRINT", film_size: str = "14INX17IN") -> None:
    scu = PrintScu(port, called=called, calling="XRAY1")
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1", FilmSizeID=film_size)
    assert scu.fill(boxes[0], 1, gray_image(32, 32, 77)) == 0
    assert scu.action(FILM_BOX, film_uid)[0] == 0
    scu.release()


def test_list_json_and_reprint(server: ClinicServer, settings: Settings) -> None:
    print_one_film(server.print_port)
    assert server.session_factory is not None
    first = wait_for_job(server.session_factory)

    env = {"CLINIC_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(main, ["print-jobs", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.output)
    assert set(item) >= FIELDS
    assert item["id"] == first.id and item["status"] == "done"
    assert item["calling_ae_title"] == "XRAY1" and item["printer_ae_title"] == "PDFPRINT"
    assert (item["films"], item["pages"]) == (1, 1)
    pdf = Path(str(item["pdf_path"]))
    assert pdf.is_absolute() and pdf.is_file()
    dt.datetime.fromisoformat(str(item["created_at"]))

    pdf.unlink()
    result = CliRunner().invoke(main, ["print-jobs", "reprint", str(first.id)], env=env)
    assert result.exit_code == 0, result.output
    wait_for(pdf.is_file, what="the reprinted PDF")
    again = wait_for_job(server.session_factory, first.id)
    assert again.attempts == 2 and again.pdf_path == str(pdf)

    result = CliRunner().invoke(main, ["print-jobs", "reprint", "999"], env=env)
    assert result.exit_code == 1 and "no print job 999" in result.output


def test_failure_is_recorded_and_paper_mapping(settings: Settings, tmp_path: Path) -> None:
    configured = dataclasses.replace(
        settings,
        printers={
            "BROKEN": {"cups_queue": "no-such-queue", "cups_server": str(tmp_path / "nosock")},
            "OFFICE": {"paper": {"14INX17IN": "A4"}, "pdf_dir": str(tmp_path / "office")},
        },
    )
    srv = ClinicServer(configured)
    srv.start()
    try:
        assert srv.session_factory is not None
        print_one_film(srv.print_port, called="BROKEN")
        failed = wait_for_job(srv.session_factory, status="failed")
        assert "lp" in failed.error
        print_one_film(srv.print_port, called="OFFICE")
        done = wait_for_job(srv.session_factory)
        assert Path(done.pdf_path).parent == (tmp_path / "office").resolve()
        # A 14x17 inch film scaled onto the A4 paper the office printer has.
        assert page_sizes_mm(Path(done.pdf_path)) == [pytest.approx((210, 297), abs=0.2)]
    finally:
        srv.stop()


def test_serve_refuses_an_invalid_printer_profile(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text('[printers.BAD]\nfilm_sizes = ["15INX15IN"]\n', encoding="utf-8")
    done = run_clinic("serve", env=clinic_env(tmp_path / "var", config), cwd=tmp_path)
    assert done.returncode == 1
    assert "[printers.BAD]" in done.stderr and "15INX15IN" in done.stderr


def test_held_job_prints_when_it_falls_due(
    fresh_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker sleeps until a held job falls due, not until its next look at the store."""
    monkeypatch.setattr(spool, "POLL_S", 30.0)
    held = dataclasses.replace(fresh_store, printers={"PDFPRINT": {"hold_seconds": 0.5}})
    srv = ClinicServer(held)
    srv.start()
    try:
        began = time.monotonic()
        print_one_film(srv.print_port)
        assert srv.session_factory is not None
        wait_for_job(srv.session_factory)
        assert 0.5 <= time.monotonic() - began < 10.0
    finally:
        srv.stop()
