"""The data folder is private: `clinic serve` and the commands that write make the folder
0700 and every file 0600 (database, WAL, secret key, PDFs, spool files), including those
an older version left readable to everyone."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from clinic.store.db import make_engine, make_session_factory
from clinic.store.migrate import upgrade
from clinic.store.models import PrintJob
from clinic.store.private import make_private
from tests.support.database import ON_POSTGRESQL
from tests.support.printing import FILM_BOX, PrintScu, gray_image
from tests.support.serve import ServeProcess
from tests.support.waiting import wait_for


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def loose(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) that group or others may use."""
    found = [f"{root} {mode(root):o}"] if mode(root) != 0o700 else []
    for folder, folders, files in os.walk(root):
        for name in folders:
            if mode(Path(folder) / name) != 0o700:
                found.append(f"{Path(folder) / name} {mode(Path(folder) / name):o}")
        for name in files:
            if (Path(folder) / name).is_symlink():
                continue
            if mode(Path(folder) / name) & 0o077:
                found.append(f"{Path(folder) / name} {mode(Path(folder) / name):o}")
    return found


def print_film(port: int, printer: str) -> None:
    scu = PrintScu(port, called=printer)
    session_uid = scu.session()
    _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
    assert scu.fill(boxes[0], 1, gray_image(32, 32, 60)) == 0
    status, _ = scu.action(FILM_BOX, film_uid)
    assert status == 0
    scu.release()


def test_serve_makes_the_data_folder_private(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    # What an older version left: everything readable by every local user.
    with umask(0o022):
        data_dir.mkdir()
        engine = make_engine(database_url or f"sqlite:///{data_dir / 'clinic.db'}")
        upgrade(engine)
        (data_dir / "pdf").mkdir()
        (data_dir / "pdf" / "old-job.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
        (data_dir / "secret_key").write_text("0" * 64 + "\n")
    os.chmod(data_dir / "secret_key", 0o644)
    os.chmod(data_dir, 0o755)
    assert mode(data_dir) == 0o755 and mode(data_dir / "pdf" / "old-job.pdf") == 0o644
    config = tmp_path / "clinic.toml"
    # HOLD keeps its jobs queued: their spooled images are still there to look at.
    config.write_text("[printers.HOLD]\nhold_seconds = 3600\n", encoding="utf-8")
    factory = make_session_factory(engine)
    serve = ServeProcess(data_dir, config, tmp_path).start()
    try:
        print_film(serve.print_port, "PDFPRINT")
        print_film(serve.print_port, "HOLD")

        def printed() -> list[PrintJob]:
            with factory() as session:
                jobs = list(session.scalars(select(PrintJob).where(PrintJob.status == "done")))
            return [j for j in jobs if j.pdf_path and Path(j.pdf_path).is_file()]

        [job] = wait_for(printed, timeout=60, what="the PDF")
        pdf = Path(job.pdf_path)
        spooled = [p for p in (data_dir / "spool").rglob("*") if p.is_file()]
        written = [data_dir / "secret_key", pdf, *spooled]
        if not ON_POSTGRESQL:
            database = data_dir / "clinic.db"
            written += [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        assert spooled, "the held job's images are in the spool"
        for path in written:
            assert path.is_file(), path
            assert mode(path) == 0o600, (path, oct(mode(path)))
        assert mode(data_dir) == 0o700 and mode(pdf.parent) == 0o700
        assert mode(data_dir / "pdf" / "old-job.pdf") == 0o600
        assert loose(data_dir) == [], serve.log()
    finally:
        assert serve.stop() == 0, serve.log()
        engine.dispose()
    assert loose(data_dir) == []


def test_commands_that_write_keep_their_files_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with umask(0o022):
        data_dir.mkdir()
        (data_dir / "left-over.txt").write_text("x")
    config = tmp_path / "clinic.toml"
    config.write_text("", encoding="utf-8")
    env = {**os.environ, "CLINIC_DATA_DIR": str(data_dir), "CLINIC_CONFIG": str(config)}
    env.pop("CLINIC_DATABASE_URL", None)  # a SQLite file in the data folder
    backup = tmp_path / "backups" / "clinic.db"
    for args in (["db", "upgrade"], ["backup", str(backup)]):
        done = subprocess.run(
            [sys.executable, "-c", "from clinic.cli import main; main()", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert loose(data_dir) == []
    assert mode(data_dir / "clinic.db") == 0o600
    assert mode(backup) == 0o600 and mode(backup.parent) == 0o700


def test_make_private_leaves_links_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    data_dir = tmp_path / "var"
    with umask(0o022):  # whatever an earlier test in this process set
        outside.write_text("x")
        data_dir.mkdir()
        (data_dir / "link").symlink_to(outside)
        (data_dir / "sub").mkdir()
        (data_dir / "sub" / "file").write_text("y")
    os.chmod(outside, 0o644)
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "sub", 0o775)
    os.chmod(data_dir / "sub" / "file", 0o664)
    with umask(0o022):
        assert make_private(data_dir) == 3  # the folder, sub and its file
        assert os.umask(0o022) == 0o077
    assert mode(outside) == 0o644
    assert loose(data_dir) == []
    assert make_private(data_dir) == 0
