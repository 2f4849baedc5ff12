"""``clinic serve`` (and other ``clinic`` commands) as their own processes, from this source tree.

:func:`serve_process` is the one way tests start the service as a subprocess: every
listener on port 0 (the ports are read from the log lines), its own data folder and
environment, a deadline for the start, SIGTERM then SIGKILL at the end, and the log
kept for the test to read.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

#: The checkout these tests belong to: its ``clinic`` package runs, whatever is installed.
REPO = Path(__file__).resolve().parents[2]
#: ``clinic`` of this source tree (PYTHONPATH points at :data:`REPO`).
CLINIC = (sys.executable, "-c", "from clinic.cli import main; main()")
START_DEADLINE = 60.0
EXIT_DEADLINE = 30.0

#: The log line each door writes once it listens, and the key its port is kept under.
LISTENING = {
    "web": re.compile(r"web front desk listening on http://([^:/\s]+):(\d+)/"),
    "mwl": re.compile(r"worklist SCP (\S+) listening on ([^:\s]+):(\d+)"),
    "print": re.compile(r"print SCP (\S+) listening on ([^:\s]+):(\d+)"),
    "hl7": re.compile(r"HL7 MLLP listener listening on ([^:\s]+):(\d+)"),
}


def clinic_env(
    data_dir: Path,
    config: Path | None = None,
    env: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """The environment of a ``clinic`` process of this source tree.

    Every listener on loopback port 0, data in ``data_dir``. Of the caller's ``CLINIC_*``
    variables only ``CLINIC_DATABASE_URL`` is kept (the test's PostgreSQL database, when
    there is one). ``config`` becomes ``CLINIC_CONFIG``; ``env`` adds variables last, and
    a ``None`` value removes one.
    """
    out = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")}
    if "CLINIC_DATABASE_URL" in os.environ:
        out["CLINIC_DATABASE_URL"] = os.environ["CLINIC_DATABASE_URL"]
    out.update(
        CLINIC_DATA_DIR=str(data_dir),
        CLINIC_HOST="127.0.0.1",
        CLINIC_WEB_PORT="0",
        CLINIC_MWL_PORT="0",
        CLINIC_PRINT_PORT="0",
        CLINIC_HL7_PORT="0",
    )
    if config is not None:
        out["CLINIC_CONFIG"] = str(config)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), out.get("PYTHONPATH", "")) if p)
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def run_clinic(
    *args: str,
    env: Mapping[str, str],
    cwd: Path,
    stdin: str | None = None,
    timeout: float = 120,
    command: Sequence[str] = CLINIC,
) -> subprocess.CompletedProcess[str]:
    """Run ``clinic ARGS`` to its end; its exit status and output."""
    return subprocess.run(
        [*command, *args],
        input=stdin,
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServeProcess:
    """A ``clinic serve`` subprocess; its log is read line by line off-thread.

    Parameters
    ----------
    data_dir : Path
        Its data folder (``CLINIC_DATA_DIR``).
    config : Path or None
        Its ``CLINIC_CONFIG`` file; ``None`` uses none (nor the caller's).
    cwd : Path or None
        Its working directory; the data folder's parent by default.
    env : mapping or None
        Variables added to (``None`` values removed from) :func:`clinic_env`.
    command : sequence of str
        How to run ``clinic``: this source tree unless a test names the console script.
    """

    def __init__(
        self,
        data_dir: Path,
        config: Path | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str | None] | None = None,
        command: Sequence[str] = CLINIC,
    ) -> None:
        self.data_dir = data_dir
        self.cwd = cwd if cwd is not None else data_dir.parent
        self.env = clinic_env(data_dir, config, env)
        self.command = tuple(command)
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        self.ae_titles: dict[str, str] = {}
        self.process: subprocess.Popen[str] | None = None
        self._changed = threading.Condition()
        self._ended = False
        self._reader: threading.Thread | None = None

    # -- start ---------------------------------------------------------------------------

    def start(self, deadline: float = START_DEADLINE) -> ServeProcess:
        """Start and wait (up to ``deadline`` s) until every door logs where it listens."""
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.lines, self.ports, self.ae_titles, self._ended = [], {}, {}, False
        self.process = subprocess.Popen(
            [*self.command, "serve"],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="serve-log", daemon=True)
        self._reader.start()
        until = time.monotonic() + deadline
        try:
            for name, pattern in LISTENING.items():
                match = pattern.search(self.wait_for_line(pattern.pattern, until))
                assert match is not None
                self.ports[name] = int(match.groups()[-1])
                if name in ("mwl", "print"):
                    self.ae_titles[name] = match.group(1)
        except BaseException:
            self.kill()
            raise
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    # -- where it listens --------------------------------------------------------------

    @property
    def web_port(self) -> int:
        return self.ports["web"]

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    @property
    def mwl_port(self) -> int:
        return self.ports["mwl"]

    @property
    def print_port(self) -> int:
        return self.ports["print"]

    @property
    def hl7_port(self) -> int:
        return self.ports["hl7"]

    # -- the log ---------------------------------------------------------------------------

    def log(self) -> str:
        """Everything logged so far, one line each."""
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, deadline: float) -> str:
        """Return the first log line matching ``pattern``; fail at ``deadline`` (monotonic).

        Fails at once when the process ends without logging such a line.
        """
        regex = re.compile(pattern)
        with self._changed:
            while True:
                for line in self.lines:
                    if regex.search(line):
                        return line
                remaining = deadline - time.monotonic()
                assert not self._ended, f"clinic serve ended; no line {pattern!r}:\n{self.log()}"
                assert remaining > 0, f"no log line {pattern!r} in time:\n{self.log()}"
                self._changed.wait(remaining)

    # -- stop ------------------------------------------------------------------------------

    def stop(self, signum: int = signal.SIGTERM, timeout: float = EXIT_DEADLINE) -> int:
        """Send ``signum``, wait up to ``timeout`` s (then SIGKILL); the exit status.

        The whole log is read by the time this returns.
        """
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signum)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=EXIT_DEADLINE)
        self._finish_log()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as in a power cut."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.kill()
        process.wait(timeout=EXIT_DEADLINE)
        self._finish_log()

    def _finish_log(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=EXIT_DEADLINE)
        if self.process is not None and self.process.stderr is not None:
            with contextlib.suppress(OSError):
                self.process.stderr.close()


@contextlib.contextmanager
def serve_process(
    data_dir: Path,
    config: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    command: Sequence[str] = CLINIC,
) -> Iterator[ServeProcess]:
    """``clinic serve`` on free ports for the ``with`` block.

    When the block ends the process is stopped (SIGTERM, then SIGKILL), unless the test
    stopped it itself.

    Parameters are those of :class:`ServeProcess`; the process yielded has started.
    """
    process = ServeProcess(data_dir, config, cwd, env, command)
    try:
        yield process.start()
    finally:
        if process.process is not None and process.process.poll() is None:
            process.stop()
        else:
            process._finish_log()
