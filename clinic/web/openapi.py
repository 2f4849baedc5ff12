"""The OpenAPI 3.1 description of the REST API, served at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from clinic import __version__
from clinic.domain.fields import procedure_schema
from clinic.store.models import ArchiveStatus, PrintJobStatus
from clinic.web.params import MAX_ID

_TEXT = {"type": "string"}


def _print_job_schema() -> dict[str, Any]:
    stamp = {"type": "string", "format": "date-time"}
    nullable_text = {"type": ["string", "null"]}
    props: dict[str, Any] = {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": [s.value for s in PrintJobStatus]},
        "calling_ae_title": _TEXT,
        "printer_ae_title": _TEXT,
        "films": {"type": "integer"},
        "pages": {"type": "integer"},
        "pdf_path": {**nullable_text, "description": "absolute path of the PDF, once rendered"},
        "created_at": stamp,
        "copies": {"type": "integer"},
        "error": nullable_text,
        "printed_at": {"type": ["string", "null"], "format": "date-time"},
        "procedure_id": {
            "type": ["integer", "null"],
            "description": "the booking the job belongs to (linked automatically or by hand)",
        },
        "patient_id": {**nullable_text, "description": "of the linked booking"},
        "accession_number": {**nullable_text, "description": "of the linked booking"},
        "held": {
            "type": "boolean",
            "description": "waiting at the front desk (a printer with hold = true)",
        },
        "archive_status": {
            "type": ["string", "null"],
            "enum": [*(s.value for s in ArchiveStatus), None],
            "description": "the copy sent to the printer's PACS; null when it does not archive",
        },
        "archive_error": {
            **nullable_text,
            "description": "why the archive send failed, or what a pending one waits for",
        },
        "archive_to": {**nullable_text, "description": "the PACS, AE@host:port"},
        "archive_sent_at": {"type": ["string", "null"], "format": "date-time"},
    }
    return {"type": "object", "properties": props}


def _patient_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "patient_id": _TEXT,
            "patient_name": {**_TEXT, "description": "DICOM PN: FAMILY^GIVEN"},
            "patient_birth_date": {"type": "string", "description": "YYYY-MM-DD or empty"},
            "patient_sex": {"type": "string", "enum": ["M", "F", "O", ""]},
            "phone": _TEXT,
            "email": _TEXT,
            "bookings": {
                "type": "array",
                "description": "every booking of the patient, past and upcoming, by start",
                "items": {"$ref": "#/components/schemas/Procedure"},
            },
            "print_jobs": {
                "type": "array",
                "description": "print jobs filed with the patient's bookings, newest first",
                "items": {"$ref": "#/components/schemas/PrintJob"},
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document as a dict."""
    ref = {"$ref": "#/components/schemas/Procedure"}
    err = {"$ref": "#/components/responses/Error"}
    json_body = {"content": {"application/json": {"schema": ref}}}
    write_body = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BookingWrite"}}}
    }
    conflict = {"$ref": "#/components/responses/Conflict"}
    job_body = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PrintJob"}}}
    }
    pid = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "description": "another number (or one out of range) answers 404",
    }
    # A write with the browser's session needs the page's CSRF token in a header too.
    writes: list[dict[str, list[str]]] = [{"bearer": []}, {"session": [], "csrf": []}]
    slot = {
        "type": "object",
        "properties": {
            "start": {"type": "string", "examples": ["2026-11-26T08:00"]},
            "end": {"type": "string", "examples": ["2026-11-26T10:00"]},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "clinic front desk API",
            "version": __version__,
            "description": (
                "Book, change and cancel exams. Authenticate with `Authorization: Bearer "
                "TOKEN` (`clinic tokens create NAME`) or a signed-in browser session; "
                "with the session, a POST or PATCH must also send the CSRF token of the "
                'front desk\'s pages (their `<meta name="csrf-token">`) in the '
                "`X-CSRFToken` header, else it answers 403 and changes nothing. "
                "Bad input answers 400 or 422 with `errors` naming each field; nothing "
                "is written then."
            ),
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "clinic_session"},
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRFToken",
                    "description": "the CSRF token of the front desk's pages; needed with "
                    "the session cookie for POST and PATCH",
                },
            },
            "schemas": {
                "Procedure": procedure_schema(),
                "PrintJob": _print_job_schema(),
                "Patient": _patient_schema(),
                "BookingWrite": {
                    "allOf": [
                        ref,
                        {
                            "type": "object",
                            "properties": {
                                "update_patient": {
                                    "type": "boolean",
                                    "default": False,
                                    "description": "change the stored name, birth date or sex "
                                    "of an existing patient_id to the ones sent (audited); "
                                    "without it such a booking is answered 409",
                                },
                                "allow_overlap": {
                                    "type": "boolean",
                                    "default": False,
                                    "description": "book (or move) it even though the station "
                                    "is taken for part of that time; without it such a booking "
                                    "is answered 409 with `overlaps`",
                                },
                            },
                        },
                    ]
                },
                "Conflict": {
                    "type": "object",
                    "properties": {
                        "error": _TEXT,
                        "conflicts": {
                            "type": "object",
                            "description": "each patient field that differs from the stored "
                            "patient's",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {"stored": _TEXT, "sent": _TEXT},
                            },
                        },
                        "overlaps": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": "ids of the active bookings on the station that the "
                            "booking would overlap; send `allow_overlap: true` to book anyway",
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": _TEXT,
                        "errors": {"type": "object", "additionalProperties": _TEXT},
                    },
                },
            },
            "responses": {
                "Conflict": {
                    "description": "the patient_id is stored with another name, birth date "
                    "or sex (`conflicts`), or the station is taken at that time (`overlaps`); "
                    "nothing was written",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Conflict"}}
                    },
                },
                "Error": {
                    "description": "error; `errors` maps each offending field to its problem",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/procedures": {
                "get": {
                    "summary": "List bookings by start time",
                    "parameters": [
                        {
                            "name": "date",
                            "in": "query",
                            "description": "only this day, YYYY-MM-DD",
                            "schema": {"type": "string", "format": "date"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 10000,
                                "default": 10000,
                            },
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "default": 0},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "a page of bookings; a Link header rel=next "
                            "says more remain",
                            "content": {
                                "application/json": {"schema": {"type": "array", "items": ref}}
                            },
                        },
                        "400": err,
                        "401": err,
                    },
                },
                "post": {
                    "summary": "Book an exam",
                    "security": writes,
                    "requestBody": {"required": True, **write_body},
                    "responses": {
                        "201": {"description": "booked", **json_body},
                        "400": err,
                        "401": err,
                        "403": err,
                        "409": conflict,
                        "422": err,
                    },
                },
            },
            "/api/procedures/{id}": {
                "get": {
                    "summary": "One booking",
                    "parameters": [pid],
                    "responses": {"200": {"description": "the booking", **json_body}, "404": err},
                },
                "patch": {
                    "summary": "Change some fields of a booking",
                    "security": writes,
                    "parameters": [pid],
                    "requestBody": {"required": True, **write_body},
                    "responses": {
                        "200": {"description": "changed", **json_body},
                        "400": err,
                        "403": err,
                        "404": err,
                        "409": {
                            "description": "the booking can no longer change (`errors`), the "
                            "patient would change (`conflicts`) or the station is taken "
                            "(`overlaps`); see Conflict",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Error"},
                                            {"$ref": "#/components/schemas/Conflict"},
                                        ]
                                    }
                                }
                            },
                        },
                        "422": err,
                    },
                },
            },
            "/api/patients/similar": {
                "get": {
                    "summary": "Stored patients who are probably this person (likely duplicates)",
                    "description": "Names match however they are written (accents, umlauts "
                    "spelt out, ß, case), also with given and family names swapped; birth "
                    "dates exactly, with day and month swapped, or one digit off.",
                    "parameters": [
                        {
                            "name": "patient_name",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "DICOM PN: FAMILY^GIVEN",
                        },
                        {
                            "name": "patient_birth_date",
                            "in": "query",
                            "schema": {"type": "string", "format": "date"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the likely duplicates, each with its reasons",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "patient_id": _TEXT,
                                                "patient_name": _TEXT,
                                                "patient_birth_date": _TEXT,
                                                "patient_sex": _TEXT,
                                                "reasons": {"type": "array", "items": _TEXT},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "400": err,
                        "401": err,
                    },
                }
            },
            "/api/patients/{patient_id}/merge": {
                "post": {
                    "summary": "Merge another patient record into this one (administrators)",
                    "security": writes,
                    "description": "The other record's bookings (with their performed steps "
                    "and print jobs) move to this patient; the other record is removed and "
                    "its details stay in the audit log.",
                    "parameters": [
                        {
                            "name": "patient_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["patient_id"],
                                    "properties": {
                                        "patient_id": {
                                            **_TEXT,
                                            "description": "the record to merge into this one",
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "merged; `procedures` lists the bookings that moved",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "patient_id": _TEXT,
                                            "merged_patient_id": _TEXT,
                                            "procedures": {
                                                "type": "array",
                                                "items": {"type": "integer"},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "401": err,
                        "403": err,
                        "404": err,
                        "422": err,
                    },
                }
            },
            "/api/procedures/{id}/cancel": {
                "post": {
                    "summary": 'Cancel a booking (optional body: {"reason": ...})',
                    "security": writes,
                    "parameters": [pid],
                    "responses": {
                        "200": {"description": "cancelled", **json_body},
                        "403": err,
                        "404": err,
                        "409": err,
                    },
                }
            },
            "/api/procedures/{id}/arrive": {
                "post": {
                    "summary": "Check the patient in: the booking becomes ARRIVED (answered "
                    "on the worklist as SPS Status ARRIVED)",
                    "security": writes,
                    "parameters": [pid],
                    "responses": {
                        "200": {"description": "checked in", **json_body},
                        "401": err,
                        "403": err,
                        "404": err,
                        "409": err,
                    },
                }
            },
            "/api/free-slots": {
                "get": {
                    "summary": "Free time of a station on one day: intervals inside its "
                    "opening hours minus its active bookings, each at least `duration` long; "
                    "[] on a closed day",
                    "parameters": [
                        {
                            "name": "station",
                            "in": "query",
                            "required": True,
                            "description": "the station's AE title",
                            "schema": _TEXT,
                        },
                        {
                            "name": "date",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "format": "date"},
                        },
                        {
                            "name": "duration",
                            "in": "query",
                            "description": "minutes; default [scheduling] default_duration_minutes",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1440},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "free intervals by start",
                            "content": {
                                "application/json": {"schema": {"type": "array", "items": slot}}
                            },
                        },
                        "400": err,
                        "401": err,
                        "404": err,
                    },
                }
            },
            "/api/patients/{patient_id}": {
                "get": {
                    "summary": "A patient: details, contact, bookings and print jobs",
                    "parameters": [
                        {"name": "patient_id", "in": "path", "required": True, "schema": _TEXT}
                    ],
                    "responses": {
                        "200": {
                            "description": "the patient",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Patient"}
                                }
                            },
                        },
                        "401": err,
                        "404": err,
                    },
                }
            },
            "/api/print-jobs": {
                "get": {
                    "summary": "List print jobs, newest first",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "a list of print jobs (`Link` rel=next for more)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/PrintJob"},
                                    }
                                }
                            },
                        },
                        "401": err,
                    },
                }
            },
            "/api/print-jobs/{id}/release": {
                "post": {
                    "summary": (
                        "Print a job held at the front desk; body "
                        '`{"printer": AE, "copies": N}`, both optional (`{}` keeps them)'
                    ),
                    "parameters": [pid],
                    "security": writes,
                    "requestBody": {"required": True, "content": {"application/json": {}}},
                    "responses": {
                        "200": {"description": "released", **job_body},
                        "403": err,
                        "404": err,
                        "409": err,
                        "422": err,
                    },
                }
            },
            "/api/print-jobs/{id}/discard": {
                "post": {
                    "summary": "Discard a job held at the front desk (never printed nor archived)",
                    "security": writes,
                    "parameters": [pid],
                    "responses": {
                        "200": {"description": "discarded", **job_body},
                        "403": err,
                        "404": err,
                        "409": err,
                    },
                }
            },
            "/api/print-jobs/{id}/archive": {
                "post": {
                    "summary": "Send a printed job to its printer's PACS again",
                    "security": writes,
                    "parameters": [pid],
                    "responses": {
                        "200": {"description": "queued for the archive", **job_body},
                        "403": err,
                        "404": err,
                        "409": err,
                    },
                }
            },
            "/api/print-jobs/{id}/pdf": {
                "get": {
                    "summary": "The PDF a print job produced",
                    "parameters": [pid],
                    "responses": {
                        "200": {
                            "description": "the PDF",
                            "content": {"application/pdf": {}},
                        },
                        "404": err,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness: the web door answers (no sign-in needed)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "the service is up",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"const": "ok"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
        },
    }
