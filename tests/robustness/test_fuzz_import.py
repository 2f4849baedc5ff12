"""Fuzzing import rows and import files: every row is booked or named in a clear error.

``clean_procedure`` and ``import_procedures`` get random rows on a real SQLite store
(all or nothing: a refused import writes nothing); ``read_rows`` gets random bytes
and broken encodings; ``clinic procedures import`` refuses such files with exit 1.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from clinic.cli import ImportRows, main, read_rows
from clinic.domain.bookings import Scheduler
from clinic.domain.errors import PatientConflict, ValidationError
from clinic.domain.fields import WRITABLE_FIELDS, clean_procedure
from tests.support.dicom_bytes import fuzz_settings
from tests.support.import_rows import GOOD, counts, rows

FUZZ = fuzz_settings(150)


@FUZZ
@given(row=rows(), partial=st.booleans())
@example(row={**GOOD, "scheduled_start": "2026-11-26T09:30:00+99:00"}, partial=False)
@example(row={**GOOD, "patient_birth_date": "\ud800"}, partial=False)
@example(row={**GOOD, "station_ae_title": "../../etc/passwd"}, partial=False)
def test_clean_procedure(row: dict[str, Any], partial: bool) -> None:
    try:
        cleaned = clean_procedure(row, partial=partial)
    except ValidationError as exc:
        assert exc.errors and all(isinstance(v, str) and v for v in exc.errors.values())
    else:
        assert set(cleaned) <= set(WRITABLE_FIELDS)


@FUZZ
@given(batch=st.lists(rows(), min_size=1, max_size=4))
# Regression: a lone surrogate (JSON "\ud800") passed validation and failed in the store.
@example(batch=[{**GOOD, "patient_id": "\ud800"}])
def test_import_is_all_or_nothing(scheduler: Scheduler, batch: list[dict[str, Any]]) -> None:
    before = counts(scheduler)
    try:
        result = scheduler.import_procedures(batch, actor="fuzz")
    except (ValidationError, PatientConflict) as exc:
        assert exc.row is not None and 1 <= exc.row <= len(batch)
        assert counts(scheduler) == before
    else:
        assert result is not None


def read_bytes(data: bytes, suffix: str) -> ImportRows | None:
    """``read_rows`` on a file holding ``data``; None when it refuses the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"import{suffix}"
        path.write_bytes(data)
        try:
            return read_rows(path)
        except click.ClickException as exc:
            assert exc.message
            return None


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8")),
        st.lists(rows(), max_size=3).map(lambda r: json.dumps(r).encode("utf-8")),
    ),
    suffix=st.sampled_from([".json", ".csv", ".txt"]),
)
@example(data=b"\xef\xbb\xbf[{}]", suffix=".json")
@example(data=b"patient_id\r\n\xff\xfe", suffix=".csv")
@example(data=b'"unterminated\n', suffix=".csv")
@example(data=b"[" * 5000, suffix=".json")
@example(data=b"a,b\n1,2,3\n", suffix=".csv")
@example(data=b"a,,b\n1,2,3\n", suffix=".csv")
def test_read_rows_random_bytes(scheduler: Scheduler, data: bytes, suffix: str) -> None:
    parsed = read_bytes(data, suffix)
    if parsed is None:
        return
    assert all(isinstance(r, dict) for r in parsed)
    before = counts(scheduler)
    try:
        scheduler.import_procedures(parsed, actor="fuzz")
    except (ValidationError, PatientConflict):
        assert counts(scheduler) == before


#: Pieces of JSON text, put together at random: valid files, and files broken anywhere.
JSON_PIECES = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        '"a"',
        "1",
        "-2.5e3",
        " ",
        "\n",
        "\t",
        "null",
        "true",
        '{"patient_id": "P1"}',
        "[]",
        "{}",
        "x",
        '"',
        "NaN",
        "\\u00e9",
        "\u00e9",
    ]
)


@FUZZ
@given(
    text=st.one_of(
        st.lists(JSON_PIECES, max_size=14).map("".join),
        st.lists(st.dictionaries(st.text(max_size=3), st.text(max_size=3)), max_size=4).map(
            lambda r: json.dumps(r, indent=1, ensure_ascii=False)
        ),
    )
)
@example(text='[{"a": 1},]')
@example(text='[{"a": 1}] x')
@example(text='[1, {"a": 1}')
@example(text='  [ {"a": 1} ,\n {"b": [1, {"c": 2}]} ]  \n')
def test_json_rows_are_read_one_by_one_as_json_loads_reads_them(text: str) -> None:
    """The row-by-row reader takes exactly what ``json.loads`` takes, row for row."""
    try:
        whole = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        whole = None
    expected = (
        whole if isinstance(whole, list) and all(isinstance(r, dict) for r in whole) else None
    )
    parsed = read_bytes(text.encode("utf-8"), ".json")
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None and len(parsed) == len(expected)
        # Compared as JSON text: NaN is not equal to itself.
        assert json.dumps(list(parsed)) == json.dumps(expected)
        assert json.dumps(list(parsed)) == json.dumps(expected)  # again from the first row


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("latin1.csv", "patient_id,patient_name\nP1,MÜLLER^HANS\n".encode("latin-1")),
        ("utf16.json", json.dumps([GOOD]).encode("utf-16")),
        ("cut.json", json.dumps([GOOD, GOOD]).encode("utf-8")[:-7]),
        ("cut-utf8.csv", "patient_id,patient_name\nP1,MÜ".encode()[:-1]),
        ("nul.csv", b"patient_id\x00,patient_name\nP1,X\n"),
    ],
)
def test_cli_refuses_broken_files_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    path.write_bytes(data)
    env = {"CLINIC_DATA_DIR": str(tmp_path / "data"), "CLINIC_CONFIG": None}
    runner = CliRunner()
    result = runner.invoke(main, ["procedures", "import", str(path)], env=env)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    listed = runner.invoke(main, ["procedures", "list", "--json"], env=env)
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
