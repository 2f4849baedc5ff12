"""The Basic Print listener's AE (Verification for now)."""

from __future__ import annotations

from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from clinic.config import Settings


def build_print_ae(settings: Settings) -> AE:
    """Return the AE of the print listener, called by the default printer's AE title."""
    ae = AE(ae_title=settings.printer_ae_title)
    ae.add_supported_context(Verification, list(DEFAULT_TRANSFER_SYNTAXES))
    ae.require_called_aet = False
    ae.maximum_associations = 20
    ae.network_timeout = 60
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    return ae


def print_handlers() -> list[EventHandlerType]:
    """The event handlers to pass to ``AE.start_server``."""
    return [(evt.EVT_C_ECHO, lambda _event: 0x0000)]
