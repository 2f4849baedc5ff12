"""No acknowledged film is lost: kill -9 after N-ACTION success, the restarted service prints it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from clinic.printing import session as s
from clinic.printing.layout import Rect, film_dimensions, image_boxes, parse_display_format
from clinic.printing.render import HEADER_MM
from clinic.store.models import PrintJob
from tests.support.printing import (
    FILM_BOX,
    PrintScu,
    gray_image,
    rasterize,
    sample,
    wait_for_job,
)
from tests.support.serve import serve_process


def test_job_acknowledged_before_a_crash_prints_after_restart(
    tmp_path: Path, database_url: str
) -> None:
    config = tmp_path / "clinic.toml"
    # The printer holds jobs for an hour: the crash surely comes before rendering.
    config.write_text("[printers.PDFPRINT]\nhold_seconds = 3600\n", encoding="utf-8")
    data_dir = tmp_path / "var"
    with serve_process(data_dir, config, tmp_path) as serve:
        scu = PrintScu(serve.print_port)
        session_uid = scu.session()
        _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\2,1", FilmSizeID="8INX10IN")
        assert scu.fill(boxes[0], 1, gray_image(32, 32, 60)) == 0
        assert scu.fill(boxes[1], 2, gray_image(32, 32, 200, bits=8)) == 0
        status, reply = scu.action(FILM_BOX, film_uid)
        assert status == 0 and reply is not None
        job_uid = reply.ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID
        status, print_job = scu.get(s.PRINT_JOB, job_uid, [0x21000020], meta=False)
        assert status == 0 and print_job is not None
        assert print_job.ExecutionStatus == "PENDING"
        scu.assoc.abort()
        serve.kill()  # as in a power cut: no clean-up of any kind

    engine = create_engine(database_url or f"sqlite:///{data_dir / 'clinic.db'}")
    factory = sessionmaker(engine)
    try:
        with factory() as session:
            (job,) = session.scalars(select(PrintJob))
            assert job.status == "queued"
        assert not Path(job.pdf_path).exists()
        spooled = list((data_dir / "spool" / job.spool_dir).iterdir())
        # Server-made file names only: nothing derived from the modality's UIDs.
        assert all(session_uid not in p.name and film_uid not in p.name for p in spooled)

        # Pixels written by a job whose N-ACTION never got its answer: dropped at start.
        orphan = data_dir / "spool" / "0123456789abcdef01234567"
        orphan.mkdir()
        (orphan / "job.json").write_text("{}", encoding="utf-8")
        # Left by a crash a while ago (on a data folder shared by several services, a
        # young folder may be a job another service is committing: it is left alone).
        an_hour_ago = time.time() - 3600
        os.utime(orphan, (an_hour_ago, an_hour_ago))

        config.write_text("[printers.PDFPRINT]\nhold_seconds = 0\n", encoding="utf-8")
        with serve_process(data_dir, config, tmp_path) as restarted:
            done = wait_for_job(factory, job.id)
            assert not orphan.exists()
            assert restarted.stop() == 0, restarted.log()
    finally:
        engine.dispose()

    page = rasterize(Path(done.pdf_path), 30)[0]
    width, height = film_dimensions("8INX10IN", "PORTRAIT")
    area = Rect(0, HEADER_MM, width, height - HEADER_MM)
    centres = [b.center for b in image_boxes(parse_display_format("STANDARD\\2,1"), area)]
    assert sample(page, *centres[0], 30) == pytest.approx((60,) * 3, abs=2)
    assert sample(page, *centres[1], 30) == pytest.approx((200,) * 3, abs=2)
