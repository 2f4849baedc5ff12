"""The booking field table is the one description every reader shares."""

from __future__ import annotations

import datetime as dt

from clinic.domain.fields import (
    FIELDS,
    READ_ONLY_FIELDS,
    STATUSES,
    procedure_schema,
    procedure_to_dict,
)
from clinic.store.models import Patient, Procedure
from clinic.web.forms import PRIORITY_CHOICES, SEX_CHOICES
from clinic.web.openapi import openapi_document


def _procedure() -> Procedure:
    proc = Procedure(
        id=1,
        status="SCHEDULED",
        accession_number="A1",
        modality="CR",
        station_ae_title="XRAY1",
        scheduled_start=dt.datetime(2026, 12, 1, 9, 30),
        study_instance_uid="1.2.3",
    )
    proc.patient = Patient(patient_id="P1", name="DOE^JANE")
    return proc


def test_json_form_has_every_field_of_the_table() -> None:
    out = procedure_to_dict(_procedure())
    assert set(out) == {f.name for f in FIELDS} | set(READ_ONLY_FIELDS) | {"cancel_reason"}


def test_openapi_describes_exactly_what_the_api_returns() -> None:
    schema = openapi_document()["components"]["schemas"]["Procedure"]
    assert schema == procedure_schema()
    assert set(schema["properties"]) == set(procedure_to_dict(_procedure()))
    assert schema["properties"]["status"]["enum"] == list(STATUSES)


def test_forms_offer_the_table_choices() -> None:
    sexes = next(f for f in FIELDS if f.name == "patient_sex").schema["enum"]
    priorities = next(f for f in FIELDS if f.name == "priority").schema["enum"]
    assert sorted(_values(SEX_CHOICES)) == sorted(sexes)
    assert sorted(_values(PRIORITY_CHOICES)) == sorted(priorities)


def _values(choices: list[tuple[str, str]]) -> list[str]:
    return [c[0] for c in choices]
