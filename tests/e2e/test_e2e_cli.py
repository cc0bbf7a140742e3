"""The command line as an operator meets it: bad settings, `check`, `--version`, `db upgrade`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from e2e_support import clean_env, free_port, run_cli

from tradingbot import __version__, exitcodes

pytestmark = pytest.mark.slow

TOKEN = "tok-SECRET-4711-abcdef"
PASSWORD = "pw-SECRET-0815-ghijkl"

# (id, variable the message must name, environment overrides; "{tmp}" is the test folder)
BAD_CONFIGURATIONS = [
    ("port-not-a-number", "TRADINGBOT_HTTP_PORT", {"TRADINGBOT_HTTP_PORT": "abc"}),
    ("port-out-of-range", "TRADINGBOT_HTTP_PORT", {"TRADINGBOT_HTTP_PORT": "70000"}),
    ("home-under-a-file", "TRADINGBOT_HOME", {"TRADINGBOT_HOME": "{tmp}/a-file/home"}),
    ("home-in-proc", "TRADINGBOT_HOME", {"TRADINGBOT_HOME": "/proc/forbidden"}),
    ("unknown-broker", "TRADINGBOT_BROKER", {"TRADINGBOT_BROKER": "foo"}),
    ("public-without-token", "TRADINGBOT_API_TOKEN", {"TRADINGBOT_HTTP_HOST": "0.0.0.0"}),
    ("token-with-tab", "TRADINGBOT_API_TOKEN", {"TRADINGBOT_API_TOKEN": "tok\tSECRET"}),
    (
        "database-scheme",
        "TRADINGBOT_DATABASE_URL",
        {"TRADINGBOT_DATABASE_URL": f"mysql://trader:{PASSWORD}@127.0.0.1/tb"},
    ),
    # An absurd deadline once passed validation and disabled the shutdown deadline.
    ("shutdown-1e300", "TRADINGBOT_SHUTDOWN_TIMEOUT_S", {"TRADINGBOT_SHUTDOWN_TIMEOUT_S": "1e300"}),
    # A token with a blank can never match a request: the operator would be locked out.
    ("token-with-space", "TRADINGBOT_API_TOKEN", {"TRADINGBOT_API_TOKEN": "tok SECRET"}),
]


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize(
    ("variable", "overrides"),
    [pytest.param(v, o, id=i) for i, v, o in BAD_CONFIGURATIONS],
)
def test_bad_configuration_exits_2_with_one_line_naming_the_variable(
    short_tmp: Path, command: str, variable: str, overrides: dict[str, str]
) -> None:
    """A bad setting makes run and check exit 2 with one stderr line naming the variable."""
    (short_tmp / "a-file").write_text("not a folder\n")
    env = clean_env(short_tmp / "home", TRADINGBOT_HTTP_PORT=str(free_port()))
    env.update({k: v.format(tmp=short_tmp) for k, v in overrides.items()})

    result = run_cli([command], env, cwd=short_tmp)

    assert result.returncode == exitcodes.USAGE, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr
    assert "SECRET" not in result.stderr  # a refused token is not echoed either
    assert result.stdout == ""


def _secret_env(tmp: Path) -> dict[str, str]:
    return clean_env(
        tmp / "home",
        TRADINGBOT_HTTP_HOST="0.0.0.0",
        TRADINGBOT_API_TOKEN=TOKEN,
        TRADINGBOT_DATABASE_URL=f"postgresql+psycopg2://trader:{PASSWORD}@127.0.0.1:5432/tb",
    )


def test_check_prints_the_configuration_with_secrets_redacted(short_tmp: Path) -> None:
    """`check` prints every setting but never the API token or the database password."""
    result = run_cli(["check"], _secret_env(short_tmp), cwd=short_tmp)
    assert result.returncode == exitcodes.OK, result.stderr
    output = result.stdout + result.stderr
    assert TOKEN not in output
    assert PASSWORD not in output
    settings = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings[key] = value.strip()
    assert settings["api_token"] == "***"
    assert settings["database_url"] == "postgresql+psycopg2://trader:***@127.0.0.1:5432/tb"
    assert settings["http_host"] == "0.0.0.0"
    assert settings["home"] == os.fspath(short_tmp / "home")
    assert settings["ib_account"] == ""
    assert "configuration OK" in result.stderr


def test_check_json_is_machine_readable_and_redacted(short_tmp: Path) -> None:
    """`check --json` prints the configuration as JSON with the secrets replaced by ***."""
    result = run_cli(["check", "--json"], _secret_env(short_tmp), cwd=short_tmp)
    assert result.returncode == exitcodes.OK, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["api_token"] == "***"
    assert data["database_url"] == "postgresql+psycopg2://trader:***@127.0.0.1:5432/tb"
    assert data["http_port"] == 8000
    assert data["broker"] == "sim"


def test_version_prints_the_version(short_tmp: Path) -> None:
    """`--version` prints the program name and its version and exits 0."""
    result = run_cli(["--version"], clean_env(short_tmp / "home"), cwd=short_tmp)
    assert result.returncode == 0
    assert result.stdout == f"trading-bot {__version__}\n"


def test_db_upgrade_is_idempotent(short_tmp: Path, bot_database_url: str | None) -> None:
    """`db upgrade` applies the migrations once; run again it says the database is up to date."""
    env = clean_env(short_tmp / "home")
    if bot_database_url is not None:
        env["TRADINGBOT_DATABASE_URL"] = bot_database_url

    first = run_cli(["db", "upgrade"], env, cwd=short_tmp)
    assert first.returncode == exitcodes.OK, first.stderr
    assert first.stdout.startswith("applied ")
    second = run_cli(["db", "upgrade"], env, cwd=short_tmp)
    assert second.returncode == exitcodes.OK, second.stderr
    assert "already up to date" in second.stdout
    if bot_database_url is None:
        assert (short_tmp / "home" / "trading-bot.db").is_file()


def test_db_upgrade_against_an_unreachable_server_fails_in_one_line(short_tmp: Path) -> None:
    """`db upgrade` against an absent PostgreSQL server exits 1 with one line, no password."""
    port = free_port()  # nothing listens on it
    url = f"postgresql+psycopg2://trader:{PASSWORD}@127.0.0.1:{port}/tb"
    env = clean_env(short_tmp / "home", TRADINGBOT_DATABASE_URL=url)

    result = run_cli(["db", "upgrade"], env, cwd=short_tmp)

    assert result.returncode == exitcodes.FAILURE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(port) in lines[0]
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_run_against_an_unreachable_database_fails_in_one_line(short_tmp: Path) -> None:
    """`run` with the database down exits 1 saying so in one stderr line, no password."""
    port = free_port()  # nothing listens on it
    url = f"postgresql+psycopg2://trader:{PASSWORD}@127.0.0.1:{port}/tb"
    env = clean_env(
        short_tmp / "home", TRADINGBOT_DATABASE_URL=url, TRADINGBOT_HTTP_PORT=str(free_port())
    )

    result = run_cli(["run"], env, cwd=short_tmp)

    assert result.returncode == exitcodes.FAILURE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trading-bot: startup failed: ")
    assert str(port) in lines[0]
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
