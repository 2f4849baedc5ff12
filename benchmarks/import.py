"""Bulk import speed: N bookings through ``clinic procedures import``.

Generates N realistic bookings (default 100,000) as a JSON file, imports them into a
fresh database with the real command (progress bar on), and prints seconds, rows per
second and the importing process's peak memory. A second run re-imports the same
file (every row an update: the idempotent path).

Usage::

    python benchmarks/import.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_bookings(path: Path, rows: int) -> None:
    """Write the file from a child process, so that this one stays small.

    A child started with vfork (as subprocess does) inherits its parent's peak resident
    size until it runs the program: a large parent would inflate every import's peak.
    """
    code = (
        "import json, sys; from common import make_bookings; "
        "open(sys.argv[1], 'w', encoding='utf-8')"
        ".write(json.dumps(make_bookings(int(sys.argv[2])), ensure_ascii=False))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(rows)],
        cwd=Path(__file__).resolve().parent,
        check=True,
    )


def run_import(path: Path, data_dir: Path) -> tuple[float, float, str]:
    """Run the import command; return (seconds, peak MiB of the child, last stderr line)."""
    env = {**os.environ, "CLINIC_DATA_DIR": str(data_dir), "CLINIC_LOG_LEVEL": "WARNING"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [shutil.which("clinic") or "clinic", "procedures", "import", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not any earlier one's
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"import failed ({proc.returncode}): {stderr[-2000:]}")
    bar = [line for line in stderr.replace("\r", "\n").splitlines() if "row" in line]
    return seconds, usage.ru_maxrss / 1024, bar[-1].strip() if bar else "(no progress bar)"


def main() -> None:
    """Generate, import twice, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        work = Path(tmp)
        path = work / "bookings.json"
        write_bookings(path, args.rows)
        rows = []
        for label in ("first import (creates)", "re-import (updates)"):
            seconds, peak, bar = run_import(path, work / "var")
            rows.append((label, seconds, args.rows / seconds, peak, bar))
        print("| run | rows | seconds | rows/s | peak MiB | progress bar (last line) |")
        print("|---|---|---|---|---|---|")
        for label, seconds, rate, peak, bar in rows:
            print(f"| {label} | {args.rows} | {seconds:.1f} | {rate:,.0f} | {peak:.0f} | {bar} |")


if __name__ == "__main__":
    main()
