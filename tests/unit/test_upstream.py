"""pynetdicom's internals that clinic.dicom follows have not changed under it.

An upgrade of pynetdicom that changes one of the copied functions fails here, naming
the clinic function to review; after review, its hash in clinic/dicom/upstream.py is
updated. The private names used must still exist.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from clinic.dicom.upstream import COPIES, PRIVATE_NAMES, Copy


def resolve(dotted: str) -> Any:
    """Import the longest module prefix of ``dotted``, then follow the attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def source_hash(dotted: str) -> str:
    return hashlib.sha256(inspect.getsource(resolve(dotted)).encode("utf-8")).hexdigest()


@pytest.mark.parametrize("copied", COPIES, ids=[c.copy for c in COPIES])
def test_upstream_source_is_the_one_copied(copied: Copy) -> None:
    assert callable(resolve(copied.copy)), f"{copied.copy} is gone: update clinic.dicom.upstream"
    found = source_hash(copied.upstream)
    assert found == copied.sha256, (
        f"pynetdicom's {copied.upstream} changed: review {copied.copy} against it, "
        f"then record its new hash {found} in clinic/dicom/upstream.py"
    )


def test_every_copy_is_listed_once() -> None:
    # One upstream function may be followed by two clinic functions, each listed once.
    assert len({(c.upstream, c.copy) for c in COPIES}) == len(COPIES)
    assert len({c.copy for c in COPIES}) == len(COPIES)


@pytest.fixture(scope="module")
def instances() -> dict[str, Any]:
    """Objects whose private attributes are set in ``__init__``, not on the class."""
    ae = AE()
    ae.add_supported_context(Verification)
    server = ae.make_server(("127.0.0.1", 0))
    assoc = Association(ae, "acceptor")
    try:
        yield {
            "pynetdicom.ae.ApplicationEntity": ae,
            "pynetdicom.transport.ThreadedAssociationServer": server,
            "pynetdicom.association.Association": assoc,
            "pynetdicom.dul.DULServiceProvider": assoc.dul,
        }
    finally:
        server.server_close()


@pytest.mark.parametrize("owner, name", PRIVATE_NAMES, ids=[f"{o}.{n}" for o, n in PRIVATE_NAMES])
def test_private_name_still_exists(owner: str, name: str, instances: dict[str, Any]) -> None:
    holder = instances.get(owner, resolve(owner))
    assert hasattr(holder, name), f"pynetdicom no longer has {owner}.{name}"


def test_private_names_are_private() -> None:
    for owner, name in PRIVATE_NAMES:
        assert name.startswith("_") or owner.rsplit(".", 1)[-1].startswith("_"), (owner, name)
