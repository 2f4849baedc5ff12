"""Settings: ``config/clinic.toml`` plus ``CLINIC_*`` environment variables.

One typed, validated :class:`Settings` object is built at start and passed to
whatever needs it; nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from clinic.domain import vr
from clinic.domain.calendar import DEFAULT_HOURS, WEEKDAYS, OpeningHours
from clinic.domain.errors import ValidationError

log = logging.getLogger(__name__)

#: What a worklist answer's character set may be set to (per station, or the default):
#: the names of :data:`clinic.worklist.charsets.STATION_SETS`.
CHARACTER_SETS = (
    "ISO_IR 192",
    "ISO_IR 100",
    "ISO_IR 101",
    "ISO_IR 109",
    "ISO_IR 110",
    "ISO_IR 144",
    "ISO_IR 127",
    "ISO_IR 126",
    "ISO_IR 138",
    "ISO_IR 148",
    "ISO_IR 203",
    "ISO_IR 166",
    "GB18030",
    "GBK",
    "ISO 2022 IR 87",
    "ISO 2022 IR 13",
    "ISO 2022 IR 149",
    "ISO 2022 IR 58",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: How HL7 orders are answered: a general ACK, or ORR^O02 / ORI^O24.
ORDER_RESPONSES = ("ack", "orr")


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message says which and why."""


@dataclass(frozen=True)
class ListenerSettings:
    """The settings of one DICOM listener, read from :class:`Settings`.

    Built by :attr:`Settings.worklist_listener` and :attr:`Settings.print_listener`;
    the flat attributes of :class:`Settings` (and the configuration file's keys and
    environment variables) stay what they are.

    Attributes
    ----------
    name : str
        ``worklist`` or ``print``: the listener in log lines, and its section of
        ``config/clinic.toml`` (where its keys have these attributes' names).
    max_associations : int
        Associations served at once.
    max_associations_per_address : int
        Of those, at most this many from one peer address.
    max_dataset_bytes : int
        Largest DIMSE data set received ([dicom], shared by the listeners).
    tls_cert, tls_key, tls_ca : str
        PEM files (empty: none); a certificate and key serve TLS.
    require_client_cert : bool
        Refuse peers without a certificate signed by ``tls_ca``.
    allowed_hosts : tuple of str
        Addresses or networks allowed to associate (empty: all).
    association_timeout, pdu_timeout, idle_timeout, tls_handshake_timeout : float
        Deadlines in seconds ([dicom], shared by the listeners).
    """

    name: str
    max_associations: int
    max_associations_per_address: int
    max_dataset_bytes: int
    tls_cert: str
    tls_key: str
    tls_ca: str
    require_client_cert: bool
    allowed_hosts: tuple[str, ...]
    association_timeout: float
    pdu_timeout: float
    idle_timeout: float
    tls_handshake_timeout: float


@dataclass(frozen=True)
class Settings:
    """The service's configuration, validated.

    Every attribute has the default documented in ``config/clinic.toml``.
    """

    data_dir: Path = Path("./var")
    database_url: str = ""
    host: str = "0.0.0.0"
    web_port: int = 8080
    mwl_port: int = 11112
    mwl_ae_title: str = "CLINIC"
    accent_insensitive: bool = True
    mwl_character_set: str = "ISO_IR 192"
    accept_any_called_ae_title: bool = False
    # A booking still SCHEDULED whose day is older than this many days leaves the worklist.
    worklist_past_days: int = 1
    print_port: int = 11113
    printer_ae_title: str = "PDFPRINT"
    # AE@host:port of a Storage SCP archiving the default printer's jobs; empty: off.
    print_archive: str = ""
    hl7_port: int = 2575
    # Guards of the two DICOM listeners (clinic.dicom.listener); see config/clinic.toml [dicom].
    association_timeout: float = 3600.0
    pdu_timeout: float = 60.0
    idle_timeout: float = 60.0
    tls_handshake_timeout: float = 10.0
    max_dataset_bytes: int = 1 << 20
    mwl_max_associations: int = 50
    mwl_max_associations_per_address: int = 10
    mwl_max_matches: int = 0
    mwl_tls_cert: str = ""
    mwl_tls_key: str = ""
    mwl_tls_ca: str = ""
    mwl_require_client_cert: bool = False
    mwl_allowed_hosts: tuple[str, ...] = ()
    mwl_find_ae_titles: tuple[str, ...] = ()
    mwl_mpps_ae_titles: tuple[str, ...] = ()
    print_max_associations: int = 20
    print_max_associations_per_address: int = 5
    print_max_image_box_bytes: int = 200 << 20
    print_max_association_image_bytes: int = 1 << 30
    print_min_free_mb: int = 100
    print_tls_cert: str = ""
    print_tls_key: str = ""
    print_tls_ca: str = ""
    print_require_client_cert: bool = False
    print_allowed_hosts: tuple[str, ...] = ()
    # Guards of the HL7 MLLP listener (clinic.hl7.mllp), same names as the DICOM ones.
    hl7_max_connections: int = 32
    hl7_max_connections_per_address: int = 4
    hl7_max_message_bytes: int = 1 << 20
    hl7_read_timeout: float = 30.0
    hl7_frame_timeout: float = 120.0
    hl7_idle_timeout: float = 300.0
    hl7_order_response: str = "ack"
    # The web door (clinic.web.door): HTTPS, connection limits, idle keep-alive deadline.
    web_tls_cert: str = ""
    web_tls_key: str = ""
    web_tls_handshake_timeout: float = 10.0
    web_max_connections: int = 100
    web_max_connections_per_address: int = 20
    web_idle_timeout: float = 15.0
    uid_root: str = ""
    log_level: str = "INFO"
    printers: dict[str, dict[str, Any]] = field(default_factory=dict)
    retention_days: int = 0
    # [scheduling]: how long a booking lasts unless the catalog says, and when stations open.
    default_duration_minutes: int = 15
    opening_hours: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HOURS))
    closed_dates: tuple[str, ...] = ()
    # The clinic as printed on appointment slips and day lists ([clinic]).
    clinic_name: str = ""
    clinic_address: str = ""
    clinic_phone: str = ""
    config_file: Path | None = None

    @property
    def opening(self) -> OpeningHours:
        """The clinic's opening hours and closed dates (checked when loaded)."""
        return OpeningHours.from_mapping(self.opening_hours, self.closed_dates)

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in use: the configured one or SQLite under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'clinic.db').resolve()}"

    @property
    def database_label(self) -> str:
        """The database URL in use with any password hidden, for logs."""
        return _mask_url(self.resolved_database_url)

    @property
    def worklist_listener(self) -> ListenerSettings:
        """The worklist listener's settings ([worklist] and [dicom])."""
        return ListenerSettings(
            name="worklist",
            max_associations=self.mwl_max_associations,
            max_associations_per_address=self.mwl_max_associations_per_address,
            max_dataset_bytes=self.max_dataset_bytes,
            tls_cert=self.mwl_tls_cert,
            tls_key=self.mwl_tls_key,
            tls_ca=self.mwl_tls_ca,
            require_client_cert=self.mwl_require_client_cert,
            allowed_hosts=self.mwl_allowed_hosts,
            association_timeout=self.association_timeout,
            pdu_timeout=self.pdu_timeout,
            idle_timeout=self.idle_timeout,
            tls_handshake_timeout=self.tls_handshake_timeout,
        )

    @property
    def print_listener(self) -> ListenerSettings:
        """The print listener's settings ([print] and [dicom])."""
        return ListenerSettings(
            name="print",
            max_associations=self.print_max_associations,
            max_associations_per_address=self.print_max_associations_per_address,
            max_dataset_bytes=self.max_dataset_bytes,
            tls_cert=self.print_tls_cert,
            tls_key=self.print_tls_key,
            tls_ca=self.print_tls_ca,
            require_client_cert=self.print_require_client_cert,
            allowed_hosts=self.print_allowed_hosts,
            association_timeout=self.association_timeout,
            pdu_timeout=self.pdu_timeout,
            idle_timeout=self.idle_timeout,
            tls_handshake_timeout=self.tls_handshake_timeout,
        )

    def describe(self) -> dict[str, Any]:
        """Return the settings as a dict fit for a log line: secrets masked."""
        shown: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "database_url":
                value = _mask_url(self.resolved_database_url)
            elif isinstance(value, Path):
                value = str(value)
            shown[f.name] = value
        return shown


@dataclass(frozen=True)
class ArchiveTarget:
    """A Storage SCP that receives the printed jobs: ``AE@host:port``."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_archive(value: str, where: str) -> ArchiveTarget | None:
    """Parse ``AE@host:port`` (empty: no archive).

    Parameters
    ----------
    value : str
        The setting as written.
    where : str
        Names the setting in the error message.

    Raises
    ------
    ConfigError
        When the value is not ``AE@host:port`` with a valid AE title and port.
    """
    text = value.strip()
    if not text:
        return None
    ae_title, at, address = text.rpartition("@")
    host, colon, port_text = address.rpartition(":")
    if not at or not colon or not host:
        raise ConfigError(f"{where}: {value!r} must be AE@host:port")
    problem = vr.check_ae(ae_title)
    if problem:
        raise ConfigError(f"{where}: AE title {ae_title!r} {problem}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where}: port {port_text!r} must be a number from 1 to 65535")
    return ArchiveTarget(ae_title.strip(), host.strip("[]"), int(port_text))


def _mask_url(url: str) -> str:
    """Hide a password in a database URL (``user:***@host``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


# TOML (section, key) -> (Settings attribute, environment variable)
_KEYS: list[tuple[str, str, str, str | None]] = [
    ("storage", "data_dir", "data_dir", "CLINIC_DATA_DIR"),
    ("storage", "database_url", "database_url", "CLINIC_DATABASE_URL"),
    ("network", "host", "host", "CLINIC_HOST"),
    ("network", "web_port", "web_port", "CLINIC_WEB_PORT"),
    ("network", "hl7_port", "hl7_port", "CLINIC_HL7_PORT"),
    ("worklist", "port", "mwl_port", "CLINIC_MWL_PORT"),
    ("worklist", "ae_title", "mwl_ae_title", "CLINIC_MWL_AE_TITLE"),
    ("worklist", "accent_insensitive", "accent_insensitive", "CLINIC_ACCENT_INSENSITIVE"),
    ("worklist", "character_set", "mwl_character_set", "CLINIC_MWL_CHARACTER_SET"),
    ("worklist", "accept_any_called_ae_title", "accept_any_called_ae_title", None),
    ("worklist", "past_days", "worklist_past_days", "CLINIC_WORKLIST_PAST_DAYS"),
    ("identifiers", "uid_root", "uid_root", "CLINIC_UID_ROOT"),
    ("print", "port", "print_port", "CLINIC_PRINT_PORT"),
    ("print", "printer_ae_title", "printer_ae_title", "CLINIC_PRINTER_AE_TITLE"),
    ("print", "archive", "print_archive", "CLINIC_PRINT_ARCHIVE"),
    ("dicom", "association_timeout", "association_timeout", None),
    ("dicom", "pdu_timeout", "pdu_timeout", None),
    ("dicom", "idle_timeout", "idle_timeout", None),
    ("dicom", "tls_handshake_timeout", "tls_handshake_timeout", None),
    ("dicom", "max_dataset_bytes", "max_dataset_bytes", None),
    ("worklist", "max_associations", "mwl_max_associations", None),
    ("worklist", "max_associations_per_address", "mwl_max_associations_per_address", None),
    ("worklist", "max_matches", "mwl_max_matches", None),
    ("worklist", "tls_cert", "mwl_tls_cert", "CLINIC_MWL_TLS_CERT"),
    ("worklist", "tls_key", "mwl_tls_key", "CLINIC_MWL_TLS_KEY"),
    ("worklist", "tls_ca", "mwl_tls_ca", "CLINIC_MWL_TLS_CA"),
    ("worklist", "require_client_cert", "mwl_require_client_cert", None),
    ("worklist", "allowed_hosts", "mwl_allowed_hosts", None),
    ("worklist", "allowed_find_ae_titles", "mwl_find_ae_titles", None),
    ("worklist", "allowed_mpps_ae_titles", "mwl_mpps_ae_titles", None),
    ("print", "max_associations", "print_max_associations", None),
    ("print", "max_associations_per_address", "print_max_associations_per_address", None),
    ("print", "max_image_box_bytes", "print_max_image_box_bytes", None),
    ("print", "max_association_image_bytes", "print_max_association_image_bytes", None),
    ("print", "min_free_mb", "print_min_free_mb", None),
    ("print", "tls_cert", "print_tls_cert", "CLINIC_PRINT_TLS_CERT"),
    ("print", "tls_key", "print_tls_key", "CLINIC_PRINT_TLS_KEY"),
    ("print", "tls_ca", "print_tls_ca", "CLINIC_PRINT_TLS_CA"),
    ("print", "require_client_cert", "print_require_client_cert", None),
    ("print", "allowed_hosts", "print_allowed_hosts", None),
    ("hl7", "max_connections", "hl7_max_connections", None),
    ("hl7", "max_connections_per_address", "hl7_max_connections_per_address", None),
    ("hl7", "max_message_bytes", "hl7_max_message_bytes", None),
    ("hl7", "read_timeout", "hl7_read_timeout", None),
    ("hl7", "frame_timeout", "hl7_frame_timeout", None),
    ("hl7", "idle_timeout", "hl7_idle_timeout", None),
    ("hl7", "order_response", "hl7_order_response", None),
    ("web", "tls_cert", "web_tls_cert", "CLINIC_WEB_TLS_CERT"),
    ("web", "tls_key", "web_tls_key", "CLINIC_WEB_TLS_KEY"),
    ("web", "tls_handshake_timeout", "web_tls_handshake_timeout", None),
    ("web", "max_connections", "web_max_connections", None),
    ("web", "max_connections_per_address", "web_max_connections_per_address", None),
    ("web", "idle_timeout", "web_idle_timeout", None),
    ("logging", "level", "log_level", "CLINIC_LOG_LEVEL"),
    ("retention", "print_job_days", "retention_days", "CLINIC_RETENTION_DAYS"),
    ("scheduling", "default_duration_minutes", "default_duration_minutes", None),
    ("scheduling", "closed_dates", "closed_dates", None),
    ("clinic", "name", "clinic_name", None),
    ("clinic", "address", "clinic_address", None),
    ("clinic", "phone", "clinic_phone", None),
]

#: (section, key) -> Settings attribute, for messages naming where a key was set.
_ATTRIBUTE_OF = {(section, key): attr for section, key, attr, _ in _KEYS}

_PORTS = ("web_port", "mwl_port", "print_port", "hl7_port")
_BOOLS = (
    "accent_insensitive",
    "accept_any_called_ae_title",
    "mwl_require_client_cert",
    "print_require_client_cert",
)
_SECONDS = (
    "association_timeout",
    "pdu_timeout",
    "idle_timeout",
    "tls_handshake_timeout",
    "hl7_read_timeout",
    "hl7_frame_timeout",
    "hl7_idle_timeout",
    "web_tls_handshake_timeout",
    "web_idle_timeout",
)
_COUNTS = (
    "max_dataset_bytes",
    "mwl_max_associations",
    "mwl_max_associations_per_address",
    "print_max_associations",
    "print_max_associations_per_address",
    "print_max_image_box_bytes",
    "print_max_association_image_bytes",
    "hl7_max_connections",
    "hl7_max_connections_per_address",
    "hl7_max_message_bytes",
    "web_max_connections",
    "web_max_connections_per_address",
)
#: Whole numbers where 0 means "no limit".
_OPTIONAL_COUNTS = ("mwl_max_matches", "print_min_free_mb")
_LISTS = (
    "mwl_allowed_hosts",
    "mwl_find_ae_titles",
    "mwl_mpps_ae_titles",
    "print_allowed_hosts",
    "closed_dates",
)


#: The configuration file of the source tree the package runs from (an editable install).
PROJECT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "clinic.toml"
#: The configuration file of a system-wide installation.
SYSTEM_CONFIG = Path("/etc/clinic/clinic.toml")


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Return the configuration file to read.

    ``$CLINIC_CONFIG`` when set; else the first that exists of ``config/clinic.toml``
    in the working folder, the installation's own ``config/clinic.toml``
    (:data:`PROJECT_CONFIG`) and ``/etc/clinic/clinic.toml``; so a command run from
    any folder finds the same file, and with it the same data folder.

    Parameters
    ----------
    environ : Mapping, optional
        The environment to look ``CLINIC_CONFIG`` up in; defaults to ``os.environ``.
    """
    env = os.environ if environ is None else environ
    if "CLINIC_CONFIG" in env:
        return Path(env["CLINIC_CONFIG"])
    here = Path("config/clinic.toml")
    for candidate in (here, PROJECT_CONFIG, SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return here


def config_base(config_file: Path) -> Path:
    """The folder a configuration file's relative paths start from.

    The folder above ``config/`` for a file in a folder called ``config`` (the
    installation folder: ``config/clinic.toml`` puts ``./var`` beside ``config/``),
    else the file's own folder.
    """
    folder = config_file.resolve().parent
    return folder.parent if folder.name == "config" else folder


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build the settings from the TOML file and the environment.

    Parameters
    ----------
    path : Path, optional
        The TOML file; defaults to :func:`default_config_path`. A missing default
        file is fine (built-in defaults apply); a missing named file is an error.
    environ : dict, optional
        The environment to read ``CLINIC_*`` overrides from; defaults to ``os.environ``.

    Returns
    -------
    Settings
        Validated settings.

    Raises
    ------
    ConfigError
        When the file cannot be read or any value is invalid.
    """
    env = dict(os.environ if environ is None else environ)
    explicit = path is not None or "CLINIC_CONFIG" in env
    if path is None:
        path = default_config_path(env)
    raw: dict[str, Any] = {}
    config_file: Path | None = None
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
        config_file = path.resolve()
    elif explicit:
        raise ConfigError(f"configuration file {path} does not exist")

    values: dict[str, Any] = {}
    for section, key, attr, env_name in _KEYS:
        sect = raw.get(section, {})
        if not isinstance(sect, dict):
            raise ConfigError(f"[{section}] in {path} must be a table")
        if key in sect:
            values[attr] = (sect[key], f"{section}.{key} in {path}")
        if env_name and env_name in env:
            values[attr] = (env[env_name], env_name)

    converted: dict[str, Any] = {}
    for attr, (value, origin) in values.items():
        converted[attr] = _convert(attr, value, origin)
    printers = raw.get("printers", {})
    if not isinstance(printers, dict):
        raise ConfigError(f"[printers] in {path} must be a table")
    if config_file is not None and "CLINIC_DATA_DIR" not in env:
        data_dir = converted.get("data_dir", Settings.data_dir)
        if not data_dir.is_absolute():
            converted["data_dir"] = config_base(config_file) / data_dir
    hours = _opening_hours(raw.get("scheduling", {}).get("opening_hours"), path)
    settings = Settings(
        **converted, printers=printers, opening_hours=hours, config_file=config_file
    )
    _validate(settings, {a: o for a, (_, o) in values.items()})
    return settings


def _opening_hours(table: Any, path: Path) -> dict[str, str]:
    """``[scheduling.opening_hours]``: weekday -> hours; weekdays not named keep the default."""
    hours = dict(DEFAULT_HOURS)
    if table is None:
        return hours
    origin = f"scheduling.opening_hours in {path}"
    if not isinstance(table, dict):
        raise ConfigError(f"{origin} must be a table")
    for key, value in table.items():
        if key not in WEEKDAYS:
            raise ConfigError(f"{origin}: {key!r} is not one of {', '.join(WEEKDAYS)}")
        if not isinstance(value, str):
            raise ConfigError(f'{origin}: {key} must be text such as "08:00-17:00"')
        hours[key] = value.strip()
    return hours


def _convert(attr: str, value: Any, origin: str) -> Any:
    if attr in _PORTS:
        try:
            port = int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{origin}: port {value!r} is not a number") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"{origin}: port {port} is outside 0-65535")
        return port
    if attr == "default_duration_minutes":
        minutes = _number(value, origin, int)
        if not 1 <= minutes <= 24 * 60:
            raise ConfigError(f"{origin}: {value!r} must be between 1 and 1440 minutes")
        return minutes
    if attr == "retention_days":
        days = _days(value, origin)
        if days < 0:
            raise ConfigError(f"{origin}: days must be 0 (keep forever) or more")
        return days
    if attr == "worklist_past_days":
        days = _days(value, origin)
        if days < 0:
            raise ConfigError(f"{origin}: days must be 0 (today on) or more")
        return days
    if attr in _BOOLS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{origin}: {value!r} is not true or false")
    if attr == "data_dir":
        return Path(str(value))
    if attr in _OPTIONAL_COUNTS:
        limit = _number(value, origin, int)
        if limit < 0:
            raise ConfigError(f"{origin}: {value!r} must be 0 (no limit) or more")
        return limit
    if attr in _SECONDS or attr in _COUNTS:
        number = _number(value, origin, float if attr in _SECONDS else int)
        if number <= 0:
            raise ConfigError(f"{origin}: {value!r} must be greater than 0")
        return number
    if attr in _LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{origin}: must be a list of strings")
        return tuple(v.strip().upper() if attr.endswith("ae_titles") else v.strip() for v in value)
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: {value!r} must be text")
    return value.strip() if attr != "database_url" else value


def _days(value: Any, origin: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{origin}: {value!r} is not a whole number of days") from None


def _number(value: Any, origin: str, kind: type[int] | type[float]) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(f"{origin}: {value!r} is not a number")
    try:
        return kind(str(value).strip()) if isinstance(value, str) else kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {value!r} is not a number") from None


def _validate_listener_guards(settings: Settings, where: Callable[[str], str]) -> None:
    """TLS files that exist and come in pairs, hosts that parse, AE titles that are valid."""

    def at(listener: ListenerSettings, key: str) -> str:
        # Where the listener's key was set: its file key or environment variable.
        return where(_ATTRIBUTE_OF[listener.name, key])

    for listener in (settings.worklist_listener, settings.print_listener):
        cert, key, ca = listener.tls_cert, listener.tls_key, listener.tls_ca
        if bool(cert) != bool(key):
            raise ConfigError(f"{at(listener, 'tls_cert')}: tls_cert and tls_key go together")
        for name, path in (("tls_cert", cert), ("tls_key", key), ("tls_ca", ca)):
            if path and not Path(path).is_file():
                raise ConfigError(f"{at(listener, name)}: file {path} does not exist")
        if ca and not cert:
            raise ConfigError(f"{at(listener, 'tls_ca')}: tls_ca needs tls_cert and tls_key")
        if listener.require_client_cert and not ca:
            raise ConfigError(
                f"{at(listener, 'require_client_cert')}: client certificates need tls_ca"
            )
        for host in listener.allowed_hosts:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise ConfigError(
                    f"{at(listener, 'allowed_hosts')}: {host!r} is not an address or network"
                ) from None
    if bool(settings.web_tls_cert) != bool(settings.web_tls_key):
        raise ConfigError(f"{where('web_tls_cert')}: tls_cert and tls_key go together")
    for attr in ("web_tls_cert", "web_tls_key"):
        path = getattr(settings, attr)
        if path and not Path(path).is_file():
            raise ConfigError(f"{where(attr)}: file {path} does not exist")
    if settings.web_max_connections_per_address >= settings.web_max_connections:
        raise ConfigError(
            f"{where('web_max_connections_per_address')}: must be below [web] "
            f"max_connections ({settings.web_max_connections}), so that one address "
            "cannot take every connection"
        )
    for attr, titles in (
        ("mwl_find_ae_titles", settings.mwl_find_ae_titles),
        ("mwl_mpps_ae_titles", settings.mwl_mpps_ae_titles),
    ):
        for title in titles:
            problem = vr.check_ae(title)
            if problem:
                raise ConfigError(f"{where(attr)}: AE title {title!r} {problem}")


def _validate(settings: Settings, origins: dict[str, str]) -> None:
    def where(attr: str) -> str:
        return origins.get(attr, attr)

    for attr, title in (
        ("mwl_ae_title", settings.mwl_ae_title),
        ("printer_ae_title", settings.printer_ae_title),
    ):
        problem = vr.check_ae(title)
        if problem:
            raise ConfigError(f"{where(attr)}: AE title {title!r} {problem}")
    if settings.mwl_character_set not in CHARACTER_SETS:
        raise ConfigError(
            f"{where('mwl_character_set')}: character set must be one of "
            f"{', '.join(CHARACTER_SETS)}"
        )
    if settings.uid_root:
        problem = vr.check_uid(settings.uid_root)
        if problem or len(settings.uid_root) > 40:
            raise ConfigError(
                f"{where('uid_root')}: UID root {settings.uid_root!r} "
                f"{problem or 'must be at most 40 characters to leave room for a suffix'}"
            )
    if settings.hl7_order_response not in ORDER_RESPONSES:
        raise ConfigError(
            f"{where('hl7_order_response')}: order response must be one of "
            f"{', '.join(repr(r) for r in ORDER_RESPONSES)}"
        )
    if settings.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"{where('log_level')}: log level must be one of {', '.join(LOG_LEVELS)}")
    if not settings.host:
        raise ConfigError(f"{where('host')}: host must not be empty")
    if settings.database_url and "://" not in settings.database_url:
        raise ConfigError(f"{where('database_url')}: {settings.database_url!r} is not a URL")
    _validate_listener_guards(settings, where)
    parse_archive(settings.print_archive, where("print_archive"))
    try:
        OpeningHours.from_mapping(settings.opening_hours, settings.closed_dates)
    except ValidationError as exc:
        key, problem = next(iter(exc.errors.items()))
        origin = where("closed_dates") if key == "closed_dates" else "[scheduling.opening_hours]"
        raise ConfigError(f"{origin}: {key}: {problem}") from None
    ports = (settings.web_port, settings.mwl_port, settings.print_port, settings.hl7_port)
    nonzero = [port for port in ports if port != 0]
    if len(nonzero) != len(set(nonzero)):
        raise ConfigError("two listeners are configured on the same port")
