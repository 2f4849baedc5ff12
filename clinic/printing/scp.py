"""The Basic Print SCP: pynetdicom N-* handlers on the print management SOP classes.

Requests arrive on the Basic Grayscale or Basic Color Print Management Meta SOP Class
context, carrying the component class (Film Session, Film Box, Image Box, Printer)
as their SOP Class UID; Presentation LUT, Basic Annotation Box and Print Job have
contexts of their own. Each association gets one :class:`PrintSession`, dropped when
the association ends; printed jobs live on in the spool.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRBigEndian
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.association import Association
from pynetdicom.events import EventHandlerType
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from clinic import __version__
from clinic.config import Settings
from clinic.dicom.decoding import received
from clinic.dicom.status import (
    ATTRIBUTE_LIST_ERROR,
    FILM_BOX_QUEUE_FULL,
    NO_SUCH_ACTION,
    NO_SUCH_INSTANCE,
    NO_SUCH_SOP_CLASS,
    NOT_AUTHORISED,
    PROCESSING_FAILURE,
    SESSION_QUEUE_FULL,
    SUCCESS,
    UNRECOGNISED_OPERATION,
    DimseFailure,
    dimse_handler,
)
from clinic.domain.identifiers import new_study_instance_uid
from clinic.printing import session as s
from clinic.printing.outputs import queue_state
from clinic.printing.profiles import PrinterProfile
from clinic.printing.session import Outcome, PrintRequest, PrintSession
from clinic.printing.spool import Spool
from clinic.store.models import PrintJobStatus

log = logging.getLogger(__name__)

#: Abstract syntaxes the print listener accepts.
PRINT_SOP_CLASSES = (
    s.GRAYSCALE_META,
    s.COLOR_META,
    s.PRESENTATION_LUT,
    s.ANNOTATION_BOX,
    s.PRINT_JOB,
    s.PRINTER,
)

_JOB_EXECUTION = {
    PrintJobStatus.QUEUED.value: "PENDING",
    PrintJobStatus.DONE.value: "DONE",
    PrintJobStatus.FAILED.value: "FAILURE",
}


class PrintService:
    """The print SCP's handlers, sharing the printer profiles and the spool.

    Parameters
    ----------
    profiles : dict
        AE title -> printer profile; the called AE title picks the printer.
    spool : Spool
        Where N-ACTION puts jobs.
    uid_root : str
        Root of the instance UIDs the SCP assigns.
    """

    def __init__(
        self, profiles: dict[str, PrinterProfile], spool: Spool, uid_root: str = ""
    ) -> None:
        self.profiles = profiles
        self.spool = spool
        self.uid_root = uid_root
        self._sessions: dict[int, PrintSession] = {}
        self._lock = threading.Lock()

    # -- association state --------------------------------------------------------

    def _new_uid(self) -> str:
        return new_study_instance_uid(self.uid_root)

    def _profile(self, assoc: Association) -> PrinterProfile:
        # The called AE title of the A-ASSOCIATE-RQ (acceptor.ae_title is our own title).
        primitive = assoc.requestor.primitive
        called = str(primitive.called_ae_title if primitive else assoc.acceptor.ae_title).strip()
        profile = self.profiles.get(called)
        if profile is None:
            raise DimseFailure(NOT_AUTHORISED, f"no printer is called {called}")
        calling = assoc.requestor.ae_title.strip()
        if not profile.allows(calling):
            raise DimseFailure(NOT_AUTHORISED, f"{calling} may not print on {called}")
        return profile

    def admits(self, calling: str, called: str) -> bool:
        """Association check: whether ``calling`` may print on the printer ``called``.

        An unknown printer is left to the per-request refusal (0x0124).
        """
        profile = self.profiles.get(called)
        return profile is None or profile.allows(calling)

    def _session(self, assoc: Association) -> PrintSession:
        with self._lock:
            current = self._sessions.get(id(assoc))
        if current is not None:
            return current
        created = PrintSession(self._profile(assoc), self._new_uid)
        with self._lock:
            self._sessions[id(assoc)] = created
        return created

    def handle_end(self, event: evt.Event) -> None:
        """EVT_RELEASED / EVT_ABORTED / EVT_CONN_CLOSE: forget the association's session."""
        with self._lock:
            self._sessions.pop(id(event.assoc), None)

    @staticmethod
    def _answer(outcome: Outcome) -> tuple[Any, Dataset | None]:
        if outcome.status == SUCCESS:
            return outcome.status, outcome.dataset
        status = Dataset()
        status.Status = outcome.status
        return status, outcome.dataset

    # -- N-CREATE -----------------------------------------------------------------

    @dimse_handler("print N-CREATE", PROCESSING_FAILURE)
    def handle_create(self, event: evt.Event) -> tuple[Any, Dataset | None]:
        """EVT_N_CREATE: Film Session, Film Box, Presentation LUT."""
        request: Any = event.request
        sop_class = str(request.AffectedSOPClassUID)
        uid = str(request.AffectedSOPInstanceUID) if request.AffectedSOPInstanceUID else None
        session = self._session(event.assoc)
        ds = received(lambda: event.attribute_list, "attribute list", PROCESSING_FAILURE)
        if sop_class == s.FILM_SESSION:
            outcome = session.create_film_session(uid, ds)
        elif sop_class == s.FILM_BOX:
            color = str(event.context.abstract_syntax) == s.COLOR_META
            outcome = session.create_film_box(uid, ds, color)
            log.info(
                "film box created: %s, %d image box(es)",
                session.film_boxes[outcome.uid].spec.display_format,
                len(session.film_boxes[outcome.uid].image_box_uids),
            )
        elif sop_class == s.PRESENTATION_LUT:
            outcome = session.create_lut(uid, ds)
        else:
            raise DimseFailure(NO_SUCH_SOP_CLASS, "N-CREATE not supported for this class")
        answer = outcome.dataset if outcome.dataset is not None else Dataset()
        if uid is not None:
            return self._answer(Outcome(outcome.status, answer, outcome.uid))
        if outcome.status == SUCCESS:
            # pynetdicom moves this into the response's Affected SOP Instance UID.
            answer.AffectedSOPInstanceUID = outcome.uid
            return SUCCESS, answer
        status = Dataset()
        status.Status = outcome.status
        status.AffectedSOPInstanceUID = outcome.uid
        return status, answer

    # -- N-SET --------------------------------------------------------------------

    @dimse_handler("print N-SET", PROCESSING_FAILURE)
    def handle_set(self, event: evt.Event) -> tuple[Any, Dataset | None]:
        """EVT_N_SET: Film Session, Film Box, Image Box, Annotation Box."""
        request: Any = event.request
        sop_class = str(request.RequestedSOPClassUID)
        uid = str(request.RequestedSOPInstanceUID)
        session = self._session(event.assoc)
        ds = received(lambda: event.modification_list, "modification list", PROCESSING_FAILURE)
        if sop_class == s.FILM_SESSION:
            outcome = session.set_film_session(uid, ds)
        elif sop_class == s.FILM_BOX:
            outcome = session.set_film_box(uid, ds)
        elif sop_class in (s.GRAYSCALE_IMAGE_BOX, s.COLOR_IMAGE_BOX):
            little = event.context.transfer_syntax != ExplicitVRBigEndian
            outcome = session.set_image_box(uid, sop_class, ds, little)
        elif sop_class == s.ANNOTATION_BOX:
            outcome = session.set_annotation(uid, ds)
        else:
            raise DimseFailure(UNRECOGNISED_OPERATION, "N-SET not supported here")
        return self._answer(outcome)

    # -- N-ACTION -----------------------------------------------------------------

    @dimse_handler("print N-ACTION", PROCESSING_FAILURE)
    def handle_action(self, event: evt.Event) -> tuple[Any, Dataset | None]:
        """EVT_N_ACTION: Print on a Film Box or the Film Session (spooled, then success)."""
        request: Any = event.request
        sop_class = str(request.RequestedSOPClassUID)
        uid = str(request.RequestedSOPInstanceUID)
        session = self._session(event.assoc)
        if sop_class not in (s.FILM_BOX, s.FILM_SESSION):
            raise DimseFailure(UNRECOGNISED_OPERATION, "N-ACTION not supported here")
        if event.action_type != 1:
            raise DimseFailure(NO_SUCH_ACTION, "only action type 1 (print) exists")
        job_request: PrintRequest
        if sop_class == s.FILM_BOX:
            job_request, outcome = session.print_film_box(uid)
            full = FILM_BOX_QUEUE_FULL
        else:
            job_request, outcome = session.print_film_session(uid)
            full = SESSION_QUEUE_FULL
        calling = event.assoc.requestor.ae_title.strip()
        try:
            job = self.spool.submit(job_request, session.profile, calling)
        except Exception as exc:
            log.error("cannot spool print job from %s: %s", calling, exc)
            raise DimseFailure(full, "cannot store the print job") from None
        answer = Dataset()
        if any(str(cx.abstract_syntax) == s.PRINT_JOB for cx in event.assoc.accepted_contexts):
            ref = Dataset()
            ref.ReferencedSOPClassUID = s.PRINT_JOB
            ref.ReferencedSOPInstanceUID = job.sop_instance_uid
            answer.ReferencedPrintJobSequence = [ref]
        outcome.dataset = answer
        return self._answer(outcome)

    # -- N-DELETE -----------------------------------------------------------------

    @dimse_handler("print N-DELETE", PROCESSING_FAILURE, answer="status")
    def handle_delete(self, event: evt.Event) -> Any:
        """EVT_N_DELETE: Film Session, Film Box, Presentation LUT."""
        request: Any = event.request
        sop_class = str(request.RequestedSOPClassUID)
        uid = str(request.RequestedSOPInstanceUID)
        session = self._session(event.assoc)
        if sop_class == s.FILM_SESSION:
            outcome = session.delete_film_session(uid)
        elif sop_class == s.FILM_BOX:
            outcome = session.delete_film_box(uid)
        elif sop_class == s.PRESENTATION_LUT:
            outcome = session.delete_lut(uid)
        else:
            raise DimseFailure(UNRECOGNISED_OPERATION, "N-DELETE not supported here")
        return outcome.status

    # -- N-GET --------------------------------------------------------------------

    @dimse_handler("print N-GET", PROCESSING_FAILURE)
    def handle_get(self, event: evt.Event) -> tuple[Any, Dataset | None]:
        """EVT_N_GET: Printer (well-known instance) and Print Job."""
        request: Any = event.request
        sop_class = str(request.RequestedSOPClassUID)
        uid = str(request.RequestedSOPInstanceUID)
        if sop_class == s.PRINTER:
            if uid != s.PRINTER_INSTANCE:
                raise DimseFailure(NO_SUCH_INSTANCE, "the printer is the well-known instance")
            full = self._printer_dataset(self._profile(event.assoc))
        elif sop_class == s.PRINT_JOB:
            full = self._job_dataset(uid)
        else:
            raise DimseFailure(UNRECOGNISED_OPERATION, "N-GET not supported here")
        return self._select(full, request.AttributeIdentifierList)

    @staticmethod
    def _select(full: Dataset, identifiers: Any) -> tuple[Any, Dataset | None]:
        if not identifiers:
            return SUCCESS, full
        tags = identifiers if isinstance(identifiers, list) else [identifiers]
        answer = Dataset()
        unknown = False
        for tag in tags:
            if Tag(tag) in full:
                answer.add(full[Tag(tag)])
            else:
                unknown = True
        if unknown:
            status = Dataset()
            status.Status = ATTRIBUTE_LIST_ERROR
            return status, answer
        return SUCCESS, answer

    @staticmethod
    def _printer_dataset(profile: PrinterProfile) -> Dataset:
        state, info = queue_state(profile)
        ds = Dataset()
        ds.PrinterStatus = state
        ds.PrinterStatusInfo = info
        ds.PrinterName = profile.name[:16]
        ds.Manufacturer = "clinic"
        ds.ManufacturerModelName = "PDF printer" if not profile.cups_queue else "CUPS printer"
        ds.DeviceSerialNumber = profile.ae_title
        ds.SoftwareVersions = __version__
        return ds

    def _job_dataset(self, uid: str) -> Dataset:
        job = self.spool.job_by_uid(uid)
        if job is None:
            raise DimseFailure(NO_SUCH_INSTANCE, "no such print job")
        ds = Dataset()
        ds.ExecutionStatus = _JOB_EXECUTION.get(job.status, "PENDING")
        ds.ExecutionStatusInfo = "NORMAL" if job.status != PrintJobStatus.FAILED else "UNKNOWN"
        ds.PrintPriority = job.priority
        ds.CreationDate = job.created_at.strftime("%Y%m%d")
        ds.CreationTime = job.created_at.strftime("%H%M%S")
        profile = self.profiles.get(job.printer_ae_title)
        ds.PrinterName = (profile.name if profile else job.printer_ae_title)[:16]
        ds.Originator = job.calling_ae_title
        return ds

    @staticmethod
    def handle_echo(_event: evt.Event) -> int:
        """EVT_C_ECHO: always success."""
        return SUCCESS


def build_print_ae(settings: Settings) -> AE:
    """Return the AE of the print listener: print management SOP classes and Verification."""
    ae = AE(ae_title=settings.printer_ae_title)
    transfer_syntaxes = list(DEFAULT_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification, transfer_syntaxes)
    for uid in PRINT_SOP_CLASSES:
        ae.add_supported_context(uid, transfer_syntaxes)
    # The called AE title picks the printer profile; unknown ones are refused per request.
    ae.require_called_aet = False
    # Association limits and the network timeout come from the listener's policy
    # (clinic.dicom.listener.start_guarded_server).
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    return ae


def print_handlers(service: PrintService) -> list[EventHandlerType]:
    """The event handlers to pass to ``AE.start_server`` for ``service``."""
    return [
        (evt.EVT_C_ECHO, service.handle_echo),
        (evt.EVT_N_GET, service.handle_get),
        (evt.EVT_N_CREATE, service.handle_create),
        (evt.EVT_N_SET, service.handle_set),
        (evt.EVT_N_ACTION, service.handle_action),
        (evt.EVT_N_DELETE, service.handle_delete),
        (evt.EVT_RELEASED, service.handle_end),
        (evt.EVT_ABORTED, service.handle_end),
        (evt.EVT_CONN_CLOSE, service.handle_end),
    ]
