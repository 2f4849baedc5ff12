"""``Content-Disposition`` for the files the web door hands out (RFC 6266).

Every download names its file twice: ``filename=`` with an ASCII-only stand-in that
needs no escaping (for old clients), and ``filename*=UTF-8''...`` with the real name,
percent-encoded (RFC 8187). Text from peers (an accession number may hold quotes,
semicolons or accents) can then never break out of the header.
"""

from __future__ import annotations

import re
import unicodedata
from importlib import resources
from urllib.parse import quote

from flask import Response

#: RFC 8187 attr-char beyond letters and digits: what may stay unencoded in filename*.
_ATTR_CHARS = "!#$&+-.^_`|~"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def ascii_filename(name: str) -> str:
    """An ASCII stand-in for ``name``: accents dropped, anything but ``A-Za-z0-9._-`` as ``_``."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _UNSAFE.sub("_", folded).strip("._") or "download"


def content_disposition(name: str, disposition: str = "inline") -> str:
    """The header value for a file called ``name``.

    Parameters
    ----------
    name : str
        The file name as the user should see it (any Unicode).
    disposition : str
        ``inline`` (shown by the browser) or ``attachment`` (saved).

    Returns
    -------
    str
        For example ``inline; filename="slip-A1.pdf"; filename*=UTF-8''slip-A1.pdf``.
    """
    encoded = quote(name, safe=_ATTR_CHARS)
    return f"{disposition}; filename=\"{ascii_filename(name)}\"; filename*=UTF-8''{encoded}"


def name_download(response: Response, name: str, disposition: str = "inline") -> Response:
    """Set ``response``'s ``Content-Disposition`` for a file called ``name``; return it."""
    response.headers["Content-Disposition"] = content_disposition(name, disposition)
    return response


def template_script(name: str) -> Response:
    """A script shipped beside the templates (``clinic.templates``), never cached stale."""
    script = resources.files("clinic.templates").joinpath(name).read_text(encoding="utf-8")
    response = Response(script, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response
