"""The command line's contract, in process: usage errors exit 2, one line, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tradingbot import exitcodes
from tradingbot.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean TRADINGBOT_* environment with its state folder in tmp_path (not created)."""
    for name in list(os.environ):
        if name.startswith("TRADINGBOT_"):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # no ./.env of the developer
    path = tmp_path / "home"
    monkeypatch.setenv("TRADINGBOT_HOME", str(path))
    return path


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["db"], ["check", "--bogus"]])
def test_bad_usage_exits_2(home: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A missing or unknown command or option exits 2 with a usage message on stderr."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == exitcodes.USAGE
    assert "usage: trading-bot" in capsys.readouterr().err


def test_configuration_error_is_one_line_and_exit_2(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad setting returns 2 and prints one stderr line naming it."""
    monkeypatch.setenv("TRADINGBOT_HTTP_PORT", "http")
    assert main(["check"]) == exitcodes.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "trading-bot: configuration error: TRADINGBOT_HTTP_PORT: expected a TCP port number "
        "from 0 to 65535, got 'http'"
    ]


def test_check_json_prints_the_effective_configuration(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check --json` prints the effective configuration as JSON and exits 0."""
    monkeypatch.setenv("TRADINGBOT_HTTP_PORT", "8123")
    assert main(["check", "--json"]) == exitcodes.OK
    data = json.loads(capsys.readouterr().out)
    assert data["http_port"] == 8123
    assert data["home"] == str(home)
    assert home.is_dir()  # check proves the state folder usable


def test_shell_does_not_create_the_state_folder(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shell` with nothing running exits 1 and leaves no state folder behind."""
    assert main(["shell", "-c", "tree"]) == 1
    assert "no trading-bot process is running" in capsys.readouterr().err
    assert not home.exists()


def test_shell_command_line_that_cannot_be_parsed_exits_2(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unbalanced quote in `shell -c` exits 2 with one error line."""
    assert main(["shell", "-c", 'crash "heartbeat']) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ")


def test_db_upgrade_twice_on_the_default_sqlite_file(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db upgrade` creates the default SQLite database, and a second run changes nothing."""
    assert main(["db", "upgrade"]) == exitcodes.OK
    assert capsys.readouterr().out.startswith("applied ")
    assert (home / "trading-bot.db").is_file()
    assert main(["db", "upgrade"]) == exitcodes.OK
    assert "already up to date" in capsys.readouterr().out
