"""The exceptions the domain raises; every door turns them into its own answer.

A door maps them once: the REST API to 404/409/422, the web pages to messages beside
the fields, HL7 to ``AE`` with ERR segments, the command line to exit status 1.
"""

from __future__ import annotations

from collections.abc import Mapping


class ValidationError(Exception):
    """Input that cannot be accepted: ``errors`` maps each field to its problem.

    Parameters
    ----------
    errors : Mapping
        Field name to a message in plain words.
    row : int, optional
        The 1-based row of an import file the errors belong to.
    """

    def __init__(self, errors: Mapping[str, str], row: int | None = None) -> None:
        self.errors = dict(errors)
        self.row = row
        where = f"row {row}: " if row is not None else ""
        super().__init__(where + "; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class NotFound(Exception):
    """No record (booking, user, catalog entry, print job...) has the given key."""


class AccountDeactivated(Exception):
    """The right password for a user who may no longer sign in."""


class TransitionError(Exception):
    """The booking's status does not allow the requested change."""


class OverlapError(Exception):
    """The booking would overlap other active bookings on its station.

    Parameters
    ----------
    procedure_ids : list of int
        The bookings it would overlap, by id.
    """

    def __init__(self, procedure_ids: list[int]) -> None:
        self.procedure_ids = list(procedure_ids)
        super().__init__(f"the station is taken by bookings {self.procedure_ids}")


class PatientConflict(Exception):
    """A booking names an existing patient ID with other demographics.

    One patient ID is one person: the stored name, birth date or sex change only when
    the caller says so (``update_patient``). Nothing was written.

    Parameters
    ----------
    patient_id : str
        The patient ID both records carry.
    conflicts : Mapping
        Field name (``patient_name``, ``patient_birth_date``, ``patient_sex``) to
        ``{"stored": ..., "sent": ...}``, values as the API writes them.
    row : int, optional
        The 1-based row of an import file.
    """

    def __init__(
        self, patient_id: str, conflicts: Mapping[str, Mapping[str, str]], row: int | None = None
    ) -> None:
        self.patient_id = patient_id
        self.conflicts = {k: dict(v) for k, v in conflicts.items()}
        self.row = row
        where = f"row {row}: " if row is not None else ""
        fields = ", ".join(self.conflicts)
        super().__init__(f"{where}patient ID is stored with another {fields}")
