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
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_bookings  # noqa: E402


def run_import(path: Path, data_dir: Path) -> tuple[float, float, str]:
    """Run the import command; return (seconds, peak MiB of the child, last stderr line)."""
    env = {**os.environ, "CLINIC_DATA_DIR": str(data_dir), "CLINIC_LOG_LEVEL": "WARNING"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [shutil.which("clinic") or "clinic", "procedures", "import", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    bar = [line for line in proc.stderr.replace("\r", "\n").splitlines() if "row" in line]
    return seconds, peak, bar[-1].strip() if bar else "(no progress bar)"


def main() -> None:
    """Generate, import twice, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        work = Path(tmp)
        path = work / "bookings.json"
        path.write_text(json.dumps(make_bookings(args.rows), ensure_ascii=False))
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
