"""The tags a C-FIND worklist identifier is made of, for hostile identifiers."""

from __future__ import annotations

from clinic.worklist.matching import SPS_KEYS, TOP_KEYS
from tests.support.dicom_bytes import tags

SPS = tags("ScheduledProcedureStepSequence")[0]
TOP = tags(*TOP_KEYS, "SpecificCharacterSet", "PatientWeight", "IssuerOfPatientID")
ITEM = tags(*SPS_KEYS, "ScheduledProtocolCodeSequence")
