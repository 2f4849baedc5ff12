"""Modality Worklist C-FIND and Verification C-ECHO handlers, and the AE that serves them."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.config import Settings
from clinic.dicom.decoding import received
from clinic.dicom.pending import PendingStream
from clinic.dicom.status import (
    CANCEL,
    OUT_OF_RESOURCES,
    PENDING,
    PENDING_WARNING,
    SUCCESS,
    UNABLE_TO_PROCESS,
    DimseFailure,
    dimse_handler,
    status_of,
)
from clinic.domain.attendance import stale_cutoff
from clinic.store.models import Station, utcnow
from clinic.worklist.answers import AnswerPlan, reference_encode
from clinic.worklist.charsets import answer_set, station_terms, transliterator
from clinic.worklist.diagnostics import QueryLogWriter, QueryRecord
from clinic.worklist.matching import (
    MatchOptions,
    Row,
    build_response,
    build_select,
    parse_identifier,
)

log = logging.getLogger(__name__)

UTF8 = "ISO_IR 192"
LATIN1 = "ISO_IR 100"
#: Bookings fetched from the database at a time while answering a C-FIND.
FETCH_BATCH = 200

#: Transfer syntaxes accepted on every context: implicit and explicit little endian,
#: deflated explicit little endian, explicit big endian.
TRANSFER_SYNTAXES = list(DEFAULT_TRANSFER_SYNTAXES)


def to_latin1(text: str) -> str:
    """Transliterate the characters Latin-1 lacks (``Dvořák`` -> ``Dvorák``), keep the rest.

    Text is composed first (NFC), so a decomposed ``u`` + combining diaeresis becomes
    Latin-1's ``ü``; an accent Latin-1 has no composed letter for is dropped from its
    letter, never turned into ``?``. (:func:`transliterator` of ``ISO_IR 100``.)
    """
    return transliterator(LATIN1)(text)


class WorklistService:
    """Answers worklist C-FIND requests from the store.

    Parameters
    ----------
    session_factory : sessionmaker
        The store holding the bookings.
    settings : Settings
        Matching and character set options.
    query_log : QueryLogWriter, optional
        Where the per-AE diagnostics go.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        query_log: QueryLogWriter | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.query_log = query_log
        dialect = session_factory.kw["bind"].dialect.name
        self.options = MatchOptions(
            accent_insensitive=settings.accent_insensitive,
            prefix_range=dialect == "sqlite",
        )

    def answer_character_set(self, request: Dataset, session: Session, calling_ae: str) -> str:
        """Pick the answer's Specific Character Set (``\\``-joined terms).

        The query's own set when clinic writes it (single-byte sets, UTF-8, GB18030,
        GBK, ISO 2022 with code extensions); else the calling station's; else the
        service default.
        """
        requested = request.get("SpecificCharacterSet", "")
        values = list(requested) if isinstance(requested, MultiValue) else [requested]
        # A peer may send it with any VR; only text can name a character set.
        chosen = answer_set(v for v in values if isinstance(v, str))
        if chosen is not None:
            return chosen
        station_charset = session.scalar(
            select(Station.character_set).where(Station.ae_title == calling_ae)
        )
        return station_terms(station_charset or self.settings.mwl_character_set)

    @dimse_handler("worklist query", UNABLE_TO_PROCESS, answer="stream")
    def handle_find(self, event: evt.Event) -> Iterator[tuple[Any, Dataset | None]]:
        """EVT_C_FIND handler: yield one pending response per matching booking.

        A query that cannot be answered gets its failure status (0xA900, 0xC000); an
        unexpected error gets 0xC000 (PS3.4 K.4.1.1.4: Unable to process).
        """
        calling_ae = event.assoc.requestor.ae_title.strip()
        peer = f"{event.assoc.requestor.address}:{event.assoc.requestor.port}"
        record: dict[str, Any] = {
            "matching_keys": (),
            "return_keys": (),
            "matches": 0,
            "status": 0,
            "character_set": "",
        }
        try:
            yield from self._find(event, calling_ae, record)
        except Exception as exc:
            record["status"] = status_of(exc, UNABLE_TO_PROCESS)
            raise
        finally:
            if self.query_log is not None:
                self.query_log.record(
                    QueryRecord(calling_ae_title=calling_ae, peer=peer, at=utcnow(), **record)
                )

    def _find(
        self, event: evt.Event, calling_ae: str, record: dict[str, Any]
    ) -> Iterator[tuple[Any, Dataset | None]]:
        # A request naming another SOP class than its context never gets here:
        # pynetdicom aborts the association first.
        identifier = received(lambda: event.identifier, "identifier", UNABLE_TO_PROCESS)
        query = parse_identifier(identifier, self.options)

        record["matching_keys"] = tuple(query.matching_keys)
        record["return_keys"] = tuple(query.return_keys)
        pending = PENDING_WARNING if query.unsupported else PENDING
        with self.session_factory() as session:
            charset = self.answer_character_set(identifier, session, calling_ae)
            record["character_set"] = charset[:16]
            transform: Callable[[str], str] = transliterator(charset)
            syntax = str(event.context.transfer_syntax)
            plan = AnswerPlan.compile(query, charset, syntax, transform)
            stream = PendingStream(event, pending) if plan is not None else None
            # Rows arrive in batches (a server-side cursor on PostgreSQL): memory holds
            # one batch and the bounded send queue, whatever the number of matches.
            stale_before = stale_cutoff(self.settings.worklist_past_days)
            results = session.execute(
                build_select(query, stale_before).execution_options(yield_per=FETCH_BATCH)
            )
            matches = 0
            limit = self.settings.mwl_max_matches
            for procedure, station in results:
                if event.is_cancelled:
                    record["status"] = CANCEL
                    record["matches"] = matches
                    yield CANCEL, None
                    return
                if limit and matches >= limit:
                    results.close()
                    record["matches"] = matches
                    # Success would claim an answer for every match (PS3.4 K.4.1.3).
                    raise DimseFailure(
                        OUT_OF_RESOURCES, f"more than {limit} matches; narrow the query"
                    )
                row = Row(procedure, station)
                matches += 1
                if plan is None or stream is None:
                    yield pending, build_response(query, row, charset, transform)
                    continue
                try:
                    data = plan.encode(row)
                except (UnicodeError, struct.error, TypeError):
                    # A value outside its VR's repertoire or length: pydicom decides.
                    data = reference_encode(build_response(query, row, charset, transform), syntax)
                if not stream.send(data):
                    record["matches"] = matches
                    return  # the association ended under us: nobody to answer
        record["matches"] = matches
        log.info(
            "worklist query from %s: keys %s, %d match(es)",
            calling_ae,
            ",".join(query.matching_keys) or "(none)",
            matches,
        )

    @staticmethod
    def handle_echo(_event: evt.Event) -> int:
        """EVT_C_ECHO handler: always success."""
        return SUCCESS


def build_worklist_ae(settings: Settings) -> AE:
    """Return the AE of the worklist listener: MWL FIND, MPPS and Verification as SCP."""
    ae = AE(ae_title=settings.mwl_ae_title)
    ae.add_supported_context(ModalityWorklistInformationFind, TRANSFER_SYNTAXES)
    ae.add_supported_context(ModalityPerformedProcedureStep, TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    ae.require_called_aet = not settings.accept_any_called_ae_title
    # Association limits and the network timeout come from the listener's policy
    # (clinic.dicom.listener.start_guarded_server).
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    return ae


def worklist_handlers(service: WorklistService) -> list[EventHandlerType]:
    """The event handlers to pass to ``AE.start_server`` for ``service``."""
    return [
        (evt.EVT_C_FIND, service.handle_find),
        (evt.EVT_C_ECHO, service.handle_echo),
    ]
