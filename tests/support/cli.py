"""Shared test helpers."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from clinic.cli import main


def booking(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "patient_id": f"P{n}",
        "patient_name": f"DOE^JANE{n}" if n != 1 else "MÜLLER^HANS",
        "patient_birth_date": "1980-01-15",
        "patient_sex": "F",
        "accession_number": f"ACC{n}",
        "modality": "CR",
        "station_ae_title": "XRAY1",
        "scheduled_start": f"2026-11-{26 + n % 2}T{8 + n % 10:02d}:00",
        "procedure_description": "Chest PA",
        "referring_physician": "WHO^DR",
        **changes,
    }


class Clinic:
    """Runs ``clinic`` commands against a data folder of its own."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(
            main,
            list(args),
            env={"CLINIC_DATA_DIR": str(self.data_dir), "CLINIC_CONFIG": None},
            catch_exceptions=False,
        )

    def listed(self, *args: str) -> list[dict[str, Any]]:
        result = self("procedures", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        items: list[dict[str, Any]] = json.loads(result.stdout)
        return items


def write_json(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(list(rows), ensure_ascii=False), encoding="utf-8")
    return path


def write_csv(path: Path, rows: Sequence[dict[str, Any]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
