"""A real CUPS daemon receives the job through ``lp``; the printer's state reaches N-GET Printer.

The test runs its own ``cupsd`` on a private socket and configuration folder (no init
system, no root-wide /etc/cups changes), with a raw queue whose backend writes each job
to a file.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from clinic.config import Settings
from clinic.printing import session as s
from clinic.server import ClinicServer
from tests.conftest import require_tool
from tests.integration.printing_support import (
    FILM_BOX,
    FILM_SESSION,
    PrintScu,
    gray_image,
    wait_for,
    wait_for_job,
)

CAPTURE_BACKEND = """#!/bin/sh
# CUPS backend: store each job's data as a file in the folder named by the device URI.
if [ $# -eq 0 ]; then echo 'direct capture "Unknown" "Capture to a folder"'; exit 0; fi
dir="${DEVICE_URI#capture:}"
if [ $# -ge 6 ]; then cp "$6" "$dir/job-$1.part"; else cat > "$dir/job-$1.part"; fi
mv "$dir/job-$1.part" "$dir/job-$1-copies-$4.prn"
"""

CUPSD_CONF = """\
Listen {socket}
LogLevel info
Browsing No
WebInterface No
DefaultAuthType None
<Location />
  Order allow,deny
  Allow all
</Location>
<Policy default>
  JobPrivateAccess all
  JobPrivateValues none
  SubscriptionPrivateAccess all
  SubscriptionPrivateValues none
  <Limit All>
    Order allow,deny
    Allow all
  </Limit>
</Policy>
"""

CUPS_FILES_CONF = """\
ServerRoot {root}
RequestRoot {root}/spool
TempDir {root}/tmp
CacheDir {root}/cache
StateDir {root}/state
ServerBin {root}/lib
DataDir /usr/share/cups
ErrorLog {root}/log/error_log
AccessLog {root}/log/access_log
PageLog {root}/log/page_log
Sandboxing Relaxed
SystemGroup root
"""


@dataclass
class Cups:
    socket: str
    queue: str
    out: Path


@pytest.fixture
def cups(tmp_path: Path) -> Iterator[Cups]:
    cupsd = require_tool("cupsd")
    lpadmin, lpstat = require_tool("lpadmin"), require_tool("lpstat")
    require_tool("lp")
    root = tmp_path / "cups"
    for sub in ("spool", "tmp", "cache", "state", "log", "ppd", "lib/backend", "out"):
        (root / sub).mkdir(parents=True)
    # The system's filters and helpers; our own backend, run as root (mode 0700).
    for sub in ("filter", "daemon", "cgi-bin", "notifier", "driver", "monitor"):
        if Path("/usr/lib/cups", sub).exists():
            (root / "lib" / sub).symlink_to(Path("/usr/lib/cups", sub))
    backend = root / "lib" / "backend" / "capture"
    backend.write_text(CAPTURE_BACKEND, encoding="utf-8")
    backend.chmod(0o700)
    socket = str(root / "cups.sock")
    (root / "cupsd.conf").write_text(CUPSD_CONF.format(socket=socket), encoding="utf-8")
    (root / "cups-files.conf").write_text(CUPS_FILES_CONF.format(root=root), encoding="utf-8")
    daemon = subprocess.Popen(
        [cupsd, "-f", "-c", str(root / "cupsd.conf"), "-s", str(root / "cups-files.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def running() -> bool:
            assert daemon.poll() is None, "cupsd exited"
            done = subprocess.run([lpstat, "-h", socket, "-r"], capture_output=True, text=True)
            return done.returncode == 0 and "is running" in done.stdout

        wait_for(running, timeout=30, what="cupsd")
        subprocess.run(
            [lpadmin, "-h", socket, "-p", "OFFICE", "-E", "-v", f"capture:{root / 'out'}"]
            + ["-m", "raw"],
            check=True,
            capture_output=True,
        )
        yield Cups(socket=socket, queue="OFFICE", out=root / "out")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def test_job_reaches_the_cups_queue_with_its_copies(cups: Cups, settings: Settings) -> None:
    configured = dataclasses.replace(
        settings,
        printers={"OFFICE": {"cups_queue": cups.queue, "cups_server": cups.socket}},
    )
    srv = ClinicServer(configured)
    srv.start()
    try:
        scu = PrintScu(srv.print_port, called="OFFICE")
        status, printer = scu.get(s.PRINTER, s.PRINTER_INSTANCE, [0x21100010])
        assert status == 0 and printer is not None and printer.PrinterStatus == "NORMAL"
        ds = Dataset()
        ds.NumberOfCopies = "2"
        _, session_uid, _ = scu.create(FILM_SESSION, ds)
        assert session_uid
        _, film_uid, boxes = scu.film_box(session_uid, "STANDARD\\1,1", FilmSizeID="A4")
        assert scu.fill(boxes[0], 1, gray_image(16, 16, 90)) == 0
        assert scu.action(FILM_BOX, film_uid)[0] == 0

        assert srv.session_factory is not None
        job = wait_for_job(srv.session_factory)
        received = wait_for(lambda: sorted(cups.out.glob("*.prn")), what="the CUPS job file")
        assert [p.name.split("-copies-")[1] for p in received] == ["2.prn"]
        assert received[0].read_bytes() == Path(job.pdf_path).read_bytes()

        # A disabled queue shows in the Printer's status.
        subprocess.run(
            [require_tool("cupsdisable"), "-h", cups.socket, cups.queue],
            check=True,
            capture_output=True,
        )
        status, printer = scu.get(s.PRINTER, s.PRINTER_INSTANCE, [0x21100010])
        assert status == 0 and printer is not None and printer.PrinterStatus == "WARNING"
        scu.release()
    finally:
        srv.stop()
