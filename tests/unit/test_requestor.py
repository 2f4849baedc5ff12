"""A requestor's reactor never takes the response a ``send_*`` call waits for.

pynetdicom's reactor marks itself paused before it waits on its checkpoint; a call
that clears the checkpoint in between used to lose its response to the reactor.
"""

from __future__ import annotations

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_ECHO

import clinic.dicom  # noqa: F401  (installs the fix, as every door's import does)
from clinic.dicom.requestor import get_msg_unless_paused


def test_the_fix_is_installed_for_every_association() -> None:
    assert DIMSEServiceProvider.get_msg is get_msg_unless_paused


def test_a_reactor_being_paused_reads_nothing_and_the_caller_gets_the_response() -> None:
    assoc = Association(AE(), "requestor")
    response = C_ECHO()
    response.MessageIDBeingRespondedTo = 1
    response.Status = 0x0000
    # The reactor has marked itself paused and is past its wait; the caller has seen
    # it paused, cleared the checkpoint and sent its request; the response arrives.
    assoc._is_paused = True
    assoc._reactor_checkpoint.clear()
    assoc.dimse.msg_queue.put((1, response))
    assoc._is_paused = False
    assert assoc.dimse.get_msg(block=False) == (None, None)  # the reactor's read
    assert assoc.dimse.get_msg(block=True) == (1, response)  # the caller's read


def test_a_running_reactor_still_serves_requests() -> None:
    assoc = Association(AE(), "requestor")
    request = C_ECHO()
    request.MessageID = 7
    assoc.dimse.msg_queue.put((1, request))
    assert assoc._reactor_checkpoint.is_set()
    assert assoc.dimse.get_msg(block=False) == (1, request)
