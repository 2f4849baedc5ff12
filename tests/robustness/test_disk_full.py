"""Disk full while spooling: N-ACTION answers "print queue full" and corrupts nothing.

PS3.4 Annex H defines the out-of-resources failure of a print N-ACTION as 0xC602
(Film Box: "unable to create Print Job SOP Instance; print queue is full") and 0xC601
(Film Session, same meaning); the general 0xA700 belongs to C-STORE. Both ways of
filling the disk are tried: the spool's write raising ENOSPC, and a real 2 MB tmpfs.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clinic.config import Settings
from clinic.dicom import status as dimse
from clinic.printing import spool
from clinic.server import ClinicServer
from tests.support.printing import FILM_BOX, FILM_SESSION, PrintScu, gray_image

HELD = {"PDFPRINT": {"hold_seconds": 3600}}  # nothing renders while the test looks


def jobs_and_folders(data_dir: Path) -> tuple[list[tuple[str, str]], set[str]]:
    """The stored jobs (spool folder, status) and the folders in the spool."""
    # The service's database: the SQLite file, or the test's PostgreSQL database.
    url = os.environ.get("CLINIC_DATABASE_URL") or f"sqlite:///{data_dir / 'clinic.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if url.startswith("sqlite"):
                assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            rows = connection.execute(text("SELECT spool_dir, status FROM print_jobs")).all()
    finally:
        engine.dispose()
    folders = {p.name for p in (data_dir / "spool").iterdir()}
    return [(str(a), str(b)) for a, b in rows], folders


def assert_consistent(data_dir: Path) -> int:
    """Every job's folder is complete and readable; no folder without a job."""
    rows, folders = jobs_and_folders(data_dir)
    assert {folder for folder, _ in rows} == folders
    for folder, _ in rows:
        films = spool.read_films(data_dir / "spool" / folder)
        assert films and films[0].images
    return len(rows)


def print_one(scu: PrintScu, session_uid: str, size: int) -> int:
    """N-ACTION on a new one-image film box; the status (the N-SET's, if it failed)."""
    _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
    filled = scu.fill(boxes[0], 1, gray_image(size, size, 90))
    if filled != 0:
        return filled
    status, _ = scu.action(FILM_BOX, film_uid)
    return status


#: A full disk refuses the image box N-SET (its pixels are written to disk as they
#: arrive: 0xC605, insufficient memory to store the image) or the print (0xC602).
DISK_FULL = (dimse.FILM_BOX_QUEUE_FULL, dimse.INSUFFICIENT_MEMORY)


@pytest.fixture
def held(settings: Settings) -> Iterator[ClinicServer]:
    """A running service whose printer holds its jobs."""
    srv = ClinicServer(dataclasses.replace(settings, printers=HELD))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_enospc_while_spooling(held: ClinicServer, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = held.settings.data_dir
    scu = PrintScu(held.print_port)
    try:
        session_uid = scu.session()
        assert print_one(scu, session_uid, 32) == 0

        def full(path: Path, data: bytes) -> None:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        original = spool._fsync_write
        monkeypatch.setattr(spool, "_fsync_write", full)
        assert print_one(scu, session_uid, 32) == dimse.FILM_BOX_QUEUE_FULL  # 0xC602
        status, _ = scu.action(FILM_SESSION, session_uid)
        assert status == dimse.SESSION_QUEUE_FULL  # 0xC601
        assert assert_consistent(data_dir) == 1

        monkeypatch.setattr(spool, "_fsync_write", original)  # space again: it prints on
        assert print_one(scu, session_uid, 32) == 0
        assert assert_consistent(data_dir) == 2
    finally:
        scu.release()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (root only); skipped where it cannot be mounted."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_real_full_disk(small_disk: Path, settings: Settings) -> None:
    # No free-space floor: the spool's own write meets the full disk (ENOSPC).
    srv = ClinicServer(
        dataclasses.replace(settings, data_dir=small_disk, printers=HELD, print_min_free_mb=0)
    )
    srv.start()
    try:
        scu = PrintScu(srv.print_port)
        try:
            session_uid = scu.session()
            statuses = []
            for _ in range(12):  # each film spools ~0.36 MB: the disk fills within 6
                statuses.append(print_one(scu, session_uid, 600))
                if statuses[-1] != 0:
                    break
            assert statuses[0] == 0 and statuses[-1] in DISK_FULL, statuses
            acknowledged = statuses.count(0)
            assert assert_consistent(small_disk) == acknowledged
            # A second try on the full disk fails the same way and leaves nothing behind.
            assert print_one(scu, session_uid, 600) in DISK_FULL
            assert assert_consistent(small_disk) == acknowledged
        finally:
            scu.release()
    finally:
        srv.stop()
    # The queued jobs survive a restart on the still-full disk.
    assert assert_consistent(small_disk) == acknowledged


@pytest.fixture
def eight_mb_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs (root only); skipped where it cannot be mounted."""
    mount = tmp_path / "eight"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_free_space_floor_refuses_jobs_before_the_disk_fills(
    eight_mb_disk: Path, settings: Settings
) -> None:
    """[print] min_free_mb = 4 on an 8 MB disk: films print until less than 4 MiB is
    free, then the print is refused with 0xC602 (film box) and 0xC601 (film session)
    while the disk still has room: nothing ever meets a full disk."""
    srv = ClinicServer(
        dataclasses.replace(settings, data_dir=eight_mb_disk, printers=HELD, print_min_free_mb=4)
    )
    srv.start()
    try:
        scu = PrintScu(srv.print_port)
        try:
            session_uid = scu.session()
            statuses = []
            for _ in range(60):  # each film spools ~0.16 MB: the floor is met within 30
                _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
                assert scu.fill(boxes[0], 1, gray_image(400, 400, 90)) == 0
                status, _ = scu.action(FILM_BOX, film_uid)
                statuses.append(status)
                assert scu.delete(FILM_BOX, film_uid) == 0
                if status != 0:
                    break
            assert statuses[0] == 0 and statuses[-1] == dimse.FILM_BOX_QUEUE_FULL, statuses
            free = shutil.disk_usage(eight_mb_disk).free
            assert 2 * 1024 * 1024 < free < 5 * 1024 * 1024  # refused with room to spare
            acknowledged = statuses.count(0)
            assert assert_consistent(eight_mb_disk) == acknowledged
            _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
            assert scu.fill(boxes[0], 1, gray_image(400, 400, 90)) == 0
            status, _ = scu.action(FILM_SESSION, session_uid)
            assert status == dimse.SESSION_QUEUE_FULL
            assert assert_consistent(eight_mb_disk) == acknowledged
        finally:
            scu.release()
    finally:
        srv.stop()
