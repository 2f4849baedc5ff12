"""System command-line tools the tests drive (DCMTK, poppler, CUPS)."""

from __future__ import annotations

import shutil

import pytest

# Debian's DCMTK, poppler and CUPS binaries live here; look here first, because
# pynetdicom installs Python tools of the same name (findscu, storescu...) on PATH.
SYSTEM_BIN = "/usr/bin:/bin:/usr/sbin:/sbin"


def require_tool(name: str) -> str:
    """Return the path of a system command-line tool; fail (never skip) when it is missing.

    The system's own binary (e.g. DCMTK's ``findscu``) wins over a same-named Python
    console script earlier on PATH.
    """
    path = shutil.which(name, path=SYSTEM_BIN) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it (apt-get install dcmtk)")
    return path
