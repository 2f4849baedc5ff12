"""The audit log: who changed what, when, with the values before and after."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.orm import Session

from clinic.store.models import AuditEntry


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def audit_row(
    actor: str, action: str, entity: str, entity_id: object, detail: Any
) -> dict[str, Any]:
    """The column values of one audit entry, for bulk inserts (see :func:`audit`)."""
    return {
        "actor": actor[:64],
        "action": action,
        "entity": entity,
        "entity_id": str(entity_id),
        "detail": json.dumps(detail, default=_json_value, ensure_ascii=False, sort_keys=True),
    }


def audit(
    session: Session, actor: str, action: str, entity: str, entity_id: object, detail: Any
) -> None:
    """Append one row to the audit log in the caller's transaction.

    Parameters
    ----------
    session : Session
        The transaction the audited change is written in, so both commit or neither.
    actor : str
        Who made the change: ``web:<user>``, ``hl7:<sender>``, the modality's AE title, ``cli``.
    action : str
        What was done (``create``, ``update``, ``status``, ``link``...).
    entity : str
        The kind of record (``procedure``, ``patient``, ``print_job``...).
    entity_id : object
        The record's key.
    detail : Any
        JSON-serialisable detail; dates and times are written in ISO form.
    """
    session.add(AuditEntry(**audit_row(actor, action, entity, entity_id, detail)))
