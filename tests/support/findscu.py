"""Shared test helpers."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from clinic.server import ClinicServer
from tests.support.tools import require_tool


def findscu(
    server: ClinicServer, out: Path, keys: Sequence[str | bytes], calling: str = "XRAY1"
) -> tuple[list[Dataset], subprocess.CompletedProcess[bytes]]:
    """Run ``findscu -W`` with ``keys``; return the extracted responses, in order."""
    out.mkdir(exist_ok=True)
    args: list[str | bytes] = [
        require_tool("findscu"),
        "-W",
        "-aet",
        calling,
        "-aec",
        "CLINIC",
        "-to",
        "20",
        "-X",
        "-od",
        str(out),
    ]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(server.mwl_port)]
    result = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    files = sorted(out.glob("rsp*.dcm"))
    return [pydicom.dcmread(f) for f in files], result


def raw_bytes(ds: Dataset, tag: int) -> bytes:
    """The element's bytes as written to the response file, read afresh and undecoded."""
    assert isinstance(ds.filename, str)
    elem = pydicom.dcmread(ds.filename).get_item(tag)
    assert isinstance(elem, RawDataElement)
    return bytes(elem.value).rstrip(b" ")
