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
    heartbeat_interval_s: float = 30.0
    crash_timeout_s: float = 300.0
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
        return tuple(s for s in found if s)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.redacted().items())
        return f"Config({fields})"

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with every secret replaced by ``***``."""
        data: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "api_token" and value:
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
        heartbeat_interval_s=interval,
        crash_timeout_s=crash_timeout,
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
    )


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
