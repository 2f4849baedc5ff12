"""What clinic.dicom takes from pynetdicom beyond its public API, in one place.

pynetdicom is pinned to one minor release (``pyproject.toml``) because the modules of
this package follow its internals. Two tables say exactly how:

- :data:`COPIES`: pynetdicom functions whose code a clinic function copies or follows
  step for step, each with the SHA-256 of the upstream source it was written against.
  ``tests/unit/test_upstream.py`` hashes ``inspect.getsource`` of each upstream function
  and fails naming the copy to review when pynetdicom's source of it changes.
- :data:`PRIVATE_NAMES`: the private (underscore) names of pynetdicom used here; the
  same test checks that each still exists.

Upgrading pynetdicom is then a conscious act: review each copy the test names, carry
over what changed upstream, and record the new hash here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Copy:
    """A clinic function that copies or follows a pynetdicom function.

    Attributes
    ----------
    upstream : str
        Dotted path of the pynetdicom function (module, class, function).
    copy : str
        Dotted path of the clinic function to review when ``upstream`` changes.
    sha256 : str
        SHA-256 (hex) of ``inspect.getsource(upstream)`` encoded as UTF-8.
    """

    upstream: str
    copy: str
    sha256: str


#: Every pynetdicom function a clinic function copies or mirrors (pynetdicom 3.0.4).
COPIES: tuple[Copy, ...] = (
    Copy(
        "pynetdicom.dul.DULServiceProvider.run_reactor",
        "clinic.dicom.reactors.WakingDUL._run_reactor",
        "e3a10eb3a0931e4854af33b9496e92d9679522aca26b0e04da8967559b9e2803",
    ),
    Copy(
        "pynetdicom.dul.DULServiceProvider.stop_dul",
        "clinic.dicom.reactors.WakingDUL.stop_dul",
        "28a7e0be126e7b306369cc1b131daec8e907d21d0f5692930133b6599b8c6e5f",
    ),
    Copy(
        "pynetdicom.dul.DULServiceProvider.kill_dul",
        "clinic.dicom.reactors.WakingDUL.kill_dul",
        "5ceccf8dd01c2072c377d18bb1be284941a345bd40f03bd1e03a864ab0817842",
    ),
    Copy(
        "pynetdicom.association.Association._run_reactor",
        "clinic.dicom.reactors.WakingAssociation._run_reactor",
        "f28838c5559e462a563750cfc9f3790027f4bb7e2223baf42c9f5d682c359dee",
    ),
    Copy(
        # The requestor's reactor reads with get_msg(block=False) after its checkpoint.
        "pynetdicom.association.Association._run_reactor",
        "clinic.dicom.requestor.get_msg_unless_paused",
        "f28838c5559e462a563750cfc9f3790027f4bb7e2223baf42c9f5d682c359dee",
    ),
    Copy(
        "pynetdicom.transport.RequestHandler._create_association",
        "clinic.dicom.listener.GuardedRequestHandler._create_association",
        "05c8d12b79863cdbdb901ce37187b7030a0434c5cd89d219ed0bedbda679a61e",
    ),
    Copy(
        # Create the association, EVT_CONN_OPEN, start it: the handler adds its ticket.
        "pynetdicom.transport.RequestHandler.handle",
        "clinic.dicom.listener.GuardedRequestHandler.handle",
        "034823fb4df3a87467bd0d45193f0d457fcf59c87fda8e97b2edfb89426f76dd",
    ),
    Copy(
        # How an acceptor refuses an association: A-ASSOCIATE-RJ, EVT_REJECTED, kill.
        "pynetdicom.acse.ACSE._negotiate_as_acceptor",
        "clinic.dicom.listener.GuardedServer._check_request",
        "fffd360957c42a8ed89284cf1b1b734527c9be60253950777a0330c0f2be692e",
    ),
    Copy(
        # The DUL reads a PDU as recv(6) then recv(length): GuardedSocket relies on it.
        "pynetdicom.dul.DULServiceProvider._read_pdu_data",
        "clinic.dicom.listener.GuardedSocket.recv",
        "19f2d4e38c13c83586365d93dd5cd96a0c7c665cb37251054b3e1f246e9f431b",
    ),
    Copy(
        # Stops the accept loop through its wake-up pipe, then what pynetdicom's does.
        "pynetdicom.transport.ThreadedAssociationServer.shutdown",
        "clinic.dicom.reactors.WakingAssociationServer.shutdown",
        "e8e2c3a41009886d8544d17ce01118a81bac81b612a1d17f30fc200971f41db9",
    ),
    Copy(
        "pynetdicom.ae.ApplicationEntity.start_server",
        "clinic.dicom.listener.start_guarded_server",
        "d3868a2df83d3cc08966b575dd8663ee18f101b03ec8d2766639c621b2d58841",
    ),
    Copy(
        # Command set encoding and P-DATA fragmentation of a DIMSE message.
        "pynetdicom.dimse_messages.DIMSEMessage.encode_msg",
        "clinic.dicom.pending.frame_message",
        "73000c902c52832dab302ddb3bc274ea93d205a810a197225dd87d4c1212ba57",
    ),
)

#: Private pynetdicom names used by clinic.dicom and the doors: (owner, name).
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    # Keep patient data out of pynetdicom's log lines (worklist and print doors).
    ("pynetdicom._config", "LOG_REQUEST_IDENTIFIERS"),
    ("pynetdicom._config", "LOG_RESPONSE_IDENTIFIERS"),
    # clinic.dicom.listener
    ("pynetdicom.ae.ApplicationEntity", "_servers"),
    ("pynetdicom.transport.ThreadedAssociationServer", "_handlers"),
    ("pynetdicom.transport.RequestHandler", "_create_association"),
    ("pynetdicom.association.Association", "_server"),
    # clinic.dicom.reactors
    ("pynetdicom.association.Association", "_run_reactor"),
    ("pynetdicom.association.Association", "_kill"),
    ("pynetdicom.association.Association", "_is_paused"),
    ("pynetdicom.association.Association", "_reactor_checkpoint"),
    ("pynetdicom.association.Association", "_serve_request"),
    ("pynetdicom.association.Association", "_dul_ready"),
    ("pynetdicom.dul.DULServiceProvider", "_kill_thread"),
    ("pynetdicom.dul.DULServiceProvider", "_idle_timer"),
    ("pynetdicom.dul.DULServiceProvider", "_process_recv_primitive"),
    ("pynetdicom.dul.DULServiceProvider", "_is_transport_event"),
)
