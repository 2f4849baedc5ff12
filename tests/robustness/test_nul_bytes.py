"""NUL characters are refused before they reach the store (PostgreSQL text cannot hold them).

SQLite would keep them; PostgreSQL raises. Either way a booking field or an HL7 message
holding one is refused with a clear answer and changes nothing, on both stores.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.domain.errors import ValidationError
from clinic.hl7.intake import OrderIntake
from clinic.store.models import Procedure
from tests.support.hl7 import ZDS, ack_code, message, msh, new_order, obr, orc, pid

BOOKING = {
    "patient_id": "P1",
    "patient_name": "DOE^JANE",
    "modality": "CR",
    "station_ae_title": "XRAY1",
    "scheduled_start": "2026-11-26T09:30",
}


def _bookings(scheduler: Scheduler) -> int:
    with scheduler.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Procedure)) or 0)


@pytest.mark.parametrize("field", ["patient_id", "patient_name", "procedure_description"])
def test_a_booking_field_with_nul_is_refused(scheduler: Scheduler, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        scheduler.book({**BOOKING, field: "A\x00B"}, actor="test")
    assert refused.value.errors == {field: "must not contain the NUL control character"}
    assert _bookings(scheduler) == 0


def test_an_hl7_message_with_nul_is_refused(scheduler: Scheduler) -> None:
    intake = OrderIntake(scheduler, Catalog(scheduler.session_factory))
    for raw in (
        new_order().replace(b"MSH|^~\\&|", b"MSH|^~\\&|\x00", 1),
        message(msh("M2"), pid(f5="DOE\x00^JANE"), orc(), obr(), ZDS),
    ):
        assert ack_code(intake.handle(raw)) == "AR"
    assert _bookings(scheduler) == 0
    assert ack_code(intake.handle(new_order())) == "AA"  # the same order without NUL
