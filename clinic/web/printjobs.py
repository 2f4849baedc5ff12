"""Print jobs: the list, previews, download and reprint (filled in with the print spool)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("printjobs", __name__)
