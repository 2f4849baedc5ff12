"""A PACS for the archive tests: DCMTK's storescp on a free port, writing into a folder."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.conftest import require_tool
from tests.integration.printing_support import wait_for

PACS_AE = "PACS"


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    """Whether something accepts connections on ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def storescp(out: Path, port: int | None = None, transfer_syntaxes: str = "+xa") -> Iterator[int]:
    """DCMTK's storescp as the PACS (AE title ``PACS``), every instance into ``out``.

    ``transfer_syntaxes`` is storescp's option: ``+xa`` all it knows, ``+xi`` Implicit VR
    Little Endian only.
    """
    port = port or free_port()
    out.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            require_tool("storescp"),
            "-aet",
            PACS_AE,
            "-od",
            str(out),
            transfer_syntaxes,
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def up() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            return listening(port)

        wait_for(up, timeout=30, what="storescp")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def received(out: Path, count: int, timeout: float = 60.0) -> list[Dataset]:
    """Wait until ``out`` holds ``count`` instances; return them read back, by SOP class."""

    def files() -> list[Path] | None:
        found = sorted(p for p in out.iterdir() if p.is_file()) if out.exists() else []
        return found if len(found) >= count else None

    paths: list[Path] = wait_for(files, timeout=timeout, what=f"{count} instance(s) in the PACS")
    datasets = [dcmread(p) for p in paths]
    for ds, path in zip(datasets, paths, strict=True):
        ds.filename = str(path)
    return sorted(datasets, key=lambda d: (str(d.SOPClassUID), int(d.get("InstanceNumber", 0))))


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy (Debian's dicom3tools) reports for one file."""
    done = subprocess.run(
        [require_tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False
    )
    return [line for line in (done.stdout + done.stderr).splitlines() if "Error" in line]
