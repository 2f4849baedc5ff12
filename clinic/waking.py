"""An accept loop that stops the moment it is asked to, for every ``socketserver`` listener.

:meth:`socketserver.BaseServer.serve_forever` notices a shutdown request only when its
``select`` times out (every ``poll_interval`` seconds), so stopping a listener waited up
to that long. :class:`WakingServerMixin` runs the same loop but also watches a wake-up
pipe that :meth:`~WakingServerMixin.shutdown` writes to: the loop ends at once. The
DICOM listeners and the HL7 listener both accept on it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
from typing import Any

_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)


class WakingServerMixin:
    """Mix in before a ``socketserver`` server class: a loop that wakes on shutdown.

    ``serve_forever`` keeps the standard contract (one request handled per ready accept,
    ``service_actions`` after every turn, at least every ``poll_interval`` seconds);
    ``shutdown`` returns as soon as the loop has ended, and also when it never ran.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._halt = threading.Event()
        self._halted = threading.Event()
        self._halted.set()
        self._serving_lock = threading.Lock()
        self._pipe_lock = threading.Lock()
        self._pipe_open = False
        # Binding may fail (port taken); the pipe is made only for a server that listens.
        super().__init__(*args, **kwargs)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pipe_open = True

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept until :meth:`shutdown`, waking on a connection or the shutdown request.

        Parameters
        ----------
        poll_interval : float
            Longest sleep between ``service_actions`` calls when nothing happens.
        """
        with self._serving_lock:
            if self._halt.is_set():
                return
            self._halted.clear()
        try:
            with _Selector() as selector:
                selector.register(self, selectors.EVENT_READ)  # type: ignore[arg-type]
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._halt.is_set():
                    ready = selector.select(poll_interval)
                    if self._halt.is_set():
                        break
                    if any(key.fd != self._wake_r for key, _ in ready):
                        self._handle_request_noblock()  # type: ignore[attr-defined]
                    self.service_actions()  # type: ignore[attr-defined]
        finally:
            self._halted.set()

    def shutdown(self) -> None:
        """Stop the ``serve_forever`` loop and wait until it has ended (milliseconds)."""
        with self._serving_lock:
            self._halt.set()
        with self._pipe_lock:
            if self._pipe_open:
                with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending
                    os.write(self._wake_w, b"\0")
        self._halted.wait()

    def server_close(self) -> None:
        """Close the listening socket and the wake-up pipe."""
        super().server_close()  # type: ignore[misc]
        with self._pipe_lock:
            if self._pipe_open:
                self._pipe_open = False
                os.close(self._wake_r)
                os.close(self._wake_w)
