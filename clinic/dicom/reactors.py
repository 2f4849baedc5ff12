"""Association reactors that sleep until there is work, instead of polling every millisecond.

pynetdicom runs two threads per association, and both poll: the DUL reactor sleeps
1 ms whenever it found nothing to do, the acceptor's reactor sleeps 1 ms on every
turn. With twenty modalities connected that is 40,000 wake-ups a second, each
taking the GIL, and the work that matters (reading a request, answering it) waits
behind them; every hand-off between the two threads also costs up to a millisecond.

:class:`WakingAssociation` keeps pynetdicom's logic step for step (these loops follow
pynetdicom 3.0's ``DULServiceProvider.run_reactor`` and ``Association._run_reactor``)
but waits on what can bring work: the DUL thread on its socket and a wake-up pipe
written whenever something is queued for it, the association thread on an event
set whenever a DIMSE message or a primitive is queued for it. Both still wake at
least every :data:`TIMER_CHECK_S` so the ARTIM and idle timers keep their meaning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import ssl
import threading
from collections.abc import Callable
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import ThreadedAssociationServer

from clinic.waking import WakingServerMixin

# pynetdicom's own loggers: what these loops log reads as it always has.
DUL_LOG = logging.getLogger("pynetdicom.dul")
ASSOC_LOG = logging.getLogger("pynetdicom.association")

#: Longest wait without work: how late an expired ARTIM or idle timer can be noticed.
TIMER_CHECK_S = 0.05


class WakingQueue(queue.Queue[Any]):
    """A queue that calls ``wake`` after every ``put``."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Queue ``item``, then wake the consumer."""
        super().put(item, block, timeout)
        self._wake()


class WakingDUL(DULServiceProvider):
    """A DUL service provider whose thread sleeps until its socket or its queues stir.

    Parameters
    ----------
    assoc : Association
        The association it serves.
    on_user_event : callable
        Called when a primitive is queued for the association (its reactor's wake-up).
    """

    def __init__(self, assoc: Association, on_user_event: Callable[[], None]) -> None:
        super().__init__(assoc)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pipe_lock = threading.Lock()
        self._pipe_open = True
        # A wake-up byte is in the pipe and unread: later puts need not write another.
        self._wake_pending = False
        self._on_user_event = on_user_event
        self.event_queue = WakingQueue(self.wake)
        self.to_provider_queue = WakingQueue(self.wake)
        self.to_user_queue = WakingQueue(on_user_event)

    def wake(self) -> None:
        """Make the reactor look for work now."""
        if self._wake_pending:
            return
        self._wake_pending = True
        with self._pipe_lock:
            if self._pipe_open:
                with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending
                    os.write(self._wake_w, b"\0")

    def kill_dul(self) -> None:
        """Stop the reactor thread."""
        self._kill_thread = True
        self.wake()

    def stop_dul(self) -> bool:
        """Stop the reactor if the state machine is idle (Sta1); ``True`` if it stopped."""
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True
            self.wake()
            if self.is_alive() and threading.current_thread() is not self:
                self.join()
            return True
        return False

    def _wait_for_work(self) -> None:
        """Block until the socket has data, something is queued, or a timer may be due."""
        sock = self.socket.socket if self.socket is not None else None
        watched: list[Any] = [self._wake_r]
        if sock is not None:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return  # decrypted data select() cannot see
            with contextlib.suppress(OSError, ValueError):
                if sock.fileno() >= 0:
                    watched.append(sock)
        try:
            select.select(watched, [], [], TIMER_CHECK_S)
        except (OSError, ValueError):
            return  # the socket closed under us: the loop finds out and says so
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        # Cleared after draining and before the loop looks at the queues: a put that
        # saw the flag still set is found by that look, a later one writes anew.
        self._wake_pending = False

    def run_reactor(self) -> None:
        """The DUL loop of pynetdicom 3.0, waiting for work where it slept 1 ms."""
        try:
            self._run_reactor()
        finally:
            self._close_pipe()
            self._on_user_event()  # the association notices the DUL has ended

    def _close_pipe(self) -> None:
        with self._pipe_lock:
            if self._pipe_open:
                self._pipe_open = False
                os.close(self._wake_r)
                os.close(self._wake_w)

    def __del__(self) -> None:
        # An association dropped before its DUL thread ever ran still returns its pipe.
        if getattr(self, "_pipe_open", False):
            with contextlib.suppress(Exception):  # at interpreter exit os may be gone
                self._close_pipe()

    def _run_reactor(self) -> None:
        self._idle_timer.start()
        idle = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
                idle = True
            if idle:
                self._wait_for_work()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                # Either encode and send one primitive, or receive and decode one PDU.
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                DUL_LOG.error("Exception in DUL.run(), aborting association")
                DUL_LOG.exception(exc)
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                if self.socket is not None:
                    self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                idle = True
                continue
            self.state_machine.do_action(event)
            idle = False


class WakingAssociation(Association):
    """An acceptor association whose two threads wait for work instead of polling."""

    def __init__(self, ae: Any, mode: str) -> None:
        super().__init__(ae, mode)
        self._activity = threading.Event()
        self.dul = WakingDUL(self, self._activity.set)
        self.dimse.msg_queue = WakingQueue(self._activity.set)

    def kill(self) -> None:
        """Stop the association's reactor (and its DUL once idle)."""
        self._kill = True
        self._activity.set()
        super().kill()

    def _run_reactor(self) -> None:
        """pynetdicom 3.0's acceptor loop, waiting for activity where it slept 1 ms."""
        self._is_paused = False
        while not self._kill:
            self._activity.wait(TIMER_CHECK_S)
            self._activity.clear()

            # The reactor may be paused while the user sends messages itself.
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, cast(int, context_id))
                self._activity.set()  # more may have arrived while serving

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                ASSOC_LOG.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                log_msg = "Association Aborted"
                if self.acse.is_aborted("a-p-abort"):
                    log_msg += " (A-P-ABORT)"
                ASSOC_LOG.info(log_msg)
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                ASSOC_LOG.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


class WakingAssociationServer(WakingServerMixin, ThreadedAssociationServer):
    """pynetdicom's threaded association server on an accept loop that stops at once.

    :meth:`shutdown` does what pynetdicom's does (stop accepting, close the socket,
    leave the AE's list of servers) without waiting out a half-second poll.
    """

    def shutdown(self) -> None:
        """Stop accepting, close the listening socket and detach from the AE."""
        WakingServerMixin.shutdown(self)
        self.server_close()
        with contextlib.suppress(ValueError):  # already detached
            self.ae._servers.remove(self)
