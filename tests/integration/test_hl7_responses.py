"""HL7 order responses (ORR^O02, ORI^O24), enhanced acknowledgement mode, codes from orders.

HL7 v2.5 chapter 2 (2.9.3 enhanced acknowledgement, MSH-15/16) and chapter 4 (4.4.2
ORR^O02, 4.4.7 ORI^O24; table 0119 order control).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import hl7
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from clinic.config import ConfigError, Settings, load_settings
from clinic.server import ClinicServer
from tests.support.hl7 import (
    ZDS,
    MllpClient,
    message,
    obr,
    orc,
    pid,
    segment,
)


def msh(control_id: str, kind: str = "ORM^O01", version: str = "2.5", **extra: str) -> str:
    fields = {3: "PMS", 4: "PRAXIS", 5: "CLINIC", 7: "20261126090000", 9: kind}
    fields |= {10: control_id, 11: "P", 12: version}
    for key, text in extra.items():  # f15="AL" sets MSH-15
        fields[int(key[1:])] = text
    return segment("MSH", fields)


def order(control_id: str, control: str = "NW", **msh_fields: str) -> bytes:
    return message(msh(control_id, **msh_fields), pid(), orc(control), obr(), ZDS)


@pytest.fixture
def orr_server(settings: Settings) -> Iterator[ClinicServer]:
    srv = ClinicServer(dataclasses.replace(settings, hl7_order_response="orr"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def orr_client(orr_server: ClinicServer) -> Iterator[MllpClient]:
    with MllpClient(orr_server.hl7_port) as mllp:
        yield mllp


@pytest.fixture
def client(server: ClinicServer) -> Iterator[MllpClient]:
    with MllpClient(server.hl7_port) as mllp:
        yield mllp


def parsed(answer: bytes) -> Any:
    return hl7.parse(answer.decode("ascii"))


def field(msg: Any, where: str) -> str:
    """The whole text of one field, ``"ORC.F3"`` style."""
    name, number = where.split(".F")
    segment_ = msg.segment(name)
    index = int(number)
    return str(segment_[index]) if index < len(segment_) else ""


# -- ORR^O02 / ORI^O24 ---------------------------------------------------------------------


def test_new_order_gets_orr_with_the_accession_as_filler(orr_client: MllpClient) -> None:
    answer = parsed(orr_client.send(order("R1")))
    assert field(answer, "MSH.F9") == "ORR^O02^ORR_O02"
    assert (field(answer, "MSA.F1"), field(answer, "MSA.F2")) == ("AA", "R1")
    assert field(answer, "ORC.F1") == "OK"  # table 0119: order accepted
    assert field(answer, "ORC.F2") == "PL100"
    assert field(answer, "ORC.F3") == "ACC100"  # the accession number is the filler number
    assert field(answer, "ORC.F5") == "SC"
    assert field(answer, "OBR.F3") == "ACC100"
    assert field(answer, "OBR.F4").split("^")[0] == "CR01"


def test_change_and_cancel_get_xr_and_cr(orr_client: MllpClient) -> None:
    assert field(parsed(orr_client.send(order("R1"))), "ORC.F1") == "OK"
    changed = parsed(orr_client.send(order("R2", control="XO")))
    assert (field(changed, "MSA.F1"), field(changed, "ORC.F1")) == ("AA", "XR")
    cancelled = parsed(orr_client.send(order("R3", control="CA")))
    assert (field(cancelled, "ORC.F1"), field(cancelled, "ORC.F5")) == ("CR", "CA")


def test_refused_order_gets_ua_and_its_errors(orr_client: MllpClient) -> None:
    bad = message(msh("R9"), pid(f3=""), orc(), obr(), ZDS)
    answer = parsed(orr_client.send(bad))
    assert field(answer, "MSH.F9") == "ORR^O02^ORR_O02"
    assert field(answer, "MSA.F1") == "AE"
    assert field(answer, "ORC.F1") == "UA"  # unable to accept order
    assert field(answer, "ORC.F2") == "PL100"
    assert field(answer, "ORC.F3") == ""  # nothing was booked
    assert field(answer, "ERR.F2") == "PID^1^3^1"


def test_omi_gets_ori_with_ipc(orr_client: MllpClient) -> None:
    omi = message(
        msh("O1", kind="OMI^O23^OMI_O23", version="2.5.1"),
        pid(),
        orc(placer="PL200"),
        obr(f2="PL200", f18="", f4="45036-1^US Abdomen^LN"),
        segment("IPC", {1: "ACC200", 2: "RP200", 3: "1.2.3.200", 4: "SPS200", 5: "US", 9: "ECHO1"}),
    )
    answer = parsed(orr_client.send(omi))
    assert field(answer, "MSH.F9") == "ORI^O24^ORI_O24"
    assert (field(answer, "ORC.F1"), field(answer, "ORC.F3")) == ("OK", "ACC200")
    assert field(answer, "IPC.F1") == "ACC200"
    assert field(answer, "IPC.F3") == "1.2.3.200"
    assert field(answer, "IPC.F5") == "US"
    assert field(answer, "OBR.F4") == "45036-1^US Abdomen^LN"


def test_retransmission_gets_the_same_orr(orr_client: MllpClient) -> None:
    first = orr_client.send(order("R1"))
    assert orr_client.send(order("R1")) == first


def test_default_is_a_general_ack(client: MllpClient) -> None:
    answer = parsed(client.send(order("A1")))
    assert field(answer, "MSH.F9") == "ACK^O01^ACK"
    assert field(answer, "MSA.F1") == "AA"


def test_order_response_setting_is_checked(tmp_path: Any) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[hl7]\norder_response = "orm"\n')
    with pytest.raises(ConfigError, match="order_response"):
        load_settings(path, environ={})
    path.write_text('[hl7]\norder_response = "orr"\n')
    assert load_settings(path, environ={}).hl7_order_response == "orr"


# -- enhanced acknowledgement mode ---------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (order("E1", f15="AL", f16="NE"), "CA"),  # applied: commit accept
        (message(msh("E2", f15="AL", f16="NE"), pid(f3=""), orc(), obr(), ZDS), "CE"),
        (message(msh("E3", kind="ADT^A01", f15="AL", f16="NE"), pid()), "CR"),
        (message(msh("E4", f15="ER", f16="NE"), pid(f3=""), orc(), obr(), ZDS), "CE"),
    ],
    ids=["applied", "error in content", "not taken", "error only"],
)
def test_commit_acknowledgements(client: MllpClient, msg: bytes, expected: str) -> None:
    answer = parsed(client.send(msg))
    assert field(answer, "MSH.F9").startswith("ACK")
    assert field(answer, "MSA.F1") == expected
    # The answer asks for no acknowledgement of its own.
    assert (field(answer, "MSH.F15"), field(answer, "MSH.F16")) == ("NE", "NE")


def test_application_ack_when_only_that_is_asked(client: MllpClient) -> None:
    answer = parsed(client.send(order("E5", f15="NE", f16="AL")))
    assert field(answer, "MSA.F1") == "AA"


def test_nothing_is_sent_when_nothing_is_asked(server: ClinicServer, client: MllpClient) -> None:
    """MSH-15 NE and MSH-16 NE (or SU/ER not met): no answer; the next message gets its own."""
    client.sock.sendall(b"\x0b" + order("E6", f15="NE", f16="NE") + b"\x1c\x0d")
    client.sock.sendall(b"\x0b" + order("E7", f15="ER", f16="NE", control="XO") + b"\x1c\x0d")
    answer = parsed(client.send(order("E8", control="XO")))
    assert (field(answer, "MSA.F1"), field(answer, "MSA.F2")) == ("AA", "E8")
    client.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        client.sock.recv(1)  # nothing else was sent
    client.sock.settimeout(10)
    assert server.scheduler is not None
    assert len(server.scheduler.list_procedures()) == 1


# -- codes from HL7 onto the worklist --------------------------------------------------------


def test_obr4_code_reaches_the_worklist(client: MllpClient, server: ClinicServer) -> None:
    msg = message(msh("C1"), pid(), orc(), obr(f4="36643-5^XR Chest 2V^LN"), ZDS)
    assert field(parsed(client.send(msg)), "MSA.F1") == "AA"
    ds = Dataset()
    ds.AccessionNumber = "ACC100"
    ds.RequestedProcedureCodeSequence = []
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", server.mwl_port, ae_title="CLINIC")
    try:
        answers = [
            identifier
            for _, identifier in assoc.send_c_find(ds, ModalityWorklistInformationFind)
            if identifier is not None
        ]
    finally:
        assoc.release()
    code = answers[0].RequestedProcedureCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "36643-5",
        "LN",
        "XR Chest 2V",
    )


def test_too_long_code_is_an_error_naming_obr4(client: MllpClient) -> None:
    msg = message(msh("C2"), pid(), orc(), obr(f4="123456789012345678^Long^SCT"), ZDS)
    answer = parsed(client.send(msg))
    assert field(answer, "MSA.F1") == "AE"
    assert field(answer, "ERR.F2") == "OBR^1^4^1"
    assert "procedure code" in field(answer, "ERR.F8")
