"""Settings of the DICOM listener guards: read, validated, turned into policies."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from clinic.config import ConfigError, Settings, load_settings
from clinic.dicom.listener import ListenerPolicy, parse_hosts, policy_from_settings
from tests.support.guards import make_pki


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "clinic.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ=environ or {})


def test_guard_settings_are_read(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    settings = _load(
        tmp_path,
        f"""
[worklist]
max_associations = 5
allowed_find_ae_titles = ["pano1", "RIS"]
allowed_mpps_ae_titles = ["PANO1"]
allowed_hosts = ["192.168.10.0/24", "10.0.0.7"]
tls_cert = "{pki.server_cert}"
tls_key = "{pki.server_key}"
tls_ca = "{pki.ca}"
require_client_cert = true
[print]
max_associations = 3
[dicom]
association_timeout = 600
pdu_timeout = 20.5
idle_timeout = 30
tls_handshake_timeout = 5
""",
    )
    assert settings.mwl_max_associations == 5
    assert settings.mwl_find_ae_titles == ("PANO1", "RIS")
    assert settings.print_max_associations == 3
    assert settings.pdu_timeout == 20.5
    policy = policy_from_settings(settings.worklist_listener, None)
    assert policy.tls is not None
    assert policy.tls.minimum_version == ssl.TLSVersion.TLSv1_2
    assert policy.tls.verify_mode == ssl.CERT_REQUIRED
    assert policy.host_allowed("192.168.10.77") and policy.host_allowed("10.0.0.7")
    assert policy.host_allowed("::ffff:10.0.0.7")
    assert not policy.host_allowed("192.168.11.1")
    assert policy_from_settings(settings.print_listener, None).tls is None


def test_tls_files_from_the_environment(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    env = {
        "CLINIC_PRINT_TLS_CERT": str(pki.server_cert),
        "CLINIC_PRINT_TLS_KEY": str(pki.server_key),
    }
    settings = _load(tmp_path, "", env)
    assert settings.print_tls_cert == str(pki.server_cert)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[dicom]\nidle_timeout = 0", "greater than 0"),
        ("[dicom]\npdu_timeout = 'soon'", "not a number"),
        ("[worklist]\nmax_associations = true", "not a number"),
        ("[worklist]\nallowed_hosts = ['clinic.example']", "not an address"),
        ("[worklist]\nallowed_find_ae_titles = ['WAY TOO LONG AE TITLE']", "AE title"),
        ("[worklist]\nallowed_mpps_ae_titles = 'PANO1'", "list of strings"),
        ("[print]\ntls_cert = 'cert.pem'", "go together"),
        ("[print]\ntls_cert = 'nope.pem'\ntls_key = 'nope.key'", "does not exist"),
        ("[worklist]\nrequire_client_cert = true", "need tls_ca"),
    ],
)
def test_bad_guard_settings_are_refused(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        _load(tmp_path, text)


def test_open_by_default() -> None:
    policy = ListenerPolicy(name="x")
    assert policy.host_allowed("203.0.113.9") and policy.admit is None and policy.tls is None
    assert parse_hosts(("10.1.2.3",))[0].num_addresses == 1


def test_fairness_and_budget_settings_are_read(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        """
[worklist]
max_associations = 8
max_associations_per_address = 20
max_matches = 500
[print]
max_associations_per_address = 2
max_image_box_bytes = 3000000
[dicom]
max_dataset_bytes = 65536
[hl7]
max_connections_per_address = 3
""",
    )
    assert settings.mwl_max_matches == 500
    assert settings.hl7_max_connections_per_address == 3
    worklist = policy_from_settings(settings.worklist_listener, None)
    # A per-address limit above the door's total is the total.
    assert worklist.per_address_limit == 8
    assert worklist.max_dataset_bytes == 65536 and worklist.image_box_bytes is None
    printing = policy_from_settings(
        settings.print_listener, None, settings.print_max_image_box_bytes
    )
    assert printing.per_address_limit == 2 and printing.image_box_bytes == 3000000


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[worklist]\nmax_associations_per_address = 0", "greater than 0"),
        ("[worklist]\nmax_matches = -1", "0 \\(no limit\\) or more"),
        ("[dicom]\nmax_dataset_bytes = 'lots'", "not a number"),
        ("[hl7]\nmax_connections_per_address = 0", "greater than 0"),
        ("[print]\nmin_free_mb = -5", "0 \\(no limit\\) or more"),
        ("[print]\nmax_association_image_bytes = 0", "greater than 0"),
    ],
)
def test_bad_fairness_settings_are_refused(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        _load(tmp_path, text)


def test_shipped_configuration_states_the_defaults() -> None:
    """config/clinic.toml, read as it ships, gives the built-in defaults of the guards."""
    shipped = load_settings(Path(__file__).parents[2] / "config" / "clinic.toml", environ={})
    defaults = Settings()
    for name in (
        "max_dataset_bytes",
        "mwl_max_associations_per_address",
        "mwl_max_matches",
        "print_max_associations_per_address",
        "print_max_image_box_bytes",
        "print_max_association_image_bytes",
        "print_min_free_mb",
        "hl7_max_connections_per_address",
    ):
        assert getattr(shipped, name) == getattr(defaults, name), name
