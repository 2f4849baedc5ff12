"""Settings: built-in defaults, the TOML file, CLINIC_* overrides and refused values."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from clinic import config
from clinic.config import ConfigError, ListenerSettings, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run where no config/clinic.toml exists and CLINIC_CONFIG is unset."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLINIC_CONFIG", raising=False)
    monkeypatch.setattr(config, "PROJECT_CONFIG", tmp_path / "no-project" / "clinic.toml")
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "no-etc" / "clinic.toml")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(no_file: Path) -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.data_dir == Path("./var")
    assert settings.host == "0.0.0.0"
    assert (settings.web_port, settings.mwl_port, settings.print_port, settings.hl7_port) == (
        8080,
        11112,
        11113,
        2575,
    )
    assert settings.mwl_ae_title == "CLINIC"
    assert settings.printer_ae_title == "PDFPRINT"
    assert settings.accent_insensitive is True
    assert settings.mwl_character_set == "ISO_IR 192"
    assert settings.uid_root == ""
    assert settings.log_level == "INFO"
    assert settings.worklist_past_days == 1
    assert settings.config_file is None
    expected = (no_file / "var" / "clinic.db").resolve()
    assert settings.resolved_database_url == f"sqlite:///{expected}"


def test_shipped_file_holds_the_defaults() -> None:
    """config/clinic.toml documents every default: reading it changes nothing."""
    settings = load_settings(REPO / "config" / "clinic.toml", environ={})
    assert settings.config_file == (REPO / "config" / "clinic.toml").resolve()
    # Its ./var is the folder beside config/, wherever the command runs.
    assert settings.data_dir == REPO.resolve() / "var"
    assert dataclasses.replace(settings, config_file=None, data_dir=Path("./var")) == Settings()


def test_installation_config_found_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without CLINIC_CONFIG and without ./config, the installation's file is read and its
    relative data folder is resolved beside its config/ folder, not in the working folder."""
    install = tmp_path / "install"
    (install / "config").mkdir(parents=True)
    write(install / "config" / "clinic.toml", "[storage]\ndata_dir = './var'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(config, "PROJECT_CONFIG", install / "config" / "clinic.toml")
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "no-etc" / "clinic.toml")
    settings = load_settings(environ={})
    assert settings.config_file == (install / "config" / "clinic.toml").resolve()
    assert settings.data_dir == install.resolve() / "var"
    assert settings.resolved_database_url.endswith(f"{install.resolve()}/var/clinic.db")
    # CLINIC_DATA_DIR and CLINIC_CONFIG still override everything.
    env = {"CLINIC_DATA_DIR": str(tmp_path / "d")}
    assert load_settings(environ=env).data_dir == tmp_path / "d"
    other = write(tmp_path / "other.toml", "[worklist]\nae_title = 'OTHER'\n")
    chosen = load_settings(environ={"CLINIC_CONFIG": str(other)})
    assert chosen.mwl_ae_title == "OTHER" and chosen.data_dir == tmp_path.resolve() / "var"


def test_database_label_hides_the_password() -> None:
    settings = Settings(database_url="postgresql+psycopg://clinic:secret@db/clinic")
    assert settings.database_label == "postgresql+psycopg://clinic:***@db/clinic"


def test_default_file_in_working_directory(no_file: Path) -> None:
    (no_file / "config").mkdir()
    write(no_file / "config" / "clinic.toml", "[worklist]\nae_title = 'HERE'\n")
    settings = load_settings(environ={})
    assert settings.mwl_ae_title == "HERE"
    assert settings.config_file == (no_file / "config" / "clinic.toml").resolve()


def test_toml_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "site.toml",
        """
[storage]
data_dir = "/srv/clinic"
database_url = "postgresql+psycopg://clinic:secret@db/clinic"
[network]
host = "127.0.0.1"
web_port = 9080
hl7_port = 2576
[worklist]
port = 4242
ae_title = "MWL"
accent_insensitive = false
character_set = "ISO_IR 100"
accept_any_called_ae_title = true
[identifiers]
uid_root = "1.2.826.0.1.3680043.10.543"
[print]
port = 4243
printer_ae_title = "FILMS"
[logging]
level = "DEBUG"
[printers.FILMS]
output = "pdf"
""",
    )
    settings = load_settings(path, environ={})
    assert settings.data_dir == Path("/srv/clinic")
    assert settings.resolved_database_url == "postgresql+psycopg://clinic:secret@db/clinic"
    assert settings.describe()["database_url"] == "postgresql+psycopg://clinic:***@db/clinic"
    assert settings.host == "127.0.0.1"
    assert (settings.web_port, settings.mwl_port, settings.print_port, settings.hl7_port) == (
        9080,
        4242,
        4243,
        2576,
    )
    assert settings.mwl_ae_title == "MWL"
    assert settings.accent_insensitive is False
    assert settings.mwl_character_set == "ISO_IR 100"
    assert settings.accept_any_called_ae_title is True
    assert settings.uid_root == "1.2.826.0.1.3680043.10.543"
    assert settings.printer_ae_title == "FILMS"
    assert settings.log_level == "DEBUG"
    assert settings.printers == {"FILMS": {"output": "pdf"}}
    assert settings.config_file == path.resolve()


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path / "site.toml", "[worklist]\nport = 4242\nae_title = 'MWL'\n")
    env = {
        "CLINIC_DATA_DIR": str(tmp_path / "data"),
        "CLINIC_DATABASE_URL": "sqlite:///" + str(tmp_path / "x.db"),
        "CLINIC_HOST": "127.0.0.2",
        "CLINIC_WEB_PORT": "0",
        "CLINIC_MWL_PORT": " 5000 ",
        "CLINIC_MWL_AE_TITLE": "  ENVMWL ",
        "CLINIC_PRINT_PORT": "0",
        "CLINIC_PRINTER_AE_TITLE": "ENVPRINT",
        "CLINIC_HL7_PORT": "0",
        "CLINIC_ACCENT_INSENSITIVE": "no",
        "CLINIC_MWL_CHARACTER_SET": "ISO_IR 100",
        "CLINIC_UID_ROOT": "1.2.3",
        "CLINIC_LOG_LEVEL": "warning",
    }
    settings = load_settings(path, environ=env)
    assert settings.data_dir == tmp_path / "data"
    assert settings.resolved_database_url == "sqlite:///" + str(tmp_path / "x.db")
    assert settings.host == "127.0.0.2"
    assert (settings.web_port, settings.mwl_port, settings.print_port, settings.hl7_port) == (
        0,
        5000,
        0,
        0,
    )
    assert settings.mwl_ae_title == "ENVMWL"
    assert settings.printer_ae_title == "ENVPRINT"
    assert settings.accent_insensitive is False
    assert settings.mwl_character_set == "ISO_IR 100"
    assert settings.uid_root == "1.2.3"
    assert settings.log_level == "warning"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), ("on", True)]
    + [("0", False), ("False", False), ("NO", False), ("off", False)],
)
def test_boolean_spellings(no_file: Path, text: str, expected: bool) -> None:
    settings = load_settings(environ={"CLINIC_ACCENT_INSENSITIVE": text})
    assert settings.accent_insensitive is expected


def test_worklist_past_days(tmp_path: Path) -> None:
    path = write(tmp_path / "site.toml", "[worklist]\npast_days = 3\n")
    assert load_settings(path, environ={}).worklist_past_days == 3
    env = {"CLINIC_WORKLIST_PAST_DAYS": " 0 "}
    assert load_settings(path, environ=env).worklist_past_days == 0


def test_clinic_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "other.toml", "[print]\nprinter_ae_title = 'OTHER'\n")
    settings = load_settings(environ={"CLINIC_CONFIG": str(path)})
    assert settings.printer_ae_title == "OTHER"
    assert settings.config_file == path.resolve()


def test_environ_argument_is_the_only_environment(
    no_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit ``environ`` is used alone: the process environment is not read."""
    other = write(no_file / "other.toml", "[worklist]\nae_title = 'OTHER'\n")
    monkeypatch.setenv("CLINIC_CONFIG", str(other))
    monkeypatch.setenv("CLINIC_MWL_PORT", "abc")
    assert load_settings(environ={}) == Settings()


BAD_ENV = [
    ("CLINIC_MWL_PORT", "abc", "is not a number"),
    ("CLINIC_WEB_PORT", "70000", "outside 0-65535"),
    ("CLINIC_PRINT_PORT", "-1", "outside 0-65535"),
    ("CLINIC_HL7_PORT", "25.75", "is not a number"),
    ("CLINIC_MWL_PORT", "", "is not a number"),
    ("CLINIC_MWL_AE_TITLE", "A" * 17, "at most 16 characters"),
    ("CLINIC_MWL_AE_TITLE", "BAD\\AE", "backslash"),
    ("CLINIC_MWL_AE_TITLE", "   ", "must not be empty"),
    ("CLINIC_PRINTER_AE_TITLE", "PRINT\x07", "control"),
    ("CLINIC_PRINTER_AE_TITLE", "DRUCKÄ", "ASCII"),
    ("CLINIC_MWL_CHARACTER_SET", "ISO_IR 6", "ISO_IR 192, ISO_IR 100"),
    ("CLINIC_MWL_CHARACTER_SET", "latin1", "character set"),
    ("CLINIC_ACCENT_INSENSITIVE", "maybe", "not true or false"),
    ("CLINIC_UID_ROOT", "1.02.3", "leading zeros"),
    ("CLINIC_UID_ROOT", "1." + "2" * 40, "at most 40"),
    ("CLINIC_LOG_LEVEL", "LOUD", "log level"),
    ("CLINIC_HOST", " ", "must not be empty"),
    ("CLINIC_DATABASE_URL", "clinic.db", "is not a URL"),
    ("CLINIC_WORKLIST_PAST_DAYS", "-1", "0 (today on) or more"),
    ("CLINIC_WORKLIST_PAST_DAYS", "1.5", "whole number of days"),
    ("CLINIC_WORKLIST_PAST_DAYS", "", "whole number of days"),
]


@pytest.mark.parametrize(("name", "value", "words"), BAD_ENV)
def test_bad_environment_values(no_file: Path, name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={name: value})
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    assert words in message


def test_bad_file_value_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "site.toml", "[worklist]\nport = 'abc'\n")
    with pytest.raises(ConfigError, match=r"worklist\.port in .*site\.toml: port 'abc'"):
        load_settings(path, environ={})


def test_environment_wins_over_bad_file_value(tmp_path: Path) -> None:
    path = write(tmp_path / "site.toml", "[worklist]\nport = 'abc'\n")
    assert load_settings(path, environ={"CLINIC_MWL_PORT": "4000"}).mwl_port == 4000


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[worklist\nport = 1\n", "cannot read configuration file"),
        ("worklist = 3\n", "[worklist]"),
        ("[worklist]\nae_title = 12\n", "must be text"),
        ("[network]\nweb_port = 4000\n[worklist]\nport = 4000\n", "same port"),
        ("printers = 'x'\n", "[printers]"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path / "site.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert words in str(info.value)


def test_not_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes("[worklist]\nae_title = 'RÖNTGEN'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_settings(path, environ={})


def test_missing_named_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"configuration file .*nope\.toml does not exist"):
        load_settings(missing, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={"CLINIC_CONFIG": str(missing)})


def test_zero_ports_may_repeat(no_file: Path) -> None:
    env = {"CLINIC_WEB_PORT": "0", "CLINIC_MWL_PORT": "0", "CLINIC_PRINT_PORT": "0"}
    settings = load_settings(environ=env)
    assert (settings.web_port, settings.mwl_port, settings.print_port) == (0, 0, 0)


def test_scheduling_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path / "site.toml",
        "[scheduling]\ndefault_duration_minutes = 20\nclosed_dates = ['2026-12-25']\n"
        "[scheduling.opening_hours]\nmon = '08:00-12:00, 13:00-17:00'\nsat = '09:00-12:00'\n",
    )
    settings = load_settings(path, {})
    assert settings.default_duration_minutes == 20
    assert settings.opening_hours["mon"] == "08:00-12:00, 13:00-17:00"
    assert settings.opening_hours["tue"] == "08:00-17:00"  # not named: the default
    assert settings.opening_hours["sat"] == "09:00-12:00"
    assert settings.opening.is_closed(dt.date(2026, 12, 25))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[scheduling]\ndefault_duration_minutes = 0\n", "between 1 and 1440"),
        ("[scheduling]\nclosed_dates = ['25.12.2026']\n", "YYYY-MM-DD"),
        ("[scheduling.opening_hours]\nmon = '8 to 5'\n", "HH:MM-HH:MM"),
        ("[scheduling.opening_hours]\nmonday = '08:00-17:00'\n", "is not one of"),
        ("[scheduling.opening_hours]\nmon = 8\n", "must be text"),
    ],
)
def test_bad_scheduling_settings(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path / "site.toml", text)
    with pytest.raises(ConfigError, match=words):
        load_settings(path, {})


def test_listener_settings_come_from_their_own_sections(tmp_path: Path) -> None:
    text = """
[worklist]
max_associations = 7
allowed_hosts = ["10.0.0.0/8"]
[print]
max_associations = 3
allowed_hosts = ["192.168.1.20"]
[dicom]
idle_timeout = 12
"""
    settings = load_settings(write(tmp_path / "site.toml", text), {})
    mwl, printer = settings.worklist_listener, settings.print_listener
    assert (mwl.name, mwl.max_associations, mwl.allowed_hosts) == ("worklist", 7, ("10.0.0.0/8",))
    assert (printer.name, printer.max_associations) == ("print", 3)
    assert printer.allowed_hosts == ("192.168.1.20",)
    assert mwl.idle_timeout == printer.idle_timeout == 12.0
    assert mwl.tls_cert == printer.tls_cert == "" and not mwl.require_client_cert


def test_every_listener_setting_is_a_key_of_its_section() -> None:
    """A listener's settings have the names of its section's keys (messages rely on it)."""
    keys = {(section, key) for section, key, _, _ in config._KEYS}
    shared = {f.name for f in dataclasses.fields(ListenerSettings)} - {"name"}
    timeouts = {
        "association_timeout",
        "pdu_timeout",
        "idle_timeout",
        "tls_handshake_timeout",
        "max_dataset_bytes",
    }
    for listener in (Settings().worklist_listener, Settings().print_listener):
        for name in shared - timeouts:
            assert (listener.name, name) in keys, (listener.name, name)
        for name in timeouts:
            assert ("dicom", name) in keys, name


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[print]\ntls_cert = 'cert.pem'", "print.tls_cert in"),
        ("[worklist]\nrequire_client_cert = true", "worklist.require_client_cert in"),
        ("[worklist]\nallowed_hosts = ['x y']", "worklist.allowed_hosts in"),
    ],
)
def test_listener_errors_name_the_key(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        load_settings(write(tmp_path / "site.toml", text), {})


def test_clinic_section(tmp_path: Path) -> None:
    """[clinic] name, address and phone: printed on the slip and the day list."""
    path = write(
        tmp_path / "clinic.toml",
        '[clinic]\nname = " Praxis Dr. Nowak "\naddress = "Hauptstr. 1\\n12345 Berlin"\n'
        'phone = "030 123456"\n',
    )
    settings = load_settings(path, environ={})
    assert settings.clinic_name == "Praxis Dr. Nowak"
    assert settings.clinic_address == "Hauptstr. 1\n12345 Berlin"
    assert settings.clinic_phone == "030 123456"
    bad = write(tmp_path / "bad.toml", "[clinic]\nname = 5\n")
    with pytest.raises(ConfigError, match="clinic.name"):
        load_settings(bad, environ={})
