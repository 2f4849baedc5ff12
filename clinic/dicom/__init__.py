"""DICOM plumbing shared by the worklist and print doors: guarded listeners, reactors,
pending-response streaming, status datasets and checks on received data sets.

Every workaround of pynetdicom lives in this package; :mod:`clinic.dicom.upstream`
lists what it takes from pynetdicom's internals.
"""

from pynetdicom import _config

from clinic.dicom.requestor import close_requestor_race

# Identifiers, attribute lists and print images carry patient data: pynetdicom must
# not log them. Set here, where every door's DICOM code is imported from.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False

# The archive's C-STORE and every other requestor association: see requestor.py.
close_requestor_race()
