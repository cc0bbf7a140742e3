"""Typed, frozen configuration read from ``TRADINGBOT_*`` environment variables.

Every value is validated once, at start, by :func:`load_config`. A bad value raises
:class:`ConfigError` whose message is one line naming the variable and what is
expected; the command line prints it and exits 2. Defaults serve a first run with no
configuration at all (SQLite in ``TRADINGBOT_HOME``, the built-in gateway simulator).

Values come from the process environment and, optionally, from a ``.env`` file (the
path in ``TRADINGBOT_ENV_FILE``, else ``./.env`` when it exists); the real environment
wins over the file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

PREFIX = "TRADINGBOT_"
BrokerKind = Literal["sim", "ibkr"]
SmtpTls = Literal["none", "starttls", "tls"]
SMTP_TLS_MODES = ("none", "starttls", "tls")
SMTP_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
# Notification kinds the operator can switch off (TRADINGBOT_NOTIFY_TYPES).
NOTIFY_TYPES = ("trade_execution", "alert", "daily_summary", "recovery_report")
DEFAULT_EMAIL_FROM = "trading-bot@localhost"
DEFAULT_EMAIL_TO: tuple[str, ...] = ("operator@localhost",)
# An RFC 5321 addr-spec, deliberately stricter than RFC 5322 (no quoted local parts,
# no IP literals): what a mail server will accept, and nothing that could break a header.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*"
_DISPLAY_NAME = r'[^<>@",;:\\\x00-\x1f\x7f]*?|"[^"\\\x00-\x1f\x7f]*"'
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_MAILBOX = re.compile(
    rf"\s*(?:(?P<name>{_DISPLAY_NAME})\s*<(?P<bracketed>{_ADDR_SPEC})>|(?P<bare>{_ADDR_SPEC}))\s*"
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_PERSIST_TYPES = ("TRADE", "SIGNAL", "ORDER", "RISK")
_EVENT_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_MAX_UNIX_PATH = 107


class ConfigError(ValueError):
    """A configuration value is missing or wrong; ``str()`` is the one-line message."""

    def __init__(self, variable: str, expected: str, got: str | None = None) -> None:
        self.variable = variable
        self.expected = expected
        self.got = got
        shown = "" if got is None else f", got {got!r}"
        super().__init__(f"{variable}: expected {expected}{shown}")


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Config:
    """The effective configuration of one process. Units are in the field names.

    Its ``repr`` is the redacted form, so logging the object never leaks a secret.
    """

    home: Path
    database_url: str
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    api_token: str | None = None
    broker: BrokerKind = "sim"
    ib_host: str = "127.0.0.1"
    ib_port: int = 4002
    ib_client_id: int = 1
    ib_account: str | None = None
    ib_connect_timeout_s: float = 10.0
    ib_request_timeout_s: float = 10.0
    ib_probe_interval_s: float = 5.0
    ib_probe_timeout_s: float = 5.0
    ib_probe_misses: int = 3
    heartbeat_interval_s: float = 30.0
    crash_timeout_s: float = 300.0
    reconcile_interval_s: float = 300.0
    reconcile_cost_tolerance: float = 0.01  # relative difference of average cost
    reconcile_accept: bool = False  # accept discrepancies without an operator
    shutdown_timeout_s: float = 30.0
    liveness_probe_interval_s: float = 5.0
    liveness_deadline_s: float = 10.0
    log_level: str = "INFO"
    events_persist_types: tuple[str, ...] = DEFAULT_PERSIST_TYPES
    events_min_severity: str = "WARNING"
    event_retention_days: float = 30.0
    events_batch_size: int = 500
    events_flush_interval_s: float = 0.1
    health_interval_s: float = 5.0
    health_check_timeout_s: float = 2.0
    disk_warn_free_mb: float = 1024.0
    disk_fail_free_mb: float = 256.0
    smtp_host: str | None = None  # None: mail is written as .eml files to outbox_dir
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: SmtpTls = "starttls"
    smtp_timeout_s: float = 10.0
    smtp_ca_file: Path | None = None  # PEM bundle trusted for TLS (else the system store)
    smtp_retry_attempts: int = 3
    smtp_retry_interval_s: float = 5.0
    smtp_retry_jitter_s: float = 1.0
    email_from: str = DEFAULT_EMAIL_FROM
    email_to: tuple[str, ...] = DEFAULT_EMAIL_TO
    notify_types: tuple[str, ...] = NOTIFY_TYPES
    notify_min_severity: str = "ERROR"
    notify_storm_window_s: float = 300.0
    notify_rate_limit_per_hour: int = 30

    @property
    def outbox_dir(self) -> Path:
        """Where mail is written as ``.eml`` files when no SMTP server is configured."""
        return self.home / "outbox"

    @property
    def templates_dir(self) -> Path:
        """Operator overrides of the notification templates (same file names)."""
        return self.home / "templates"

    @property
    def control_socket_path(self) -> Path:
        """The debug/control UNIX socket (directory 0700, socket 0600)."""
        return self.home / "run" / "control.sock"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def spool_dir(self) -> Path:
        """Where events wait, fsync'd, while the database is unreachable."""
        return self.home / "spool"

    def secrets(self) -> tuple[str, ...]:
        """Configured secret values, for redaction wherever text leaves the process."""
        found = [self.api_token or ""]
        password = urlsplit(self.database_url).password
        found.append(password or "")
        found.append(self.smtp_password or "")
        return tuple(s for s in found if s)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.redacted().items())
        return f"Config({fields})"

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with every secret replaced by ``***``."""
        data: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("api_token", "smtp_password") and value:
                value = "***"
            elif field.name == "database_url":
                value = redact_url(value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[field.name] = value
        data["control_socket_path"] = str(self.control_socket_path)
        return data


def redact_url(url: str) -> str:
    """Replace the password of a database URL with ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/trading-bot``, else ``~/.local/state/trading-bot``."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "trading-bot"


def read_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge the optional ``.env`` file under the real environment (which wins)."""
    env = dict(os.environ if environ is None else environ)
    env_file = env.get(PREFIX + "ENV_FILE")
    if env_file:
        path = Path(env_file)
        if not path.is_file():
            raise ConfigError(PREFIX + "ENV_FILE", "an existing .env file", env_file)
    else:
        path = Path(".env")
    if path.is_file():
        for key, value in dotenv_values(path).items():
            if key.startswith(PREFIX) and value is not None:
                env.setdefault(key, value)
    return env


def load_config(environ: Mapping[str, str] | None = None, *, prepare_home: bool = True) -> Config:
    """Read and validate the configuration; raise :class:`ConfigError` on the first bad value.

    With ``prepare_home`` (the default) the state folder is created if needed and proven
    writable, because every command that runs the bot needs it.
    """
    env = read_environment(environ)
    reader = _Reader(env)
    home = Path(reader.text("HOME", str(default_home(env)))).expanduser()
    if not home.is_absolute():
        home = Path.cwd() / home
    if prepare_home:
        _prepare_home(home)
    sock = home / "run" / "control.sock"
    if len(os.fsencode(sock)) > _MAX_UNIX_PATH:
        raise ConfigError(
            PREFIX + "HOME",
            f"a path short enough for the control socket ({_MAX_UNIX_PATH} bytes)",
            str(home),
        )
    database_url = reader.text("DATABASE_URL", f"sqlite:///{home / 'trading-bot.db'}")
    _check_database_url(database_url)
    http_host = reader.text("HTTP_HOST", "127.0.0.1")
    api_token = reader.optional("API_TOKEN")
    if not _is_loopback(http_host) and not api_token:
        raise ConfigError(
            PREFIX + "API_TOKEN",
            f"a token when {PREFIX}HTTP_HOST is not a loopback address",
            None,
        )
    broker = reader.choice("BROKER", "sim", ("sim", "ibkr"))
    interval = reader.number("HEARTBEAT_INTERVAL_S", 30.0, minimum=0.05)
    crash_timeout = reader.number("CRASH_TIMEOUT_S", 300.0, minimum=1.0)
    if crash_timeout <= interval:
        raise ConfigError(
            PREFIX + "CRASH_TIMEOUT_S",
            f"a number of seconds greater than {PREFIX}HEARTBEAT_INTERVAL_S ({interval:g})",
            str(crash_timeout),
        )
    probe = reader.number("LIVENESS_PROBE_INTERVAL_S", 5.0, minimum=0.01)
    disk_warn = reader.number("DISK_WARN_FREE_MB", 1024.0, minimum=0.0, unit="MiB")
    disk_fail = reader.number("DISK_FAIL_FREE_MB", 256.0, minimum=0.0, unit="MiB")
    if disk_fail > disk_warn:
        raise ConfigError(
            PREFIX + "DISK_FAIL_FREE_MB",
            f"a number of MiB <= {PREFIX}DISK_WARN_FREE_MB ({disk_warn:g})",
            str(disk_fail),
        )
    return Config(
        home=home,
        database_url=database_url,
        http_host=http_host,
        http_port=reader.port("HTTP_PORT", 8000, allow_zero=True),
        api_token=api_token,
        broker=broker,  # type: ignore[arg-type]  # checked by choice()
        ib_host=reader.text("IB_HOST", "127.0.0.1"),
        ib_port=reader.port("IB_PORT", 4002),
        ib_client_id=reader.integer("IB_CLIENT_ID", 1, minimum=0, maximum=2**31 - 1),
        ib_account=reader.optional("IB_ACCOUNT"),
        ib_connect_timeout_s=reader.number("IB_CONNECT_TIMEOUT_S", 10.0, minimum=0.1),
        ib_request_timeout_s=reader.number("IB_REQUEST_TIMEOUT_S", 10.0, minimum=0.1),
        ib_probe_interval_s=reader.number("IB_PROBE_INTERVAL_S", 5.0, minimum=0.05),
        ib_probe_timeout_s=reader.number("IB_PROBE_TIMEOUT_S", 5.0, minimum=0.05),
        ib_probe_misses=reader.integer("IB_PROBE_MISSES", 3, minimum=1, maximum=1000),
        heartbeat_interval_s=interval,
        crash_timeout_s=crash_timeout,
        reconcile_interval_s=reader.number("RECONCILE_INTERVAL_S", 300.0, minimum=1.0),
        reconcile_cost_tolerance=reader.number(
            "RECONCILE_COST_TOLERANCE", 0.01, minimum=0.0, unit="relative difference"
        ),
        reconcile_accept=reader.boolean("RECONCILE_ACCEPT", False),
        shutdown_timeout_s=reader.number("SHUTDOWN_TIMEOUT_S", 30.0, minimum=1.0),
        liveness_probe_interval_s=probe,
        liveness_deadline_s=reader.number("LIVENESS_DEADLINE_S", 10.0, minimum=probe),
        log_level=reader.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        events_persist_types=reader.event_types("EVENTS_PERSIST_TYPES", DEFAULT_PERSIST_TYPES),
        events_min_severity=reader.choice("EVENTS_MIN_SEVERITY", "WARNING", LOG_LEVELS, upper=True),
        event_retention_days=reader.number("EVENT_RETENTION_DAYS", 30.0, minimum=1.0, unit="days"),
        events_batch_size=reader.integer("EVENTS_BATCH_SIZE", 500, minimum=1, maximum=10_000),
        events_flush_interval_s=reader.number("EVENTS_FLUSH_INTERVAL_S", 0.1, minimum=0.001),
        health_interval_s=reader.number("HEALTH_INTERVAL_S", 5.0, minimum=0.05),
        health_check_timeout_s=reader.number("HEALTH_CHECK_TIMEOUT_S", 2.0, minimum=0.05),
        disk_warn_free_mb=disk_warn,
        disk_fail_free_mb=disk_fail,
        **_email_settings(reader),
    )


def check_mailbox(value: str) -> str:
    """Return ``addr@host`` or ``Name <addr@host>`` normalised; ``ValueError`` otherwise.

    Control characters (CR/LF above all) are refused, so a configured address can never
    inject a header.
    """
    match = None if _CONTROL_CHARS.search(value) else _MAILBOX.fullmatch(value)
    if match is None:
        raise ValueError(f"not an e-mail address like ops@example.com: {value!r}")
    address = match.group("bracketed") or match.group("bare")
    name = (match.group("name") or "").strip().strip('"').strip()
    return f'"{name}" <{address}>' if name else address


def _email_settings(reader: _Reader) -> dict[str, Any]:
    """The SMTP and notification settings (``TRADINGBOT_SMTP_*``, ``_EMAIL_*``, ``_NOTIFY_*``)."""
    host = reader.optional("SMTP_HOST")
    legacy = reader.optional("SMTP_STARTTLS")  # the first name of the setting: a boolean
    tls_default = "starttls"
    if legacy is not None:
        if legacy.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ConfigError(PREFIX + "SMTP_STARTTLS", "true or false", legacy)
        tls_default = "starttls" if legacy.lower() in ("1", "true", "yes", "on") else "none"
    tls = reader.choice("SMTP_TLS", tls_default, SMTP_TLS_MODES)
    username = reader.optional("SMTP_USERNAME") or reader.optional("SMTP_USER")
    password = reader.optional("SMTP_PASSWORD")
    if password and not username:
        raise ConfigError(
            PREFIX + "SMTP_USERNAME", f"a user name when {PREFIX}SMTP_PASSWORD is set", None
        )
    if username and not password:
        raise ConfigError(
            PREFIX + "SMTP_PASSWORD", f"a password when {PREFIX}SMTP_USERNAME is set", None
        )
    ca_raw = reader.optional("SMTP_CA_FILE")
    ca_file = None if ca_raw is None else Path(ca_raw).expanduser()
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(PREFIX + "SMTP_CA_FILE", "an existing PEM file", ca_raw)
    sender = _mailbox(reader, "EMAIL_FROM", DEFAULT_EMAIL_FROM)
    to_raw = reader.optional("EMAIL_TO")
    if to_raw is None:
        if host is not None:
            raise ConfigError(
                PREFIX + "EMAIL_TO", f"at least one recipient when {PREFIX}SMTP_HOST is set", None
            )
        recipients = DEFAULT_EMAIL_TO
    else:
        parts = [part.strip() for part in to_raw.split(",") if part.strip()]
        if not parts:
            raise ConfigError(PREFIX + "EMAIL_TO", "comma-separated e-mail addresses", to_raw)
        try:
            recipients = tuple(check_mailbox(part) for part in parts)
        except ValueError as exc:
            raise ConfigError(
                PREFIX + "EMAIL_TO", f"comma-separated e-mail addresses ({exc})", None
            ) from None
    return {
        "smtp_host": host,
        "smtp_port": reader.port("SMTP_PORT", SMTP_DEFAULT_PORTS[tls]),
        "smtp_username": username,
        "smtp_password": password,
        "smtp_tls": tls,
        "smtp_timeout_s": reader.number("SMTP_TIMEOUT_S", 10.0, minimum=0.1),
        "smtp_ca_file": ca_file,
        "smtp_retry_attempts": reader.integer("SMTP_RETRY_ATTEMPTS", 3, minimum=1, maximum=100),
        "smtp_retry_interval_s": reader.number("SMTP_RETRY_INTERVAL_S", 5.0, minimum=0.0),
        "smtp_retry_jitter_s": reader.number("SMTP_RETRY_JITTER_S", 1.0, minimum=0.0),
        "email_from": sender,
        "email_to": recipients,
        "notify_types": _notify_types(reader),
        "notify_min_severity": reader.choice(
            "NOTIFY_MIN_SEVERITY", "ERROR", LOG_LEVELS, upper=True
        ),
        "notify_storm_window_s": reader.number("NOTIFY_STORM_WINDOW_S", 300.0, minimum=0.0),
        "notify_rate_limit_per_hour": reader.integer(
            "NOTIFY_RATE_LIMIT_PER_HOUR", 30, minimum=1, maximum=100_000
        ),
    }


def _mailbox(reader: _Reader, name: str, default: str) -> str:
    raw = reader.optional(name)
    if raw is None:
        return default
    try:
        return check_mailbox(raw)
    except ValueError:
        raise ConfigError(
            PREFIX + name, "an e-mail address like Bot <bot@example.com>", raw
        ) from None


def _notify_types(reader: _Reader) -> tuple[str, ...]:
    raw = reader.optional("NOTIFY_TYPES")
    if raw is None:
        return NOTIFY_TYPES
    if raw.lower() == "none":
        return ()
    types = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    for value in types:
        if value not in NOTIFY_TYPES:
            raise ConfigError(
                PREFIX + "NOTIFY_TYPES",
                "none, or a comma-separated list of " + ", ".join(NOTIFY_TYPES),
                raw,
            )
    return types


class _Reader:
    """Typed accessors over the environment; each raises ConfigError naming the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(PREFIX + name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def optional(self, name: str) -> str | None:
        return self._raw(name)

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        expected = f"an integer from {minimum} to {maximum}"
        try:
            value = int(raw, 10)
        except ValueError:
            raise ConfigError(PREFIX + name, expected, raw) from None
        if not minimum <= value <= maximum:
            raise ConfigError(PREFIX + name, expected, raw)
        return value

    def port(self, name: str, default: int, *, allow_zero: bool = False) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        low = 0 if allow_zero else 1
        expected = f"a TCP port number from {low} to 65535"
        try:
            value = int(raw, 10)
        except ValueError:
            raise ConfigError(PREFIX + name, expected, raw) from None
        if not low <= value <= 65535:
            raise ConfigError(PREFIX + name, expected, raw)
        return value

    def number(self, name: str, default: float, *, minimum: float, unit: str = "seconds") -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        expected = f"a number of {unit} >= {minimum:g}"
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(PREFIX + name, expected, raw) from None
        if not value >= minimum or value == float("inf"):
            raise ConfigError(PREFIX + name, expected, raw)
        return value

    def event_types(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self._raw(name)
        if raw is None:
            return default
        types = tuple(part.strip().upper() for part in raw.split(",") if part.strip())
        for value in types:
            if not _EVENT_TYPE.fullmatch(value):
                raise ConfigError(
                    PREFIX + name,
                    "a comma-separated list of event types like TRADE,SIGNAL,ORDER,RISK",
                    raw,
                )
        return types

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(PREFIX + name, "true or false", raw)

    def choice(
        self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False
    ) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise ConfigError(PREFIX + name, "one of " + ", ".join(allowed), raw)
        return value


def _prepare_home(home: Path) -> None:
    variable = PREFIX + "HOME"
    expected = "a writable directory"
    try:
        # Private by default: the database, logs and socket are the operator's alone.
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=home, prefix=".write-test-").close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(variable, f"{expected} ({reason})", str(home)) from None


def _check_database_url(url: str) -> None:
    variable = PREFIX + "DATABASE_URL"
    expected = "a URL like sqlite:///path/to.db or postgresql+psycopg2://user@host/db"
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    dialect = scheme.split("+", 1)[0]
    if dialect not in ("sqlite", "postgresql") or "://" not in url:
        raise ConfigError(variable, expected, redact_url(url))
    if dialect == "postgresql" and scheme not in ("postgresql", "postgresql+psycopg2"):
        raise ConfigError(variable, "the psycopg2 driver (postgresql+psycopg2://)", scheme)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
