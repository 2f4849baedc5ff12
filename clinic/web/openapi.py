"""The OpenAPI 3.1 description of the REST API, served at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from clinic import __version__
from clinic.domain.fields import procedure_schema
from clinic.store.models import PrintJobStatus

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
    }
    return {"type": "object", "properties": props}


def _booking_request_schema() -> dict[str, Any]:
    """What POST and PATCH take: a booking's fields and the overlap confirmation."""
    return {
        "allOf": [
            {"$ref": "#/components/schemas/Procedure"},
            {
                "type": "object",
                "properties": {
                    "allow_overlap": {
                        "type": "boolean",
                        "default": False,
                        "description": "book even though the station is taken at that "
                        "time (otherwise 409 with `overlaps`)",
                    }
                },
            },
        ]
    }


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
    conflict = {"$ref": "#/components/responses/Conflict"}
    json_body = {"content": {"application/json": {"schema": ref}}}
    request_body = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/BookingRequest"}}
        },
    }
    pid = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
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
                "Procedure": procedure_schema(),
                "BookingRequest": _booking_request_schema(),
                "Patient": _patient_schema(),
                "PrintJob": _print_job_schema(),
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": _TEXT,
                        "errors": {"type": "object", "additionalProperties": _TEXT},
                    },
                },
                "Conflict": {
                    "type": "object",
                    "properties": {
                        "error": _TEXT,
                        "overlaps": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": "ids of the active bookings on the station that "
                            "the booking would overlap; send `allow_overlap: true` to book anyway",
                        },
                        "errors": {
                            "type": "object",
                            "additionalProperties": _TEXT,
                            "description": "`status` when the booking's status forbids the change",
                        },
                    },
                },
            },
            "responses": {
                "Error": {
                    "description": "error; `errors` maps each offending field to its problem",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
                "Conflict": {
                    "description": "conflict: the station is taken (`overlaps`), or the "
                    "booking's status does not allow it; nothing is written",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Conflict"}}
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
                    "requestBody": request_body,
                    "responses": {
                        "201": {"description": "booked", **json_body},
                        "400": err,
                        "401": err,
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
                    "parameters": [pid],
                    "requestBody": request_body,
                    "responses": {
                        "200": {"description": "changed", **json_body},
                        "400": err,
                        "404": err,
                        "409": conflict,
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
                        "409": conflict,
                    },
                }
            },
            "/api/procedures/{id}/arrive": {
                "post": {
                    "summary": "Check the patient in: the booking becomes ARRIVED (answered "
                    "on the worklist as SPS Status ARRIVED)",
                    "parameters": [pid],
                    "responses": {
                        "200": {"description": "checked in", **json_body},
                        "401": err,
                        "404": err,
                        "409": conflict,
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
                        {
                            "name": "patient_id",
                            "in": "path",
                            "required": True,
                            "schema": _TEXT,
                        }
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
