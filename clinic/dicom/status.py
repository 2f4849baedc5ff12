"""DIMSE statuses, and the one way a handler fails a request.

Every status the doors answer is named once here: pynetdicom's own constants where it
has them (:class:`pynetdicom.status.Status`), the codes of PS3.7 Annex C and of the
services (PS3.4 F, H, K) otherwise. ``tests/unit/test_status.py`` checks each code
against pynetdicom's tables of the service it belongs to.

A handler refuses a request by raising :class:`DimseFailure`; the door's handler is
wrapped with :func:`dimse_handler`, which answers the failure's status dataset, and
answers any other exception with the service's processing-failure status and logs its
traceback (frames and exception type only: an exception's message may quote a value).
"""

from __future__ import annotations

import functools
import inspect
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar, cast

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pynetdicom import evt
from pynetdicom.status import Status

# -- PS3.7 Annex C, the statuses every service may answer ----------------------------
SUCCESS = int(Status.SUCCESS)
CANCEL = int(Status.CANCEL)
PENDING = int(Status.PENDING)
NO_SUCH_ATTRIBUTE = 0x0105
INVALID_ATTRIBUTE_VALUE = 0x0106
#: Warning: attributes not known to the operation were ignored.
ATTRIBUTE_LIST_ERROR = 0x0107
PROCESSING_FAILURE = 0x0110
DUPLICATE_INSTANCE = 0x0111
NO_SUCH_INSTANCE = 0x0112
#: Warning: the default or nearest value was applied.
VALUE_OUT_OF_RANGE = 0x0116
INVALID_OBJECT_INSTANCE = 0x0117
NO_SUCH_SOP_CLASS = 0x0118
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
SOP_CLASS_NOT_SUPPORTED = 0x0122
NO_SUCH_ACTION = 0x0123
NOT_AUTHORISED = 0x0124
UNRECOGNISED_OPERATION = 0x0211

# -- Basic Worklist Management C-FIND, PS3.4 K.4.1.1.4 --------------------------------
#: Pending: matches continue, optional keys not supported.
PENDING_WARNING = 0xFF01
IDENTIFIER_MISMATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000

# -- Modality Performed Procedure Step, PS3.4 F.7.2 ------------------------------------
#: Error ID with PROCESSING_FAILURE: "Performed Procedure Step Object may no longer be
#: updated" (PS3.4 F.7.2.2.4).
ERROR_ID_NO_LONGER_UPDATABLE = 0xA710

# -- Basic Print Management, PS3.4 H.4 -------------------------------------------------
MEMORY_ALLOCATION_NOT_SUPPORTED = 0xB600
SESSION_EMPTY_PAGE = 0xB602
FILM_BOX_EMPTY_PAGE = 0xB603
IMAGE_DEMAGNIFIED = 0xB604
DENSITY_OUT_OF_RANGE = 0xB605
IMAGE_CROPPED = 0xB609
NO_FILM_BOX = 0xC600
SESSION_QUEUE_FULL = 0xC601
FILM_BOX_QUEUE_FULL = 0xC602
IMAGE_TOO_LARGE_FOR_BOX = 0xC603
INSUFFICIENT_MEMORY = 0xC605


class DimseFailure(Exception):
    """A DIMSE request is refused with ``status``; the request changed nothing.

    Parameters
    ----------
    status : int
        The failure (or refusal) status the peer is told.
    comment : str
        Why, for the Error Comment (PS3.7: at most 64 characters are sent) and the
        log. It names attributes and problems, never a value, so it holds no patient
        data.
    attributes : tuple of str, optional
        Keywords of the offending attributes (Attribute Identifier List).
    error_id : int, optional
        The service's Error ID, sent with the status.
    """

    def __init__(
        self,
        status: int,
        comment: str,
        attributes: tuple[str, ...] = (),
        error_id: int | None = None,
    ) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment
        self.attributes = attributes
        self.error_id = error_id

    def as_status(self) -> Dataset:
        """The status dataset: Status, Error Comment, offending attributes, Error ID."""
        ds = Dataset()
        ds.Status = self.status
        ds.ErrorComment = self.comment[:64]
        if self.attributes:
            ds.AttributeIdentifierList = [Tag(k) for k in self.attributes]
        if self.error_id is not None:
            ds.ErrorID = self.error_id
        return ds


def status_of(exc: BaseException, unexpected: int) -> int:
    """The status :func:`dimse_handler` answers for ``exc``.

    Parameters
    ----------
    exc : BaseException
        What the handler raised.
    unexpected : int
        The door's status for anything but a :class:`DimseFailure`.
    """
    return exc.status if isinstance(exc, DimseFailure) else unexpected


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with frames and exception types, without messages.

    An exception's message may quote the value that caused it (a patient's name in a
    ``ValueError``); the frames say where the fault is without it.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    parts = [
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_list(traceback.extract_tb(item.__traceback__)))
        + f"{type(item).__module__}.{type(item).__qualname__}"
        for item in reversed(chain)
    ]
    return "\n\nwhile handling it, another exception occurred:\n\n".join(parts)


HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def dimse_handler(
    what: str, unexpected: int, *, answer: Literal["pair", "status", "stream"] = "pair"
) -> Callable[[HandlerT], HandlerT]:
    """Wrap a pynetdicom event handler so that it fails one way.

    A :class:`DimseFailure` is answered with its status dataset and logged as a
    warning; any other exception is answered with ``unexpected`` (Error Comment
    ``cannot process request: <exception type>``) and logged as an error with its
    traceback (no messages: see :func:`scrubbed_traceback`). The event is the
    handler's first positional argument with an association (methods can be wrapped).

    Parameters
    ----------
    what : str
        The operation in log lines (``worklist query``, ``MPPS N-SET``), followed by
        ``from <calling AE title>``.
    unexpected : int
        The service's processing-failure status.
    answer : str
        What the handler returns: ``"pair"`` (status, dataset), ``"status"`` (status
        alone, as for N-DELETE) or ``"stream"`` (a generator of (status, dataset)
        pairs, as for C-FIND).

    Returns
    -------
    callable
        A decorator.
    """
    if answer not in ("pair", "status", "stream"):
        raise ValueError(f"unknown answer kind {answer!r}")

    def failed(handler_log: logging.Logger, event: evt.Event | None, exc: Exception) -> Dataset:
        calling = _calling(event)
        if isinstance(exc, DimseFailure):
            handler_log.warning(
                "%s from %s refused (0x%04X): %s", what, calling, exc.status, exc.comment
            )
            return exc.as_status()
        handler_log.error(
            "%s from %s failed (0x%04X): %s\n%s",
            what,
            calling,
            unexpected,
            type(exc).__name__,
            scrubbed_traceback(exc),
        )
        return DimseFailure(unexpected, f"cannot process request: {type(exc).__name__}").as_status()

    def decorate(handler: HandlerT) -> HandlerT:
        # Log lines name the door's module, as its own lines do.
        handler_log = logging.getLogger(handler.__module__)
        if answer == "stream":
            if not inspect.isgeneratorfunction(handler):
                raise TypeError(f"{handler.__qualname__} does not yield its answers")

            @functools.wraps(handler)
            def stream(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, Dataset | None]]:
                try:
                    yield from handler(*args, **kwargs)
                except Exception as exc:
                    yield failed(handler_log, _event_in(args), exc), None

            return cast(HandlerT, stream)

        @functools.wraps(handler)
        def single(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except Exception as exc:
                status = failed(handler_log, _event_in(args), exc)
                return status if answer == "status" else (status, None)

        return cast(HandlerT, single)

    return decorate


def _event_in(args: tuple[Any, ...]) -> Any:
    return next((arg for arg in args if hasattr(arg, "assoc")), None)


def _calling(event: evt.Event | None) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip()  # type: ignore[union-attr]
    except Exception:  # no association to name
        return "?"
