"""The service starts, answers C-ECHO on both listeners and a basic worklist query."""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    Verification,
)

from clinic.server import ClinicServer


def test_echo_and_find(server: ClinicServer) -> None:
    assert server.scheduler is not None
    server.scheduler.book(
        {
            "patient_id": "P1",
            "patient_name": "MÜLLER^HANS",
            "modality": "CR",
            "station_ae_title": "XRAY1",
            "scheduled_start": f"{dt.date.today().isoformat()}T09:30",
        },
        actor="test",
    )
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(Verification)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    query = Dataset()
    query.PatientName = "MULLER*"
    query.ScheduledProcedureStepSequence = [Dataset()]
    answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    assoc.release()
    pending = [ds for status, ds in answers if status.Status in (0xFF00, 0xFF01)]
    assert len(pending) == 1
    assert pending[0].PatientName == "MÜLLER^HANS"
    assert answers[-1][0].Status == 0

    printer = AE(ae_title="MODALITY")
    printer.add_requested_context(Verification)
    assoc = printer.associate("127.0.0.1", server.print_port, ae_title="PDFPRINT")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()
