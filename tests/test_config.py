"""Configuration from TRADINGBOT_* variables and a .env file: defaults, validation, redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tradingbot.config import Config, ConfigError, load_config, redact_url

TOKEN = "tok-SECRET-4711-abcdef"
PASSWORD = "pw-SECRET-0815-ghijkl"


@pytest.fixture(autouse=True)
def _no_stray_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder, so a ./.env of the developer is never read."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def env_with(home: Path, **values: str) -> dict[str, str]:
    return {"TRADINGBOT_HOME": str(home), **{f"TRADINGBOT_{k}": v for k, v in values.items()}}


def test_defaults_serve_a_first_run(home: Path) -> None:
    """With only a state folder set: loopback HTTP on 8000, SQLite in HOME, the simulator."""
    config = load_config(environ=env_with(home))
    assert config.home == home
    assert home.is_dir()  # created, and proven writable
    assert config.database_url == f"sqlite:///{home / 'trading-bot.db'}"
    assert (config.http_host, config.http_port, config.api_token) == ("127.0.0.1", 8000, None)
    assert (config.broker, config.ib_host, config.ib_port) == ("sim", "127.0.0.1", 4002)
    assert config.heartbeat_interval_s == 30.0
    assert config.crash_timeout_s == 300.0
    assert config.log_level == "INFO"
    assert config.control_socket_path == home / "run" / "control.sock"


def test_values_are_parsed_and_normalised(home: Path) -> None:
    """Numbers, ports and choices are parsed; choices ignore case and values ignore spaces."""
    config = load_config(
        environ=env_with(
            home,
            HTTP_PORT=" 0 ",
            BROKER="IBKR",
            IB_PORT="7497",
            IB_CLIENT_ID="17",
            IB_ACCOUNT="DU123",
            IB_CONNECT_TIMEOUT_S="3",
            IB_REQUEST_TIMEOUT_S="4.5",
            IB_PROBE_INTERVAL_S="1",
            IB_PROBE_TIMEOUT_S="0.5",
            IB_PROBE_MISSES="5",
            RECONCILE_INTERVAL_S="60",
            RECONCILE_COST_TOLERANCE="0.05",
            RECONCILE_ACCEPT="yes",
            HEARTBEAT_INTERVAL_S="0.5",
            CRASH_TIMEOUT_S="10",
            LIVENESS_PROBE_INTERVAL_S="0.2",
            LIVENESS_DEADLINE_S="1",
            LOG_LEVEL="debug",
            HTTP_HOST="::1",
        )
    )
    assert config.http_port == 0
    assert config.broker == "ibkr"
    assert (config.ib_port, config.ib_client_id, config.ib_account) == (7497, 17, "DU123")
    assert (config.ib_connect_timeout_s, config.ib_request_timeout_s) == (3.0, 4.5)
    assert (config.ib_probe_interval_s, config.ib_probe_timeout_s) == (1.0, 0.5)
    assert config.ib_probe_misses == 5
    assert (config.reconcile_interval_s, config.reconcile_cost_tolerance) == (60.0, 0.05)
    assert config.reconcile_accept is True
    assert config.heartbeat_interval_s == 0.5
    assert config.crash_timeout_s == 10.0
    assert (config.liveness_probe_interval_s, config.liveness_deadline_s) == (0.2, 1.0)
    assert config.log_level == "DEBUG"
    assert config.http_host == "::1"


def test_empty_values_mean_the_default(home: Path) -> None:
    """A variable set to an empty or blank string counts as unset."""
    config = load_config(environ=env_with(home, HTTP_PORT="", BROKER="  ", API_TOKEN=""))
    assert (config.http_port, config.broker, config.api_token) == (8000, "sim", None)


def test_relative_home_is_resolved_against_the_working_directory(tmp_path: Path) -> None:
    """A relative TRADINGBOT_HOME is taken from the working directory."""
    config = load_config(environ={"TRADINGBOT_HOME": "state"})
    assert config.home == Path.cwd() / "state"
    assert config.home.is_absolute()


def test_env_file_supplies_values_and_the_real_environment_wins(home: Path, tmp_path: Path) -> None:
    """Values come from the file in TRADINGBOT_ENV_FILE; a variable also in the environment wins."""
    env_file = tmp_path / "bot.env"
    env_file.write_text(
        "TRADINGBOT_HTTP_PORT=9001\n"
        "TRADINGBOT_BROKER=ibkr\n"
        "TRADINGBOT_IB_ACCOUNT=FROM_FILE\n"
        "UNRELATED=ignored\n"
    )
    environ = env_with(home, ENV_FILE=str(env_file), IB_ACCOUNT="FROM_ENV")
    config = load_config(environ=environ)
    assert config.http_port == 9001
    assert config.broker == "ibkr"
    assert config.ib_account == "FROM_ENV"


def test_dot_env_in_the_working_directory_is_read(home: Path) -> None:
    """Without TRADINGBOT_ENV_FILE, a .env file in the working directory is read."""
    Path(".env").write_text("TRADINGBOT_HTTP_PORT=9002\n")
    assert load_config(environ=env_with(home)).http_port == 9002


def test_env_file_cannot_hide_a_missing_file(home: Path, tmp_path: Path) -> None:
    """A TRADINGBOT_ENV_FILE that does not exist is an error naming the variable."""
    missing = tmp_path / "missing.env"
    with pytest.raises(ConfigError) as raised:
        load_config(environ=env_with(home, ENV_FILE=str(missing)))
    assert raised.value.variable == "TRADINGBOT_ENV_FILE"
    assert str(missing) in str(raised.value)


def test_bad_value_in_the_env_file_names_the_variable(home: Path, tmp_path: Path) -> None:
    """A bad value read from the .env file is reported with the variable's name."""
    env_file = tmp_path / "bot.env"
    env_file.write_text("TRADINGBOT_HTTP_PORT=eighty\n")
    with pytest.raises(ConfigError, match=r"^TRADINGBOT_HTTP_PORT: .*'eighty'"):
        load_config(environ=env_with(home, ENV_FILE=str(env_file)))


BAD_VALUES = [
    ("HTTP_PORT", "abc", "TRADINGBOT_HTTP_PORT"),
    ("HTTP_PORT", "70000", "TRADINGBOT_HTTP_PORT"),
    ("HTTP_PORT", "-1", "TRADINGBOT_HTTP_PORT"),
    ("HTTP_PORT", "80.5", "TRADINGBOT_HTTP_PORT"),
    ("IB_PORT", "0", "TRADINGBOT_IB_PORT"),
    ("IB_CLIENT_ID", "-1", "TRADINGBOT_IB_CLIENT_ID"),
    ("IB_CLIENT_ID", "one", "TRADINGBOT_IB_CLIENT_ID"),
    ("IB_CONNECT_TIMEOUT_S", "0", "TRADINGBOT_IB_CONNECT_TIMEOUT_S"),
    ("IB_REQUEST_TIMEOUT_S", "fast", "TRADINGBOT_IB_REQUEST_TIMEOUT_S"),
    ("IB_PROBE_INTERVAL_S", "-5", "TRADINGBOT_IB_PROBE_INTERVAL_S"),
    ("IB_PROBE_TIMEOUT_S", "nan", "TRADINGBOT_IB_PROBE_TIMEOUT_S"),
    ("IB_PROBE_MISSES", "0", "TRADINGBOT_IB_PROBE_MISSES"),
    ("IB_PROBE_MISSES", "2.5", "TRADINGBOT_IB_PROBE_MISSES"),
    ("RECONCILE_INTERVAL_S", "0", "TRADINGBOT_RECONCILE_INTERVAL_S"),
    ("RECONCILE_COST_TOLERANCE", "-0.1", "TRADINGBOT_RECONCILE_COST_TOLERANCE"),
    ("RECONCILE_ACCEPT", "maybe", "TRADINGBOT_RECONCILE_ACCEPT"),
    ("BROKER", "foo", "TRADINGBOT_BROKER"),
    ("LOG_LEVEL", "verbose", "TRADINGBOT_LOG_LEVEL"),
    ("HEARTBEAT_INTERVAL_S", "0", "TRADINGBOT_HEARTBEAT_INTERVAL_S"),
    ("HEARTBEAT_INTERVAL_S", "soon", "TRADINGBOT_HEARTBEAT_INTERVAL_S"),
    ("HEARTBEAT_INTERVAL_S", "nan", "TRADINGBOT_HEARTBEAT_INTERVAL_S"),
    ("HEARTBEAT_INTERVAL_S", "inf", "TRADINGBOT_HEARTBEAT_INTERVAL_S"),
    ("CRASH_TIMEOUT_S", "20", "TRADINGBOT_CRASH_TIMEOUT_S"),  # not above the 30 s heartbeat
    ("CRASH_TIMEOUT_S", "soon", "TRADINGBOT_CRASH_TIMEOUT_S"),
    ("CRASH_TIMEOUT_S", "0", "TRADINGBOT_CRASH_TIMEOUT_S"),
    ("CRASH_TIMEOUT_S", "inf", "TRADINGBOT_CRASH_TIMEOUT_S"),
    ("SHUTDOWN_TIMEOUT_S", "0.5", "TRADINGBOT_SHUTDOWN_TIMEOUT_S"),
    ("LIVENESS_PROBE_INTERVAL_S", "0", "TRADINGBOT_LIVENESS_PROBE_INTERVAL_S"),
    ("LIVENESS_DEADLINE_S", "1", "TRADINGBOT_LIVENESS_DEADLINE_S"),  # below the 5 s probe
    ("HTTP_HOST", "0.0.0.0", "TRADINGBOT_API_TOKEN"),
    ("HTTP_HOST", "bot.example.com", "TRADINGBOT_API_TOKEN"),
    ("DATABASE_URL", "mysql://u@h/db", "TRADINGBOT_DATABASE_URL"),
    ("DATABASE_URL", "postgresql+asyncpg://u@h/db", "TRADINGBOT_DATABASE_URL"),
    ("DATABASE_URL", "trading-bot.db", "TRADINGBOT_DATABASE_URL"),
    ("EVENTS_PERSIST_TYPES", "TRADE,not a type", "TRADINGBOT_EVENTS_PERSIST_TYPES"),
    ("EVENTS_MIN_SEVERITY", "LOUD", "TRADINGBOT_EVENTS_MIN_SEVERITY"),
    ("EVENT_RETENTION_DAYS", "0", "TRADINGBOT_EVENT_RETENTION_DAYS"),
    ("EVENTS_BATCH_SIZE", "0", "TRADINGBOT_EVENTS_BATCH_SIZE"),
    ("EVENTS_BATCH_SIZE", "20000", "TRADINGBOT_EVENTS_BATCH_SIZE"),
    ("EVENTS_FLUSH_INTERVAL_S", "never", "TRADINGBOT_EVENTS_FLUSH_INTERVAL_S"),
    ("HEALTH_INTERVAL_S", "0", "TRADINGBOT_HEALTH_INTERVAL_S"),
    ("HEALTH_CHECK_TIMEOUT_S", "-1", "TRADINGBOT_HEALTH_CHECK_TIMEOUT_S"),
    ("DISK_WARN_FREE_MB", "lots", "TRADINGBOT_DISK_WARN_FREE_MB"),
    ("DISK_FAIL_FREE_MB", "5000", "TRADINGBOT_DISK_FAIL_FREE_MB"),  # above the 1024 warn
    ("HTTP_MAX_CONNECTIONS", "0", "TRADINGBOT_HTTP_MAX_CONNECTIONS"),
    ("HTTP_HEADER_TIMEOUT_S", "1e300", "TRADINGBOT_HTTP_HEADER_TIMEOUT_S"),
    ("HTTP_BODY_TIMEOUT_S", "0", "TRADINGBOT_HTTP_BODY_TIMEOUT_S"),
    ("CONTROL_MAX_CONNECTIONS", "many", "TRADINGBOT_CONTROL_MAX_CONNECTIONS"),
    ("CONTROL_IDLE_TIMEOUT_S", "-1", "TRADINGBOT_CONTROL_IDLE_TIMEOUT_S"),
]


@pytest.mark.parametrize(
    ("name", "value", "variable"),
    [pytest.param(n, v, var, id=f"{n}={v}") for n, v, var in BAD_VALUES],
)
def test_every_bad_value_is_one_line_naming_the_variable(
    home: Path, name: str, value: str, variable: str
) -> None:
    """Each invalid setting raises ConfigError: one line that starts with the variable's name."""
    with pytest.raises(ConfigError) as raised:
        load_config(environ=env_with(home, **{name: value}))
    message = str(raised.value)
    assert raised.value.variable == variable
    assert message.startswith(f"{variable}: expected ")
    assert "\n" not in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_token(home: Path, host: str) -> None:
    """A loopback HTTP host needs no API token."""
    assert load_config(environ=env_with(home, HTTP_HOST=host)).http_host == host


def test_public_host_with_a_token_is_accepted(home: Path) -> None:
    """A public HTTP host is accepted once an API token is configured."""
    config = load_config(environ=env_with(home, HTTP_HOST="0.0.0.0", API_TOKEN=TOKEN))
    assert (config.http_host, config.api_token) == ("0.0.0.0", TOKEN)


def test_home_that_cannot_be_created_names_the_variable(tmp_path: Path) -> None:
    """A state folder under a regular file is reported as TRADINGBOT_HOME, not a traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as raised:
        load_config(environ={"TRADINGBOT_HOME": str(blocker / "home")})
    assert raised.value.variable == "TRADINGBOT_HOME"
    assert "writable directory" in str(raised.value)


def test_home_too_long_for_the_control_socket_names_the_variable(tmp_path: Path) -> None:
    """A state folder whose control socket path would not fit in sun_path is refused."""
    deep = tmp_path / ("x" * 120)
    with pytest.raises(ConfigError) as raised:
        load_config(environ={"TRADINGBOT_HOME": str(deep)}, prepare_home=False)
    assert raised.value.variable == "TRADINGBOT_HOME"
    assert not deep.exists()


def test_prepare_home_false_touches_nothing(home: Path) -> None:
    """Without prepare_home (the shell), the state folder is not created."""
    config = load_config(environ=env_with(home), prepare_home=False)
    assert config.home == home
    assert not home.exists()


def test_database_url_error_does_not_echo_the_password(home: Path) -> None:
    """A wrong database URL is quoted back with its password replaced."""
    url = f"mysql://trader:{PASSWORD}@db.example.com/tb"
    with pytest.raises(ConfigError) as raised:
        load_config(environ=env_with(home, DATABASE_URL=url))
    assert PASSWORD not in str(raised.value)
    assert "trader:***@db.example.com" in str(raised.value)


def _secret_config(home: Path) -> Config:
    url = f"postgresql+psycopg2://trader:{PASSWORD}@db.example.com:5432/tb"
    return load_config(
        environ=env_with(home, HTTP_HOST="0.0.0.0", API_TOKEN=TOKEN, DATABASE_URL=url)
    )


def test_redacted_hides_the_token_and_the_database_password(home: Path) -> None:
    """Config.redacted() replaces the API token and the database password with ***."""
    data = _secret_config(home).redacted()
    assert data["api_token"] == "***"
    assert data["database_url"] == "postgresql+psycopg2://trader:***@db.example.com:5432/tb"
    assert TOKEN not in repr(data)
    assert PASSWORD not in repr(data)
    assert data["home"] == os.fspath(home)
    assert data["control_socket_path"] == os.fspath(home / "run" / "control.sock")


def test_redacted_without_secrets_shows_no_placeholder(home: Path) -> None:
    """Without a token or password, redacted() shows None and the URL unchanged."""
    data = load_config(environ=env_with(home)).redacted()
    assert data["api_token"] is None
    assert data["database_url"] == f"sqlite:///{home / 'trading-bot.db'}"


def test_secrets_lists_the_values_to_scrub_from_logs(home: Path) -> None:
    """Config.secrets() returns the token and the password, for the log redactor."""
    assert set(_secret_config(home).secrets()) == {TOKEN, PASSWORD}
    assert load_config(environ=env_with(home)).secrets() == ()


def test_secrets_list_a_percent_encoded_password_in_both_forms(home: Path) -> None:
    """A password written percent-encoded in the URL is scrubbed encoded and decoded."""
    url = "postgresql+psycopg2://trader:Db%23Pw%2F42x@db.example.com/tb"
    secrets = load_config(environ=env_with(home, DATABASE_URL=url)).secrets()
    assert "Db%23Pw%2F42x" in secrets
    assert "Db#Pw/42x" in secrets


def test_connection_limits_are_read(home: Path) -> None:
    """The HTTP and control-socket limits come from their variables."""
    config = load_config(
        environ=env_with(
            home,
            HTTP_MAX_CONNECTIONS="50",
            HTTP_HEADER_TIMEOUT_S="2.5",
            HTTP_BODY_TIMEOUT_S="7",
            CONTROL_MAX_CONNECTIONS="3",
            CONTROL_IDLE_TIMEOUT_S="60",
        )
    )
    assert (config.http_max_connections, config.http_header_timeout_s) == (50, 2.5)
    assert config.http_body_timeout_s == 7.0
    assert (config.control_max_connections, config.control_idle_timeout_s) == (3, 60.0)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg2://u:p%40ss@h:5/db", "postgresql+psycopg2://u:***@h:5/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("sqlite:////var/lib/tb.db", "sqlite:////var/lib/tb.db"),
    ],
)
def test_redact_url_replaces_only_the_password(url: str, shown: str) -> None:
    """redact_url hides a URL's password and leaves everything else as it was."""
    assert redact_url(url) == shown


def test_repr_never_shows_secrets(tmp_path: Path) -> None:
    """Logging the config object itself cannot leak the API token or database password."""
    config = load_config(
        {
            "TRADINGBOT_HOME": str(tmp_path / "home"),
            "TRADINGBOT_API_TOKEN": "tok-very-secret-4711",
            "TRADINGBOT_DATABASE_URL": "postgresql+psycopg2://u:pw-very-secret@h/db",
        }
    )
    text = repr(config)
    assert "tok-very-secret-4711" not in text
    assert "pw-very-secret" not in text
    assert "***" in text


def test_default_home_follows_the_given_environment(tmp_path: Path) -> None:
    """Without TRADINGBOT_HOME the state folder is $XDG_STATE_HOME/trading-bot, private."""
    config = load_config({"XDG_STATE_HOME": str(tmp_path / "state")})
    assert config.home == tmp_path / "state" / "trading-bot"
    assert config.home.stat().st_mode & 0o777 == 0o700


def test_persisted_event_types_are_normalised(home: Path) -> None:
    """A lower-case, spaced list of event types is read as upper-case identifiers."""
    config = load_config(environ=env_with(home, EVENTS_PERSIST_TYPES=" trade, my_signal "))
    assert config.events_persist_types == ("TRADE", "MY_SIGNAL")
