"""The OpenAPI 3.1 description of the REST API, served at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from clinic import __version__
from clinic.store.models import ArchiveStatus, PrintJobStatus

_TEXT = {"type": "string"}


def _procedure_schema() -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": {"type": "integer", "readOnly": True},
        "status": {
            "type": "string",
            "readOnly": True,
            "enum": ["SCHEDULED", "IN_PROGRESS", "COMPLETED", "DISCONTINUED", "CANCELLED"],
        },
        "patient_id": {"type": "string", "maxLength": 64},
        "patient_name": {"type": "string", "description": "DICOM PN: FAMILY^GIVEN"},
        "patient_birth_date": {"type": "string", "format": "date"},
        "patient_sex": {"type": "string", "enum": ["M", "F", "O", ""]},
        "accession_number": {"type": "string", "maxLength": 16},
        "modality": {"type": "string", "maxLength": 16, "examples": ["CR", "IO", "PX", "US"]},
        "station_ae_title": {"type": "string", "maxLength": 16},
        "scheduled_start": {
            "type": "string",
            "description": "local time, YYYY-MM-DDTHH:MM",
            "examples": ["2026-11-26T09:30"],
        },
        "procedure_description": {"type": "string", "maxLength": 64},
        "referring_physician": {"type": "string"},
        "requested_procedure_id": {"type": "string", "maxLength": 16},
        "step_id": {"type": "string", "maxLength": 16},
        "study_instance_uid": {"type": "string", "maxLength": 64},
        "performing_physician": _TEXT,
        "priority": {"type": "string", "enum": ["STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW", ""]},
        "notes": _TEXT,
        "cancel_reason": {"type": "string", "readOnly": True},
    }
    return {"type": "object", "properties": props}


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


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document as a dict."""
    ref = {"$ref": "#/components/schemas/Procedure"}
    err = {"$ref": "#/components/responses/Error"}
    json_body = {"content": {"application/json": {"schema": ref}}}
    job_body = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PrintJob"}}}
    }
    pid = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "clinic front desk API",
            "version": __version__,
            "description": (
                "Book, change and cancel exams. Authenticate with `Authorization: Bearer "
                "TOKEN` (`clinic tokens create NAME`) or a signed-in browser session. "
                "Bad input answers 400 or 422 with `errors` naming each field; nothing "
                "is written then."
            ),
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "clinic_session"},
            },
            "schemas": {
                "Procedure": _procedure_schema(),
                "PrintJob": _print_job_schema(),
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": _TEXT,
                        "errors": {"type": "object", "additionalProperties": _TEXT},
                    },
                },
            },
            "responses": {
                "Error": {
                    "description": "error; `errors` maps each offending field to its problem",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
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
                    "requestBody": {"required": True, **json_body},
                    "responses": {
                        "201": {"description": "booked", **json_body},
                        "400": err,
                        "401": err,
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
                    "parameters": [pid],
                    "requestBody": {"required": True, **json_body},
                    "responses": {
                        "200": {"description": "changed", **json_body},
                        "400": err,
                        "404": err,
                        "409": err,
                        "422": err,
                    },
                },
            },
            "/api/procedures/{id}/cancel": {
                "post": {
                    "summary": 'Cancel a booking (optional body: {"reason": ...})',
                    "parameters": [pid],
                    "responses": {
                        "200": {"description": "cancelled", **json_body},
                        "404": err,
                        "409": err,
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
                    "requestBody": {"required": True, "content": {"application/json": {}}},
                    "responses": {
                        "200": {"description": "released", **job_body},
                        "404": err,
                        "409": err,
                        "422": err,
                    },
                }
            },
            "/api/print-jobs/{id}/discard": {
                "post": {
                    "summary": "Discard a job held at the front desk (never printed nor archived)",
                    "parameters": [pid],
                    "responses": {
                        "200": {"description": "discarded", **job_body},
                        "404": err,
                        "409": err,
                    },
                }
            },
            "/api/print-jobs/{id}/archive": {
                "post": {
                    "summary": "Send a printed job to its printer's PACS again",
                    "parameters": [pid],
                    "responses": {
                        "200": {"description": "queued for the archive", **job_body},
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
        },
    }
