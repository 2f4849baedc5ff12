"""Person names as people read and type them."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

#: The words people read for each booking status.
STATUS_LABELS = {
    "SCHEDULED": _l("Booked"),
    "ARRIVED": _l("Arrived"),
    "IN_PROGRESS": _l("In progress"),
    "COMPLETED": _l("Done"),
    "DISCONTINUED": _l("Stopped"),
    "CANCELLED": _l("Cancelled"),
}


def status_label(status: str) -> str:
    """The status in the page's language (``Done``, ``Erledigt``)."""
    label = STATUS_LABELS.get(status)
    return str(label) if label is not None else status


def readable_name(value: str | None) -> str:
    """Show a DICOM person name as people write it: ``DOE^JOHN`` -> ``DOE, JOHN``."""
    if not value:
        return ""
    first_group = value.split("=", 1)[0]
    parts = [p for p in first_group.split("^") if p]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return parts[0] if parts else ""
