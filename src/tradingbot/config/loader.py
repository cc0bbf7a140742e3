"""Read and validate the configuration from ``TRADINGBOT_*`` variables.

Every value is validated once, at start, by :func:`load_config`, row by row of the
settings table (:mod:`tradingbot.config.settings`). A bad value raises
:class:`ConfigError` whose message is one line naming the variable and what is
expected; the command line prints it and exits 2. Defaults serve a first run with no
configuration at all (SQLite in ``TRADINGBOT_HOME``, the built-in gateway simulator).

Values come from the process environment and, optionally, from a ``.env`` file (the
path in ``TRADINGBOT_ENV_FILE``, else ``./.env`` when it exists); the real environment
wins over the file.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from tradingbot.config.kinds import Invalid
from tradingbot.config.model import Config
from tradingbot.config.settings import (
    BY_NAME,
    DAY_S,
    EXAMPLE_STRATEGY,
    PREFIX,
    SETTINGS,
    SMTP_DEFAULT_PORTS,
    Setting,
)
from tradingbot.config.window import DailyWindow

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


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/trading-bot``, else ``~/.local/state/trading-bot``."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "trading-bot"


def read_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge the optional ``.env`` file under the real environment (which wins)."""
    env = dict(os.environ if environ is None else environ)
    reader = _Reader(env)
    env_file = reader.value(BY_NAME["ENV_FILE"])
    path = Path(".env") if env_file is None else env_file
    assert isinstance(path, Path)
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
    values: dict[str, object] = {}
    inputs: dict[str, object] = {}
    for setting in SETTINGS:
        value = reader.value(setting)
        if setting.attribute is None:
            inputs[setting.name] = value
            continue
        if value is None:
            value = _default(setting, values, inputs, env, prepare_home=prepare_home)
        elif setting.name == "HOME":
            value = _home(str(value), prepare_home=prepare_home)
        elif setting.name == "LOG_DIR":
            value = _log_dir(str(value), prepare=prepare_home)
        values[setting.attribute] = value
    _check_relations(values)
    return Config(**values)  # type: ignore[arg-type]  # one value per field, typed by its kind


def _default(
    setting: Setting,
    values: Mapping[str, object],
    inputs: Mapping[str, object],
    env: Mapping[str, str],
    *,
    prepare_home: bool,
) -> object:
    """The value of an unset setting: the table's, or one computed from earlier rows."""
    match setting.name:
        case "HOME":
            return _home(str(default_home(env)), prepare_home=prepare_home)
        case "DATABASE_URL":
            return f"sqlite:///{values['home'] / 'trading-bot.db'}"  # type: ignore[operator]
        case "SMTP_TLS" if inputs.get("SMTP_STARTTLS") is False:
            return "none"
        case "STRATEGIES":
            # Set but empty means "no strategy"; unset means the broker's default.
            if env.get(setting.variable) is not None or values["broker"] != "sim":
                return ()
            return (EXAMPLE_STRATEGY,)
        case "SMTP_PORT":
            return SMTP_DEFAULT_PORTS[str(values["smtp_tls"])]
        case "EMAIL_TO" if values.get("smtp_host") is not None:
            raise ConfigError(
                BY_NAME["EMAIL_TO"].variable,
                f"at least one recipient when {PREFIX}SMTP_HOST is set",
                None,
            )
    return setting.default


def _home(raw: str, *, prepare_home: bool) -> Path:
    home = Path(raw).expanduser()
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
    return home


def _check_relations(values: Mapping[str, object]) -> None:
    """The rules between settings (each single value was checked by its kind)."""

    def number(name: str) -> float:
        value = values[name]
        assert isinstance(value, int | float)
        return float(value)

    if not _is_loopback(str(values["http_host"])) and not values["api_token"]:
        raise ConfigError(
            PREFIX + "API_TOKEN", f"a token when {PREFIX}HTTP_HOST is not a loopback address"
        )
    interval = number("heartbeat_interval_s")
    if number("crash_timeout_s") <= interval:
        raise ConfigError(
            PREFIX + "CRASH_TIMEOUT_S",
            f"a number of seconds greater than {PREFIX}HEARTBEAT_INTERVAL_S ({interval:g})",
            f"{number('crash_timeout_s'):g}",
        )
    probe = number("liveness_probe_interval_s")
    if number("liveness_deadline_s") < probe:
        raise ConfigError(
            PREFIX + "LIVENESS_DEADLINE_S",
            f"a number of seconds >= {PREFIX}LIVENESS_PROBE_INTERVAL_S ({probe:g})",
            f"{number('liveness_deadline_s'):g}",
        )
    window = values["ib_restart_window"]
    if isinstance(window, DailyWindow):
        # One window's pause, window and grace must end before the next day's pause.
        span = number("ib_restart_lead_s") + window.nominal_s + number("ib_restart_grace_s")
        if span >= DAY_S:
            raise ConfigError(
                PREFIX + "IB_RESTART_GRACE_S",
                f"a number of seconds that keeps {PREFIX}IB_RESTART_LEAD_S + the window "
                f"({window}) + the grace under 24 hours",
                f"{number('ib_restart_grace_s'):g}",
            )
    warn = number("disk_warn_free_mb")
    if number("disk_fail_free_mb") > warn:
        raise ConfigError(
            PREFIX + "DISK_FAIL_FREE_MB",
            f"a number of MiB <= {PREFIX}DISK_WARN_FREE_MB ({warn:g})",
            f"{number('disk_fail_free_mb'):g}",
        )
    if values["smtp_password"] and not values["smtp_username"]:
        raise ConfigError(
            PREFIX + "SMTP_USERNAME", f"a user name when {PREFIX}SMTP_PASSWORD is set", None
        )
    if values["smtp_username"] and not values["smtp_password"]:
        raise ConfigError(
            PREFIX + "SMTP_PASSWORD", f"a password when {PREFIX}SMTP_USERNAME is set", None
        )


class _Reader:
    """Reads one setting's raw text (or an alias's) and parses it by the setting's kind."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str | None:
        value = self._env.get(PREFIX + name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def value(self, setting: Setting) -> object | None:
        """The parsed value, ``None`` when unset or empty; ConfigError naming the variable."""
        variable, raw = setting.variable, self.raw(setting.name)
        for alias in setting.aliases:
            if raw is None:
                variable, raw = PREFIX + alias, self.raw(alias)
        if raw is None:
            return None
        try:
            return setting.kind.parse(raw)
        except Invalid as exc:
            shown = raw if exc.shown == "" else exc.shown
            raise ConfigError(variable, exc.expected, shown) from None


def _log_dir(raw: str, *, prepare: bool) -> Path:
    """``TRADINGBOT_LOG_DIR``: an absolute folder, created and proven writable when used."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ConfigError(PREFIX + "LOG_DIR", "an absolute path", raw)
    if prepare:
        _prepare_dir(path, PREFIX + "LOG_DIR")
    return path


def _prepare_home(home: Path) -> None:
    _prepare_dir(home, PREFIX + "HOME")


def _prepare_dir(folder: Path, variable: str) -> None:
    expected = "a writable directory"
    try:
        # Private by default: the database, logs and socket are the operator's alone.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-").close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(variable, f"{expected} ({reason})", str(folder)) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
