"""Load: 20 concurrent modality SCUs query the worklist while the REST API books exams.

Starts ``clinic serve`` on free ports with N bookings (default 10,000), measures the
single-query time on a quiet server (a query every second, as one modality polling
alone; and back to back, "hot"), then for 60 s runs 20 worklist SCUs (each in a
loop: associate, C-FIND "station + today", release) while a REST client books 10 exams
a second, spread over the stations and a month as the generated bookings are (so the
query's answer stays the size it had when the single-query time was taken). Prints
failures (must be 0), p50/p95/p99 latency, the ratio of p95 to the quiet
single-query time, and bookings lost (acknowledged with 201 but absent after).

Each SCU queries once a second by default (``--interval``; a modality polls its
worklist every few seconds to minutes); ``--interval 0`` runs them back to back, a
throughput test in which latency is the number of SCUs over the throughput (Little's
law) rather than a property of one query. The SCUs are the lean raw-socket client of
``lean_scu.py`` (``--client pynetdicom`` for pynetdicom's), so that 20 of them on the
server's own cores cost little CPU.

Usage::

    python benchmarks/load.py [--seconds 60] [--scus 20] [--rate 10] [--bookings 10000]
                              [--interval 1] [--client lean]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import STATIONS, make_bookings, start_clinic, stop  # noqa: E402


def _query() -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.AccessionNumber = ""
    item = Dataset()
    item.ScheduledStationAETitle = "XRAY1"
    item.ScheduledProcedureStepStartDate = dt.date.today().strftime("%Y%m%d")
    item.ScheduledProcedureStepStartTime = ""
    item.Modality = ""
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def scu_worker(
    port: int, until: float, threads: int, out: Any, interval: float = 0.0, client: str = "lean"
) -> None:
    """One process running ``threads`` SCU loops until ``until``; puts (latencies, failures).

    Each loop starts a query every ``interval`` seconds (at a random phase, so the SCUs
    do not march in step), or back to back when ``interval`` is 0.
    """
    import random

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    run = _lean_runner(port) if client == "lean" else _pynetdicom_runner(port)

    def loop() -> None:
        next_at = time.time() + random.uniform(0, interval)
        while time.time() < until:
            if interval:
                time.sleep(max(0.0, next_at - time.time()))
                next_at = max(next_at + interval, time.time())
                if time.time() >= until:
                    break
            start = time.perf_counter()
            try:
                run()
                with lock:
                    latencies.append(time.perf_counter() - start)
            except Exception as exc:  # every failure is counted, none stops the load
                with lock:
                    failures.append(type(exc).__name__ + ": " + str(exc)[:80])

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((latencies, failures))


def _lean_runner(port: int) -> Any:
    """One whole association from the lean raw-socket SCU (little client CPU)."""
    import lean_scu

    query = _query()

    def run() -> None:
        lean_scu.find("127.0.0.1", port, "XRAY1", "CLINIC", query, timeout=120)

    return run


def _pynetdicom_runner(port: int) -> Any:
    """One whole association from a pynetdicom SCU."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore

    def nodelay(event: Any) -> None:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    query = _query()

    def run() -> None:
        assoc = ae.associate(
            "127.0.0.1", port, ae_title="CLINIC", evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)]
        )
        if not assoc.is_established:
            raise RuntimeError("association refused")
        final = None
        for status, _ds in assoc.send_c_find(query, ModalityWorklistInformationFind):
            final = status.Status if status else None
        assoc.release()
        if final != 0x0000:
            raise RuntimeError(f"final status {final}")

    return run


def quiet_single_query(port: int, client: str, runs: int = 30, pause: float = 0.0) -> float:
    """Median seconds of one whole association on an idle server.

    With ``pause`` 0 the queries run back to back (caches and cores stay hot); with a
    pause each query meets an idle server, as one modality polling alone does.
    """
    run = _lean_runner(port) if client == "lean" else _pynetdicom_runner(port)
    times = []
    for _ in range(runs):
        time.sleep(pause)
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def booker(web_port: int, token: str, until: float, rate: float, result: dict[str, Any]) -> None:
    """POST ``rate`` bookings a second until ``until``; record accession numbers of 201s."""
    acked: list[str] = []
    errors: list[str] = []
    number = 0
    next_at = time.time()
    rng = random.Random(11)
    while time.time() < until:
        number += 1
        # Spread like the front desk's bookings: every station, a month around today.
        station, modality = STATIONS[number % len(STATIONS)]
        day = dt.date.today() + dt.timedelta(days=rng.randint(-15, 15))
        start = dt.datetime.combine(day, dt.time(8)) + dt.timedelta(minutes=5 * rng.randrange(120))
        body = {
            "patient_id": f"LOAD{number:06d}",
            "patient_name": f"LOAD^PATIENT{number}",
            "modality": modality,
            "station_ae_title": station,
            "scheduled_start": start.strftime("%Y-%m-%dT%H:%M"),
            "accession_number": f"LOAD{number:08d}",
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port}/api/procedures",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status == 201:
                    acked.append(body["accession_number"])
                else:
                    errors.append(str(response.status))
        except (urllib.error.URLError, OSError) as exc:
            errors.append(str(exc)[:80])
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.time()))
    result["acked"] = acked
    result["errors"] = errors


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    """Set up, load, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--scus", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--bookings", type=int, default=10_000)
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between one SCU's queries (0: back to back, a throughput test)",
    )
    parser.add_argument("--client", choices=["lean", "pynetdicom"], default="lean")
    args = parser.parse_args()
    clinic = shutil.which("clinic") or "clinic"
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        data = Path(tmp) / "var"
        env = {**os.environ, "CLINIC_DATA_DIR": str(data), "CLINIC_LOG_LEVEL": "WARNING"}
        rows = Path(tmp) / "rows.json"
        rows.write_text(json.dumps(make_bookings(args.bookings), ensure_ascii=False))
        subprocess.run(
            [clinic, "procedures", "import", str(rows)], env=env, check=True, capture_output=True
        )
        subprocess.run(
            [clinic, "users", "create", "bench", "--role", "admin"],
            env=env,
            input="bench-password-123\n",
            text=True,
            check=True,
            capture_output=True,
        )
        token = (
            subprocess.run(
                [clinic, "tokens", "create", "bench"],
                env=env,
                text=True,
                check=True,
                capture_output=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        proc, ports = start_clinic(data)
        try:
            single_hot = quiet_single_query(ports["worklist"], args.client)
            single = quiet_single_query(
                ports["worklist"], args.client, runs=20, pause=min(args.interval, 1.0)
            )
            until = time.time() + args.seconds
            processes = min(args.scus, 4)
            queue: Any = mp.Queue()
            workers = []
            for index in range(processes):
                threads = args.scus // processes + (1 if index < args.scus % processes else 0)
                p = mp.Process(
                    target=scu_worker,
                    args=(ports["worklist"], until, threads, queue, args.interval, args.client),
                )
                p.start()
                workers.append(p)
            booked: dict[str, Any] = {}
            booking = threading.Thread(
                target=booker, args=(ports["web"], token, until, args.rate, booked)
            )
            booking.start()
            latencies: list[float] = []
            failures: list[str] = []
            for _ in workers:
                lat, fail = queue.get()
                latencies.extend(lat)
                failures.extend(fail)
            for p in workers:
                p.join()
            booking.join()
        finally:
            stop(proc)
        listed = json.loads(
            subprocess.run(
                [clinic, "procedures", "list", "--json"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        present = {item["accession_number"] for item in listed}
        lost = [acc for acc in booked["acked"] if acc not in present]

    p50, p95, p99 = (percentile(latencies, f) * 1000 for f in (0.50, 0.95, 0.99))
    print(
        "| SCUs | interval s | seconds | queries | queries/s | failures | single ms (hot) | "
        "single ms | p50 ms | p95 ms | p99 ms | p95 / single | p95 / single (hot) | "
        "bookings 201 | booking errors | bookings lost |"
    )
    print("|" + "---|" * 16)
    print(
        f"| {args.scus} | {args.interval:g} | {args.seconds:.0f} | {len(latencies)} | "
        f"{len(latencies) / args.seconds:.1f} | {len(failures)} | "
        f"{single_hot * 1000:.1f} | {single * 1000:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | "
        f"{p95 / (single * 1000):.2f} | {p95 / (single_hot * 1000):.2f} | "
        f"{len(booked['acked'])} | {len(booked['errors'])} | {len(lost)} |"
    )
    if failures:
        print("first failures:", failures[:3])


if __name__ == "__main__":
    main()
