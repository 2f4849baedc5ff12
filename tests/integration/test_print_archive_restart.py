"""kill -9 between printing and archiving loses nothing: the restarted service sends the job."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from clinic.domain.bookings import Scheduler
from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from clinic.store.models import PrintJob
from tests.support.archive import PACS_AE, free_port, received, storescp
from tests.support.printing import FILM_BOX, PrintScu, gray_image
from tests.support.serve import serve_process
from tests.support.waiting import wait_for


def test_job_printed_while_the_pacs_was_down_arrives_after_a_kill_and_restart(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    engine = make_engine(database_url or f"sqlite:///{data_dir / 'clinic.db'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    proc = Scheduler(factory).book(
        {
            "patient_id": "P-KILL-9",
            "patient_name": "DOE^JANE",
            "modality": "PX",
            "station_ae_title": "PANO1",
            "scheduled_start": dt.datetime.now().strftime("%Y-%m-%dT%H:%M"),
        },
        actor="test",
    )
    port = free_port()
    # The default printer archives (CLINIC_PRINT_ARCHIVE); the PACS is not there yet.
    archive = {"CLINIC_PRINT_ARCHIVE": f"{PACS_AE}@127.0.0.1:{port}"}
    config = tmp_path / "clinic.toml"
    config.write_text("[printers.PDFPRINT]\narchive_retry_max_seconds = 1\n", encoding="utf-8")

    def job() -> PrintJob | None:
        with factory() as session:
            return session.scalars(select(PrintJob)).first()

    with serve_process(data_dir, config, tmp_path, env=archive) as serve:
        scu = PrintScu(serve.print_port, calling="PANO1")
        session_uid = scu.session()
        _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1", FilmSizeID="8INX10IN")
        assert scu.fill(boxes[0], 1, gray_image(32, 32, 90)) == 0
        assert scu.action(FILM_BOX, film_uid)[0] == 0
        scu.release()

        def tried() -> PrintJob | None:
            row = job()
            return row if row is not None and row.archive_attempts >= 1 else None

        row = wait_for(tried, timeout=60, what="a failed archive attempt")
        assert row.status == "done" and row.archive_status == "pending"
        assert row.procedure_id == proc.id
        serve.kill()  # as in a power cut

    out = tmp_path / "pacs"
    try:
        with (
            storescp(out, port),
            serve_process(data_dir, config, tmp_path, env=archive) as restarted,
        ):

            def sent() -> bool:
                row = job()
                return row is not None and row.archive_status == "sent"

            wait_for(sent, timeout=60, what="the job archived after the restart")
            (ds,) = received(out, 1)
            assert restarted.stop() == 0, restarted.log()
    finally:
        engine.dispose()
    assert ds.PatientID == "P-KILL-9" and ds.StudyInstanceUID == proc.study_instance_uid
    assert ds.AccessionNumber == proc.accession_number
    for log in (serve.log(), restarted.log()):  # no patient data in the service's log
        assert "DOE" not in log and "P-KILL-9" not in log
