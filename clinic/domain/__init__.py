"""The clinic's own rules: bookings, patients, performed steps, print links, accounts.

Nothing here knows a door (DICOM, HL7, web); the doors call in.
"""
