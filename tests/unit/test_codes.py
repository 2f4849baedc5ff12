"""Procedure and protocol codes in the domain: the field, the catalog, the audit log."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.domain.codes import LOCAL_SCHEME, Code, scheme_from_hl7
from clinic.domain.errors import ValidationError
from clinic.domain.fields import clean_procedure, procedure_to_dict
from clinic.store.models import AuditEntry

BASE: dict[str, Any] = {
    "patient_id": "P1",
    "patient_name": "DOE^JANE",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": "2026-11-26T09:30",
}
CHEST = {"value": "36643-5", "scheme": "LN", "meaning": "XR Chest 2V"}


def row(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


# -- the field ----------------------------------------------------------------------------


def test_code_from_a_json_object_or_its_text() -> None:
    assert clean_procedure(row(procedure_code=CHEST))["procedure_code"] == Code(
        "36643-5", "LN", "XR Chest 2V"
    )
    assert clean_procedure(row(procedure_code=json.dumps(CHEST)))["procedure_code"] == Code(
        "36643-5", "LN", "XR Chest 2V"
    )


def test_code_from_csv_columns() -> None:
    cleaned = clean_procedure(
        row(
            procedure_code_value="PX1",
            procedure_code_scheme="99CLINIC",
            procedure_code_meaning="Panoramic",
        )
    )
    assert cleaned["procedure_code"] == Code("PX1", "99CLINIC", "Panoramic")
    empty = row(procedure_code_value="", procedure_code_scheme="", procedure_code_meaning="")
    assert "procedure_code" not in clean_procedure(empty)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"value": "X", "scheme": "LN"}, "meaning is required"),
        ({"value": "", "scheme": "LN", "meaning": "M"}, "value is required"),
        ({"value": "X" * 17, "scheme": "LN", "meaning": "M"}, "value must be at most 16"),
        ({"value": "A\\B", "scheme": "LN", "meaning": "M"}, "backslash"),
        ({"value": "X", "scheme": "LN", "meaning": "M" * 65}, "meaning must be at most 64"),
        ({"value": 7, "scheme": "LN", "meaning": "M"}, "value must be text"),
        ({"value": "X", "scheme": "LN", "meaning": "M", "version": "1"}, "unknown part"),
        (["X", "LN", "M"], "must be an object"),
        ("X^LN^M", "must be a JSON object"),
        ("[" * 100000, "must be a JSON object"),
    ],
)
def test_bad_codes_name_the_part(value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        clean_procedure(row(procedure_code=value))
    assert message in caught.value.errors["procedure_code"]


def test_both_forms_at_once_is_an_error() -> None:
    with pytest.raises(ValidationError) as caught:
        clean_procedure(row(procedure_code=CHEST, procedure_code_value="X"))
    assert "given twice" in caught.value.errors["procedure_code"]


def test_an_update_may_clear_a_code() -> None:
    # JSON null or empty text, as for every clearable field.
    assert clean_procedure({"procedure_code": None}, partial=True) == {"procedure_code": None}
    assert clean_procedure({"procedure_code": ""}, partial=True) == {"procedure_code": None}
    assert clean_procedure(row(procedure_code=None)) == clean_procedure(row())


@pytest.mark.parametrize(
    ("system", "scheme"),
    [
        ("LN", "LN"),
        ("SCT", "SCT"),
        ("SNM", "SNM3"),
        ("C4", "C4"),
        ("RADLEX", "RADLEX"),
        ("", LOCAL_SCHEME),
        ("L", LOCAL_SCHEME),
        ("local", LOCAL_SCHEME),
        ("99PRAXIS", "99PRAXIS"),
        ("HOSPITAL CODES FOR X-RAY", LOCAL_SCHEME),  # too long for a designator
    ],
)
def test_hl7_coding_systems_map_to_designators(system: str, scheme: str) -> None:
    assert scheme_from_hl7(system) == scheme


# -- bookings ------------------------------------------------------------------------------


def test_booking_keeps_and_returns_its_code(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(procedure_code=CHEST), actor="test")
    out = procedure_to_dict(proc)
    assert out["procedure_code"] == CHEST
    assert out["protocol_code"] is None


def test_catalog_fills_absent_codes(scheduler: Scheduler) -> None:
    catalog = Catalog(scheduler.session_factory)
    catalog.save_entry(
        {
            "code": "CHEST2",
            "description": "Chest two views",
            "modality": "CR",
            "code_meaning": "Chest X-ray, 2 views",
            "protocol_code_value": "P-CH2",
            "protocol_code_scheme": "99clinic",
            "protocol_code_meaning": "Chest PA+LAT",
        },
        actor="admin",
    )
    # By description (any case), for the entry's modality.
    by_text = scheduler.book(row(procedure_description="chest TWO views"), actor="test")
    assert procedure_to_dict(by_text)["procedure_code"] == {
        "value": "CHEST2",
        "scheme": LOCAL_SCHEME,
        "meaning": "Chest X-ray, 2 views",
    }
    assert procedure_to_dict(by_text)["protocol_code"] == {
        "value": "P-CH2",
        "scheme": "99CLINIC",
        "meaning": "Chest PA+LAT",
    }
    # By the procedure code: the protocol code follows.
    by_code = scheduler.book(
        row(
            patient_id="P2",
            procedure_code={"value": "CHEST2", "scheme": LOCAL_SCHEME, "meaning": "Chest"},
        ),
        actor="test",
    )
    assert procedure_to_dict(by_code)["protocol_code"]["value"] == "P-CH2"
    # Another modality, or a description not in the catalog: no code.
    other = scheduler.book(
        row(patient_id="P3", modality="US", procedure_description="Chest two views"),
        actor="test",
    )
    assert procedure_to_dict(other)["procedure_code"] is None


def test_code_changes_are_audited(scheduler: Scheduler) -> None:
    proc = scheduler.book(row(procedure_code=CHEST), actor="test")
    scheduler.update(proc.id, {"procedure_code": ""}, actor="desk")
    assert procedure_to_dict(scheduler.get(proc.id))["procedure_code"] is None
    with scheduler.session_factory() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "update", AuditEntry.actor == "desk")
        ).one()
    detail = json.loads(entry.detail)
    assert detail["procedure_code_value"] == ["36643-5", ""]
    assert detail["procedure_code_scheme"] == ["LN", ""]
    assert detail["procedure_code_meaning"] == ["XR Chest 2V", ""]


def test_catalog_refuses_bad_codes(scheduler: Scheduler) -> None:
    catalog = Catalog(scheduler.session_factory)
    with pytest.raises(ValidationError) as caught:
        catalog.save_entry(
            {
                "code": "X",
                "description": "X",
                "modality": "CR",
                "protocol_code_meaning": "no value",
                "code_scheme": "A\\B",
            },
            actor="admin",
        )
    assert set(caught.value.errors) == {"protocol_code_value", "code_scheme"}


# -- the migration ---------------------------------------------------------------------------


def test_migration_matches_the_models_and_goes_back(tmp_path: Any) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from clinic.store.db import make_engine
    from clinic.store.migrate import alembic_config, upgrade
    from clinic.store.models import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    ours = ("code", "protocol")
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if any(word in str(d) for word in ours)] == []
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006_print_link")
    columns = {c["name"] for c in inspect(engine).get_columns("procedures")}
    assert "procedure_code_value" not in columns and "placer_order_number" in columns
    upgrade(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("procedure_catalog")}
    assert {"code_scheme", "protocol_code_value"} <= columns


def test_a_changed_code_brings_its_catalog_protocol(scheduler: Scheduler) -> None:
    catalog = Catalog(scheduler.session_factory)
    catalog.save_entry(
        {
            "code": "PAN",
            "description": "Panoramic",
            "modality": "PX",
            "protocol_code_value": "P-PAN",
        },
        actor="admin",
    )
    proc = scheduler.book(row(procedure_code=CHEST), actor="test")
    pan = {"value": "PAN", "scheme": LOCAL_SCHEME, "meaning": "Panoramic"}
    changed = procedure_to_dict(scheduler.update(proc.id, {"procedure_code": pan}, "desk"))
    assert changed["protocol_code"] == {
        "value": "P-PAN",
        "scheme": LOCAL_SCHEME,
        "meaning": "Panoramic",
    }
    # A protocol sent with the change wins; clearing the procedure code leaves the protocol.
    own = {"value": "P-OWN", "scheme": LOCAL_SCHEME, "meaning": "Own"}
    changed = procedure_to_dict(
        scheduler.update(proc.id, {"procedure_code": pan, "protocol_code": own}, "desk")
    )
    assert changed["protocol_code"] == own
    cleared = procedure_to_dict(scheduler.update(proc.id, {"procedure_code": None}, "desk"))
    assert cleared["procedure_code"] is None and cleared["protocol_code"] == own
