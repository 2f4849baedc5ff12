"""Person names as people read and type them."""

from __future__ import annotations


def readable_name(value: str | None) -> str:
    """Show a DICOM person name as people write it: ``DOE^JOHN`` -> ``DOE, JOHN``."""
    if not value:
        return ""
    first_group = value.split("=", 1)[0]
    parts = [p for p in first_group.split("^") if p]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return parts[0] if parts else ""
