"""Nothing acknowledged is lost: ``clinic serve`` killed with SIGKILL under load.

Each round starts ``clinic serve`` on free ports, writes bookings through the REST API
(a token made by ``clinic users create`` and ``clinic tokens create``) and HL7, and prints films
through a pynetdicom print SCU at the same time, then kills the service with SIGKILL
mid-stream. After the last round a restarted service holds every booking answered 201
or AA and every job whose N-ACTION was answered success, and prints every such job.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from clinic.printing import session as s
from tests.support.hl7 import MllpClient, message, msh, obr, orc, pid, segment
from tests.support.printing import FILM_BOX, PrintScu, gray_image
from tests.support.serve import clinic_env, run_clinic, serve_process
from tests.support.waiting import wait_for

ROUNDS = 4
LOAD_SECONDS = 1.5


def clinic(env: dict[str, str], *args: str, stdin: str = "") -> str:
    """Run a ``clinic`` command; its standard output."""
    done = run_clinic(*args, stdin=stdin, env=env, cwd=Path(env["CLINIC_DATA_DIR"]).parent)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Booker(threading.Thread):
    """Books procedures through the REST API until stopped; keeps those answered 201."""

    def __init__(self, port: int, token: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/api/procedures"
        self.token = token
        self.prefix = prefix
        self.acknowledged: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            accession = f"{self.prefix}{n:05d}"
            body = {
                "patient_id": f"P{accession}",
                "patient_name": "CRASH^TEST",
                "modality": "CR",
                "station_ae_title": "XRAY1",
                "scheduled_start": "2026-11-26T09:30",
                "accession_number": accession,
                "allow_overlap": True,  # every booking takes the same slot
            }
            request = urllib.request.Request(
                self.url,
                data=json.dumps(body).encode(),
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 201:
                        self.acknowledged.append(accession)
            except (OSError, urllib.error.URLError):
                return  # the service is gone: this request was never acknowledged


class Orderer(threading.Thread):
    """Sends HL7 new orders until stopped; keeps the accession numbers answered AA."""

    def __init__(self, port: int, prefix: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.prefix = prefix
        self.acknowledged: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            client = MllpClient(self.port)
        except OSError:
            return
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                key = f"{self.prefix}{n:05d}"
                study = f"1.2.826.0.1.3680043.10.543.{int(self.prefix[1:]) + 1}.{n}"
                raw = message(
                    msh(key),
                    pid(f3=f"P{key}^^^PMS^MR"),
                    orc(placer=f"PL{key}", filler=f"FL{key}"),
                    obr(f2=f"PL{key}^PMS", f18=key, f19=key, f20=key),
                    segment("ZDS", {1: f"{study}^CLINIC^Application^DICOM"}),
                )
                if b"MSA|AA|" in client.send(raw):
                    self.acknowledged.append(key)
        except (OSError, AssertionError):
            return  # the service is gone: the message in flight was never acknowledged
        finally:
            client.close()


class Printer(threading.Thread):
    """Prints one-film jobs until stopped; keeps the Print Job UIDs answered success."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.acknowledged: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            scu = PrintScu(self.port, calling="CRASHTEST")
        except Exception:
            return
        try:
            session_uid = scu.session()
            while not self.stop.is_set():
                _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1")
                assert scu.fill(boxes[0], 1, gray_image(64, 64, 100)) == 0
                status, reply = scu.action(FILM_BOX, film_uid)
                if status == 0 and reply is not None:
                    ref = reply.ReferencedPrintJobSequence[0]
                    self.acknowledged.append(str(ref.ReferencedSOPInstanceUID))
                scu.delete(FILM_BOX, film_uid)
        except Exception:
            return  # association aborted by the kill
        finally:
            if scu.assoc.is_established:
                scu.assoc.abort()


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    config = tmp_path / "clinic.toml"
    # Jobs wait a second before they print: each kill leaves some acknowledged, unprinted.
    config.write_text("[printers.PDFPRINT]\nhold_seconds = 1.0\n", encoding="utf-8")
    env = clinic_env(data_dir, config)
    clinic(env, "users", "create", "desk", "--role", "frontdesk", stdin="s3cret-pass-word\n")
    token = clinic(env, "tokens", "create", "desk").strip().splitlines()[-1]

    bookings: list[str] = []
    orders: list[str] = []
    jobs: list[str] = []
    for round_number in range(ROUNDS):
        with serve_process(data_dir, config, tmp_path) as serve:
            booker = Booker(serve.web_port, token, f"K{round_number}")
            orderer = Orderer(serve.hl7_port, f"H{round_number}")
            printers = [Printer(serve.print_port) for _ in range(2)]
            workers: list[Booker | Orderer | Printer] = [booker, orderer, *printers]
            for worker in workers:
                worker.start()
            time.sleep(LOAD_SECONDS)
            serve.kill()  # SIGKILL mid-stream: requests in flight are never answered
        for worker in workers:
            worker.stop.set()
            worker.join(timeout=30)
        bookings += booker.acknowledged
        orders += orderer.acknowledged
        jobs += [uid for p in printers for uid in p.acknowledged]
        assert booker.acknowledged and orderer.acknowledged, serve.log()
        assert any(p.acknowledged for p in printers), serve.log()

    # The service's own database: the SQLite file, or the test's PostgreSQL database.
    url = os.environ.get("CLINIC_DATABASE_URL") or f"sqlite:///{data_dir / 'clinic.db'}"
    engine = create_engine(url)
    with engine.connect() as database:
        if url.startswith("sqlite"):
            assert database.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        stored_orders = set(database.scalars(text("SELECT accession_number FROM procedures")))
        unprinted = database.execute(
            text("SELECT count(*) FROM print_jobs WHERE status = 'queued'")
        ).scalar_one()
    assert unprinted > 0  # the restarted service has work left by the kill
    assert not set(orders) - stored_orders, "acknowledged HL7 order(s) lost"

    try:
        with serve_process(data_dir, config, tmp_path) as serve:
            request = urllib.request.Request(
                f"http://127.0.0.1:{serve.web_port}/api/procedures?date=2026-11-26",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                stored = {p["accession_number"] for p in json.load(answer)}
            missing = set(bookings) - stored
            assert not missing, f"{len(missing)} acknowledged booking(s) lost"

            def printed() -> dict[str, Any] | None:
                with engine.connect() as connection:
                    found = connection.execute(
                        text("SELECT sop_instance_uid, status, pdf_path FROM print_jobs")
                    ).all()
                rows = {uid: (status, pdf) for uid, status, pdf in found}
                if all(rows.get(uid, ("",))[0] == "done" for uid in jobs):
                    return rows
                return None

            rows = wait_for(printed, timeout=60, what="every acknowledged job printed")
            assert all(Path(rows[uid][1]).is_file() for uid in jobs)
            scu = PrintScu(serve.print_port)
            try:
                for uid in jobs[:5]:
                    status, job = scu.get(s.PRINT_JOB, uid, [0x21000020], meta=False)
                    assert status == 0 and job is not None and job.ExecutionStatus == "DONE"
            finally:
                scu.release()
            assert serve.stop() == 0, serve.log()
    finally:
        engine.dispose()
    print(
        f"{ROUNDS} kills: {len(bookings)} API bookings, {len(orders)} HL7 orders and "
        f"{len(jobs)} print jobs acknowledged, "
        f"{unprinted} printed after the restart"
    )
