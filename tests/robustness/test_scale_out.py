"""Two ``clinic serve`` processes on one PostgreSQL database: one clinic, two machines.

They share the bookings and the print queue (and the data folder, where the spooled
pixels and PDFs live); every print job is rendered by exactly one of them.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from clinic.store.db import make_engine, make_session_factory
from clinic.store.models import PrintJob
from tests.support.database import postgresql_only
from tests.support.printing import FILM_BOX, PrintScu, gray_image
from tests.support.serve import ServeProcess, serve_process
from tests.support.services import api_token, booking, post_json, worklist_accessions
from tests.support.waiting import wait_for

pytestmark = postgresql_only

JOBS_PER_SERVICE = 8
PRINTED = re.compile(r"print job (\d+) printed")


@pytest.fixture
def two_services(tmp_path: Path, database_url: str) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    config = tmp_path / "clinic.toml"
    # Jobs are held a moment, so that both workers find the same jobs due at once.
    config.write_text("[printers.PDFPRINT]\nhold_seconds = 2.0\n", encoding="utf-8")
    data_dir = tmp_path / "shared"
    with (
        serve_process(data_dir, config, tmp_path) as first,
        serve_process(data_dir, config, tmp_path) as second,
    ):
        yield first, second
        assert second.stop() == 0, second.log()
        assert first.stop() == 0, first.log()


def test_a_booking_through_one_is_on_the_worklist_of_the_other(
    two_services: tuple[ServeProcess, ServeProcess], database_url: str
) -> None:
    first, second = two_services
    token = api_token(database_url)
    status, body = post_json(first.ports["web"], "/api/procedures", token, booking(1))
    assert status == 201, body
    assert worklist_accessions(second.ports["mwl"]) == {"ACC00000001"}
    status, body = post_json(second.ports["web"], "/api/procedures", token, booking(2))
    assert status == 201, body
    assert worklist_accessions(first.ports["mwl"]) == {"ACC00000001", "ACC00000002"}


def _print_films(port: int, count: int, errors: list[str]) -> None:
    """Send ``count`` one-film print jobs, one association each (a film session each)."""
    try:
        for n in range(count):
            scu = PrintScu(port)
            try:
                session_uid = scu.session()
                _, box_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
                status = scu.fill(boxes[0], 1, gray_image(64, 64, 40 + n))
                assert status == 0, f"image box N-SET: {status:#06x}"
                status, _ = scu.action(FILM_BOX, box_uid)
                assert status == 0, f"film box N-ACTION: {status:#06x}"
            finally:
                scu.release()
    except Exception as exc:  # reported by the test thread
        errors.append(f"{type(exc).__name__}: {exc}")


def test_every_print_job_is_rendered_exactly_once(
    two_services: tuple[ServeProcess, ServeProcess], database_url: str
) -> None:
    first, second = two_services
    errors: list[str] = []
    senders = [
        threading.Thread(target=_print_films, args=(svc.ports["print"], JOBS_PER_SERVICE, errors))
        for svc in (first, second)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=120)
    assert not errors, errors
    total = 2 * JOBS_PER_SERVICE

    engine = make_engine(database_url)
    factory = make_session_factory(engine)

    def all_done() -> list[PrintJob] | None:
        with factory() as session:
            jobs = list(session.scalars(select(PrintJob)))
        return jobs if len(jobs) == total and all(j.status == "done" for j in jobs) else None

    jobs: list[PrintJob] = wait_for(all_done, timeout=120, what="every job printed")
    engine.dispose()
    assert all(job.attempts == 1 for job in jobs), [(j.id, j.attempts) for j in jobs]
    assert all(Path(job.pdf_path).is_file() for job in jobs)

    def printed_lines() -> Counter[int] | None:
        seen = Counter(int(m) for svc in (first, second) for m in PRINTED.findall(svc.log()))
        return seen if sum(seen.values()) >= total else None

    rendered: Counter[int] = wait_for(printed_lines, timeout=30, what="the workers' log lines")
    assert rendered == Counter({job.id: 1 for job in jobs})
