"""One way to fail a DIMSE request: DimseFailure, dimse_handler and the status table."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import status as upstream

from clinic.dicom import status
from clinic.dicom.status import DimseFailure, dimse_handler, scrubbed_traceback

# Which pynetdicom table defines each code the service answers.
GENERAL = upstream.GENERAL_STATUS
WORKLIST = upstream.MODALITY_WORKLIST_SERVICE_CLASS_STATUS
PRINT = upstream.PRINT_JOB_MANAGEMENT_SERVICE_CLASS_STATUS
TABLES: dict[str, dict[int, tuple[str, str]]] = {
    "PENDING": WORKLIST,
    "PENDING_WARNING": WORKLIST,
    "IDENTIFIER_MISMATCH": WORKLIST,
    "UNABLE_TO_PROCESS": WORKLIST,
    **{
        name: PRINT
        for name in (
            "MEMORY_ALLOCATION_NOT_SUPPORTED",
            "SESSION_EMPTY_PAGE",
            "FILM_BOX_EMPTY_PAGE",
            "IMAGE_DEMAGNIFIED",
            "DENSITY_OUT_OF_RANGE",
            "IMAGE_CROPPED",
            "NO_FILM_BOX",
            "SESSION_QUEUE_FULL",
            "FILM_BOX_QUEUE_FULL",
            "IMAGE_TOO_LARGE_FOR_BOX",
            "INSUFFICIENT_MEMORY",
        )
    },
}
CODES = sorted(
    name
    for name in dir(status)
    if name.isupper() and isinstance(getattr(status, name), int) and not name.startswith("ERROR_ID")
)


# A value an exception might quote; the code that raises it never holds it.
NAME = "".join(("DOE", "^", "JANE"))


def event(calling: str = "XRAY1") -> Any:
    return SimpleNamespace(assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title=calling)))


@pytest.mark.parametrize("name", CODES)
def test_each_code_is_the_standards(name: str) -> None:
    code = getattr(status, name)
    table = TABLES.get(name, GENERAL)
    assert code in table, f"{name} = 0x{code:04X} is not in pynetdicom's table of its service"


def test_codes_are_defined_once() -> None:
    values = [getattr(status, name) for name in CODES]
    assert len(values) == len(set(values)), "two names for one status"


def test_failure_dataset() -> None:
    failure = DimseFailure(
        status.MISSING_ATTRIBUTE,
        "x" * 80,
        ("PatientID",),
        error_id=status.ERROR_ID_NO_LONGER_UPDATABLE,
    )
    ds = failure.as_status()
    assert ds.Status == 0x0120 and len(ds.ErrorComment) == 64
    assert ds.AttributeIdentifierList == 0x00100020
    assert ds.ErrorID == 0xA710
    assert str(failure) == failure.comment


class Service:
    @dimse_handler("test N-SET", status.PROCESSING_FAILURE)
    def pair(self, _event: Any, fail: BaseException | None = None) -> tuple[Any, Dataset | None]:
        if fail is not None:
            raise fail
        return status.SUCCESS, Dataset()

    @dimse_handler("test N-DELETE", status.PROCESSING_FAILURE, answer="status")
    def alone(self, _event: Any) -> Any:
        raise DimseFailure(status.NO_SUCH_INSTANCE, "no such thing")

    @dimse_handler("test query", status.UNABLE_TO_PROCESS, answer="stream")
    def stream(self, _event: Any) -> Iterator[tuple[Any, Dataset | None]]:
        yield status.PENDING, Dataset()
        raise KeyError(NAME)


def test_success_passes_through() -> None:
    assert Service().pair(event())[0] == status.SUCCESS


def test_failure_is_its_status(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        answer, data = Service().pair(event(), DimseFailure(status.INVALID_ATTRIBUTE_VALUE, "Rows"))
    assert answer.Status == 0x0106 and answer.ErrorComment == "Rows" and data is None
    assert "test N-SET from XRAY1 refused (0x0106): Rows" in caplog.text
    assert caplog.records[0].name == __name__  # the door's logger


def test_unexpected_error_is_processing_failure_with_a_clean_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        answer, _ = Service().pair(event(), ValueError(f"invalid name {NAME!r}"))
    assert answer.Status == 0x0110
    assert answer.ErrorComment == "cannot process request: ValueError"
    assert "test N-SET from XRAY1 failed (0x0110): ValueError" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text and "in pair" in caplog.text
    assert "DOE" not in caplog.text


def test_status_only_handler() -> None:
    answer = Service().alone(event())
    assert isinstance(answer, Dataset) and answer.Status == 0x0112


def test_stream_ends_with_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        answers = list(Service().stream(event()))
    assert [a[0] if isinstance(a[0], int) else a[0].Status for a in answers] == [0xFF00, 0xC000]
    assert "KeyError" in caplog.text and "DOE" not in caplog.text


def test_scrubbed_traceback_keeps_the_chain_without_messages() -> None:
    try:
        try:
            raise KeyError(NAME)
        except KeyError as inner:
            raise RuntimeError(f"patient {NAME}") from inner
    except RuntimeError as exc:
        text = scrubbed_traceback(exc)
    assert "builtins.KeyError" in text and "builtins.RuntimeError" in text
    assert text.index("KeyError") < text.index("RuntimeError")
    assert "DOE" not in text


def test_stream_needs_a_generator() -> None:
    with pytest.raises(TypeError):
        dimse_handler("x", status.PROCESSING_FAILURE, answer="stream")(lambda event: None)
