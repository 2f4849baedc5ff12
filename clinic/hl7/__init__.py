"""HL7 v2 order intake: practice software sends orders, the worklist gets bookings.

:mod:`clinic.hl7.mllp` listens (MLLP framing over TCP), :mod:`clinic.hl7.orders` reads
ORM^O01 and OMI^O23 messages into booking fields, :mod:`clinic.hl7.ack` writes the
acknowledgements and :mod:`clinic.hl7.intake` applies orders through the scheduling
domain. Like every door, this package never imports another door.
"""
