"""DIMSE status data sets the doors answer with."""

from __future__ import annotations

from pydicom.dataset import Dataset


def failure_status(status: int, comment: str) -> Dataset:
    """A failure status dataset with an Error Comment (PS3.7: at most 64 characters).

    The comment names the attribute and the problem, never a value, so it carries no
    patient data.
    """
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds
