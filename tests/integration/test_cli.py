"""The ``clinic`` command line: imports, listings, database upgrades, refused settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from clinic.cli import main
from tests.support.cli import Clinic, booking, write_csv, write_json

FIELDS = [
    "patient_id",
    "patient_name",
    "patient_birth_date",
    "patient_sex",
    "accession_number",
    "modality",
    "station_ae_title",
    "scheduled_start",
    "procedure_description",
    "referring_physician",
]


def test_import_json(clinic: Clinic, tmp_path: Path) -> None:
    path = write_json(tmp_path / "b.json", [booking(n) for n in range(1, 4)])
    result = clinic("procedures", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 3 row(s): 3 created, 0 updated" in result.stdout
    items = clinic.listed()
    assert [i["accession_number"] for i in items] == ["ACC2", "ACC1", "ACC3"]  # by start
    first = next(i for i in items if i["accession_number"] == "ACC1")
    assert first["patient_name"] == "MÜLLER^HANS"
    assert first["patient_birth_date"] == "1980-01-15"
    assert first["scheduled_start"] == "2026-11-27T09:00"
    assert first["status"] == "SCHEDULED"
    assert isinstance(first["id"], int)
    for key in [*FIELDS, "requested_procedure_id", "step_id", "study_instance_uid"]:
        assert first[key], key


def test_import_csv(clinic: Clinic, tmp_path: Path) -> None:
    rows = [booking(n) for n in range(1, 4)]
    rows[2]["accession_number"] = ""  # generated
    path = write_csv(tmp_path / "b.csv", rows, encoding="utf-8-sig")  # Excel writes a BOM
    result = clinic("procedures", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "3 created" in result.stdout
    items = {i["patient_id"]: i for i in clinic.listed()}
    assert items["P1"]["patient_name"] == "MÜLLER^HANS"
    assert items["P2"]["accession_number"] == "ACC2"
    assert len(items["P3"]["accession_number"]) == 16


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_bad_row_rejects_the_file(clinic: Clinic, tmp_path: Path, suffix: str) -> None:
    clinic("db", "upgrade")
    rows = [booking(n) for n in range(1, 6)]
    rows[2]["scheduled_start"] = "2026-02-30T10:00"
    path = tmp_path / f"b{suffix}"
    write_json(path, rows) if suffix == ".json" else write_csv(path, rows)
    result = clinic("procedures", "import", str(path))
    assert result.exit_code == 1
    assert "row 3, field scheduled_start" in result.stderr
    assert "real date" in result.stderr
    assert "nothing was imported" in result.stderr
    assert clinic.listed() == []


def test_every_bad_field_of_the_row_named(clinic: Clinic, tmp_path: Path) -> None:
    rows = [booking(1), booking(2, patient_sex="Q", station_ae_title="A" * 17)]
    result = clinic("procedures", "import", str(write_json(tmp_path / "b.json", rows)))
    assert result.exit_code == 1
    assert "row 2, field patient_sex" in result.stderr
    assert "row 2, field station_ae_title" in result.stderr
    assert clinic.listed() == []


def test_reimport_updates(clinic: Clinic, tmp_path: Path) -> None:
    path = write_json(tmp_path / "b.json", [booking(n) for n in range(1, 4)])
    assert clinic("procedures", "import", str(path)).exit_code == 0
    before = {i["accession_number"]: i for i in clinic.listed()}

    again = clinic("procedures", "import", str(path))
    assert "0 created, 3 updated" in again.stdout
    assert {i["accession_number"]: i for i in clinic.listed()} == before

    rows = [booking(n) for n in range(1, 4)]
    rows[1]["scheduled_start"] = "2026-12-01T15:30"
    rows[1]["procedure_description"] = "Knee"
    write_json(path, rows)
    result = clinic("procedures", "import", str(path))
    assert "0 created, 3 updated" in result.stdout
    after = {i["accession_number"]: i for i in clinic.listed()}
    assert after["ACC2"]["id"] == before["ACC2"]["id"]
    assert after["ACC2"]["scheduled_start"] == "2026-12-01T15:30"
    assert after["ACC2"]["procedure_description"] == "Knee"
    assert after["ACC2"]["study_instance_uid"] == before["ACC2"]["study_instance_uid"]
    assert after["ACC1"] == before["ACC1"]


def test_list_by_date(clinic: Clinic, tmp_path: Path) -> None:
    path = write_json(tmp_path / "b.json", [booking(n) for n in range(1, 6)])
    assert clinic("procedures", "import", str(path)).exit_code == 0
    day26 = clinic.listed("--date", "2026-11-26")
    assert [i["accession_number"] for i in day26] == ["ACC2", "ACC4"]
    day27 = clinic.listed("--date", "2026-11-27")
    assert [i["accession_number"] for i in day27] == ["ACC1", "ACC3", "ACC5"]
    assert clinic.listed("--date", "2026-11-28") == []
    plain = clinic("procedures", "list", "--date", "2026-11-26")
    assert plain.exit_code == 0
    lines = plain.stdout.splitlines()
    assert len(lines) == 2 and "ACC2" in lines[0] and "XRAY1" in lines[0]


@pytest.mark.parametrize("day", ["2026-02-30", "2026115", "yesterday"])
def test_list_bad_date(clinic: Clinic, day: str) -> None:
    result = clinic("procedures", "list", "--date", day, "--json")
    assert result.exit_code == 2
    assert "--date" in result.stderr
    assert "real date" in result.stderr


def test_large_file_shows_progress(clinic: Clinic, tmp_path: Path) -> None:
    rows = [booking(n, accession_number=f"BIG{n}", patient_name=f"BULK^{n}") for n in range(2000)]
    result = clinic("procedures", "import", str(write_csv(tmp_path / "big.csv", rows)))
    assert result.exit_code == 0, result.stderr
    assert "2000 created" in result.stdout
    assert "2000/2000" in result.stderr
    assert "100%" in result.stderr
    assert "2000/2000" not in result.stdout
    assert len(clinic.listed()) == 2000


def test_small_file_has_no_progress_bar(clinic: Clinic, tmp_path: Path) -> None:
    result = clinic("procedures", "import", str(write_json(tmp_path / "b.json", [booking(1)])))
    assert result.exit_code == 0
    assert "1/1" not in result.stderr and "%" not in result.stderr


def test_not_utf8_file(clinic: Clinic, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "latin1.csv", [booking(1)], encoding="latin-1")
    result = clinic("procedures", "import", str(path))
    assert result.exit_code == 1
    assert "not UTF-8" in result.stderr
    assert "latin1.csv" in result.stderr
    assert clinic.listed() == []


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("broken.json", '[{"patient_id": "P1",', "invalid JSON at line 1"),
        ("object.json", '{"patient_id": "P1"}', "expected a JSON list of objects"),
        ("list.json", '["P1"]', "expected a JSON list of objects"),
        ("cells.csv", "patient_id,patient_name\nP1,DOE^J,extra\n", "row 1: more cells"),
        ("empty.csv", "", "no header row"),
        ("columns.csv", "patient id,name\nP1,DOE\n", "field patient id: is not a known field"),
    ],
)
def test_malformed_files(
    clinic: Clinic, tmp_path: Path, name: str, content: str, words: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = clinic("procedures", "import", str(path))
    assert result.exit_code == 1
    assert words in result.stderr


def test_missing_file(clinic: Clinic, tmp_path: Path) -> None:
    result = clinic("procedures", "import", str(tmp_path / "none.json"))
    assert result.exit_code != 0
    assert "none.json" in result.stderr


def test_db_upgrade(clinic: Clinic, database_url: str) -> None:
    result = clinic("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "database is up to date" in result.stdout
    database = clinic.data_dir / "clinic.db"
    if not database_url:  # the embedded database, made where the data folder says
        assert database.is_file()
    engine = create_engine(database_url or f"sqlite:///{database}")
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"patients", "procedures", "stations", "audit_log", "worklist_query_log"} <= tables
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert list(version)
    finally:
        engine.dispose()
    again = clinic("db", "upgrade")  # idempotent
    assert again.exit_code == 0
    assert "database is up to date" in again.stdout


def test_import_changes_a_stored_patient_only_with_update_patients(
    clinic: Clinic, tmp_path: Path
) -> None:
    first = clinic("procedures", "import", str(write_json(tmp_path / "a.json", [booking(1)])))
    assert first.exit_code == 0, first.output
    again = write_json(
        tmp_path / "b.json",
        [booking(2), booking(1, accession_number="ACC9", patient_birth_date="1980-05-01")],
    )
    result = clinic("procedures", "import", str(again))
    assert result.exit_code == 1
    assert "row 2, field patient_birth_date" in result.stderr
    assert "'1980-01-15'" in result.stderr and "'1980-05-01'" in result.stderr
    assert "nothing was imported" in result.stderr
    assert len(clinic.listed()) == 1

    result = clinic("procedures", "import", "--update-patients", str(again))
    assert result.exit_code == 0, result.output
    items = clinic.listed()
    assert len(items) == 3
    assert {i["patient_birth_date"] for i in items if i["patient_id"] == "P1"} == {"1980-05-01"}


def test_import_rows_that_disagree_about_a_patient(clinic: Clinic, tmp_path: Path) -> None:
    rows = [booking(5), booking(6, patient_id="P5", patient_name="OTHER^PERSON")]
    result = clinic("procedures", "import", str(write_json(tmp_path / "c.json", rows)))
    assert result.exit_code == 1
    assert "row 2, field patient_name: differs from row 1 for the same patient_id" in result.stderr
    assert clinic.listed() == []


# -- the command line refuses to start on a bad value -----------------------------------


def test_serve_refuses_bad_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLINIC_CONFIG", raising=False)
    result = CliRunner().invoke(
        main, ["serve"], env={"CLINIC_MWL_PORT": "abc", "CLINIC_DATA_DIR": str(tmp_path / "v")}
    )
    assert result.exit_code != 0
    assert "CLINIC_MWL_PORT" in result.stderr
    assert "'abc' is not a number" in result.stderr
    assert not (tmp_path / "v").exists()  # nothing started, nothing created


def test_serve_refuses_missing_config_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path / "none.toml"), "serve"], env={"CLINIC_CONFIG": None}
    )
    assert result.exit_code != 0
    assert "none.toml does not exist" in result.stderr


def test_db_upgrade_refuses_bad_ae_title(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["db", "upgrade"],
        env={
            "CLINIC_CONFIG": None,
            "CLINIC_MWL_AE_TITLE": "MUCH_TOO_LONG_AE_TITLE",
            "CLINIC_DATA_DIR": str(tmp_path),
        },
    )
    assert result.exit_code != 0
    assert "CLINIC_MWL_AE_TITLE" in result.stderr
    assert "at most 16 characters" in result.stderr
