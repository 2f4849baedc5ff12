"""A race in pynetdicom's requestor associations, closed: a response goes to its caller.

pynetdicom 3.0 runs a reactor thread for a requestor too, and that thread takes any
complete DIMSE message off the queue. A ``send_*`` call pauses it first: it clears
``_reactor_checkpoint`` and waits until ``_is_paused`` is true. But the reactor sets
``_is_paused`` *before* it waits on the checkpoint, so a ``send_*`` call can see
``True`` while the reactor is already past the wait; the reactor then takes the
response meant for the call, logs "Received unexpected C-ECHO service message", and
the call waits out its DIMSE timeout (pydicom/pynetdicom#875). Under load it happens:
the archive's C-STORE to a PACS would fail and be sent again.

:func:`close_requestor_race` makes the reactor's non-blocking read give nothing while
the checkpoint is cleared. The reactor sets ``_is_paused`` to false before that read,
so either the caller saw the reactor paused and the read now gives nothing, or the
caller sees it running and waits for the next turn, as pynetdicom intends.
"""

from __future__ import annotations

from typing import Any

from pynetdicom.dimse import DIMSEServiceProvider

_UPSTREAM_GET_MSG = DIMSEServiceProvider.get_msg


def get_msg_unless_paused(self: DIMSEServiceProvider, block: bool = False) -> Any:
    """:meth:`DIMSEServiceProvider.get_msg`, but a reactor being paused reads nothing.

    Only the association's reactor reads without blocking; a ``send_*`` call reads
    blocking, after clearing the checkpoint.
    """
    if not block and not self.assoc._reactor_checkpoint.is_set():
        return None, None
    return _UPSTREAM_GET_MSG(self, block)


def close_requestor_race() -> None:
    """Install :func:`get_msg_unless_paused` for every association in this process."""
    DIMSEServiceProvider.get_msg = get_msg_unless_paused  # type: ignore[method-assign]
