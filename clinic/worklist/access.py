"""Who may use the worklist door: per-operation allow-lists of calling AE titles.

``[worklist] allowed_find_ae_titles`` limits who may query the worklist and
``allowed_mpps_ae_titles`` who may send MPPS; an empty list allows every calling AE.
Refused operations get 0x0124 (Refused: Not Authorised, PS3.7 C); a calling AE on
neither list (both set) is refused at association time by the listener
(:class:`clinic.dicom.listener.ListenerPolicy`'s ``admit`` check).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import EventHandlerType

from clinic.dicom.listener import Admit
from clinic.dicom.status import NOT_AUTHORISED, DimseFailure

log = logging.getLogger(__name__)


def not_authorised(operation: str) -> Dataset:
    """The status dataset refusing ``operation`` to a calling AE (0x0124)."""
    return DimseFailure(NOT_AUTHORISED, f"calling AE title may not {operation}").as_status()


def allow_find(
    allowed: frozenset[str], handler: Callable[[evt.Event], Iterator[tuple[Any, Dataset | None]]]
) -> Callable[[evt.Event], Iterator[tuple[Any, Dataset | None]]]:
    """Wrap a C-FIND handler: calling AE titles outside ``allowed`` get 0x0124.

    An empty ``allowed`` lets every calling AE through.
    """
    if not allowed:
        return handler

    def guarded(event: evt.Event) -> Iterator[tuple[Any, Dataset | None]]:
        calling = event.assoc.requestor.ae_title.strip()
        if calling not in allowed:
            log.warning("worklist query from %s refused: not on the allow-list", calling)
            yield not_authorised("query the worklist"), None
            return
        yield from handler(event)

    return guarded


def allow_operation(
    allowed: frozenset[str],
    operation: str,
    handler: Callable[[evt.Event], tuple[Any, Dataset | None]],
) -> Callable[[evt.Event], tuple[Any, Dataset | None]]:
    """Wrap an N-* handler: calling AE titles outside ``allowed`` get 0x0124.

    An empty ``allowed`` lets every calling AE through.
    """
    if not allowed:
        return handler

    def guarded(event: evt.Event) -> tuple[Any, Dataset | None]:
        calling = event.assoc.requestor.ae_title.strip()
        if calling not in allowed:
            log.warning("%s from %s refused: not on the allow-list", operation, calling)
            return not_authorised(operation), None
        return handler(event)

    return guarded


def restrict_worklist(
    handlers: list[EventHandlerType], find: frozenset[str], mpps: frozenset[str]
) -> list[EventHandlerType]:
    """Apply the worklist door's per-operation allow-lists to its handlers.

    C-FIND is refused (0x0124) to calling AE titles outside ``find``, MPPS N-CREATE
    and N-SET to those outside ``mpps``; an empty set allows every calling AE.
    """
    restricted: list[EventHandlerType] = []
    for item in handlers:
        event, handler = item[0], item[1]
        if event is evt.EVT_C_FIND:
            handler = allow_find(find, handler)
        elif event is evt.EVT_N_CREATE:
            handler = allow_operation(mpps, "create a performed procedure step", handler)
        elif event is evt.EVT_N_SET:
            handler = allow_operation(mpps, "update a performed procedure step", handler)
        restricted.append(cast(EventHandlerType, (event, handler, *item[2:])))
    return restricted


def worklist_admit(find: frozenset[str], mpps: frozenset[str]) -> Admit | None:
    """Association check of the worklist door: a calling AE on neither list is refused.

    While either list is empty (open) every calling AE may associate; the
    operations are then checked one by one (:func:`restrict_worklist`).
    """
    if not find or not mpps:
        return None
    allowed = find | mpps

    def admit(calling: str, _called: str) -> bool:
        return calling in allowed

    return admit
