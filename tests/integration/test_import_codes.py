"""Codes in import files: a JSON object, a JSON cell in CSV, or three CSV columns."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import Clinic, booking, write_csv, write_json

CHEST = {"value": "36643-5", "scheme": "LN", "meaning": "XR Chest 2V"}
PROTOCOL = {"value": "P-CH2", "scheme": "99CLINIC", "meaning": "Chest PA+LAT"}


def test_json_import_with_codes(clinic: Clinic, tmp_path: Path) -> None:  # noqa: F811
    rows = [booking(1, procedure_code=CHEST, protocol_code=PROTOCOL), booking(2)]
    result = clinic("procedures", "import", str(write_json(tmp_path / "b.json", rows)))
    assert result.exit_code == 0, result.output
    items = {i["accession_number"]: i for i in clinic.listed()}
    assert items["ACC1"]["procedure_code"] == CHEST
    assert items["ACC1"]["protocol_code"] == PROTOCOL
    assert items["ACC2"]["procedure_code"] is None


def test_csv_import_with_columns_or_a_json_cell(clinic: Clinic, tmp_path: Path) -> None:  # noqa: F811
    rows = [
        booking(
            1,
            procedure_code_value="36643-5",
            procedure_code_scheme="LN",
            procedure_code_meaning="XR Chest 2V",
            protocol_code=json.dumps(PROTOCOL),
        ),
        booking(
            2,
            procedure_code_value="",
            procedure_code_scheme="",
            procedure_code_meaning="",
            protocol_code="",
        ),
    ]
    result = clinic("procedures", "import", str(write_csv(tmp_path / "b.csv", rows)))
    assert result.exit_code == 0, result.output
    items = {i["accession_number"]: i for i in clinic.listed()}
    assert items["ACC1"]["procedure_code"] == CHEST
    assert items["ACC1"]["protocol_code"] == PROTOCOL
    assert items["ACC2"]["procedure_code"] is None


def test_csv_row_with_half_a_code_is_named(clinic: Clinic, tmp_path: Path) -> None:  # noqa: F811
    rows = [
        booking(1, procedure_code_value="X1", procedure_code_scheme="", procedure_code_meaning="")
    ]
    result = clinic("procedures", "import", str(write_csv(tmp_path / "b.csv", rows)))
    assert result.exit_code == 1
    assert "row 1, field procedure_code: scheme is required" in result.output
