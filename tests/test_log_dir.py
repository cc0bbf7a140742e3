"""TRADINGBOT_LOG_DIR and the errors-only log an operator reads first."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tradingbot.config import ConfigError, load_config
from tradingbot.logconfig import ERRORS_FILE_NAME, LOG_FILE_NAME, configure_logging


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    configure_logging(level="INFO", log_dir=tmp_path, stream=io.StringIO())
    yield tmp_path
    configure_logging(level="INFO", stream=io.StringIO())


def events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_errors_log_holds_only_errors(log_dir: Path) -> None:
    """ERROR and CRITICAL lines (structlog and stdlib) also go to the errors-only log."""
    log = structlog.get_logger("tradingbot.test")
    log.info("routine")
    log.warning("odd")
    log.error("broken")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("crashed")
    log.critical("fatal")
    logging.getLogger("some.library").error("library failed")
    logging.getLogger("some.library").warning("library noise")
    assert events(log_dir / ERRORS_FILE_NAME) == ["broken", "crashed", "fatal", "library failed"]
    assert len(events(log_dir / LOG_FILE_NAME)) == 7
    assert (log_dir / ERRORS_FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_log_dir_setting_moves_the_logs(tmp_path: Path) -> None:
    """TRADINGBOT_LOG_DIR puts the logs there (created); unset they stay in HOME/logs."""
    home = tmp_path / "home"
    env = {"TRADINGBOT_HOME": str(home)}
    assert load_config(environ=env).log_dir == home / "logs"
    config = load_config(environ={**env, "TRADINGBOT_LOG_DIR": str(tmp_path / "var-log")})
    assert config.log_dir == tmp_path / "var-log"
    assert config.log_dir.is_dir()
    assert config.redacted()["log_dir"] == str(tmp_path / "var-log")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("logs", "an absolute path"), ("/proc/no-such-dir/logs", "a writable directory")],
)
def test_bad_log_dir_names_the_setting(tmp_path: Path, value: str, expected: str) -> None:
    """A relative or unwritable TRADINGBOT_LOG_DIR is one configuration error naming it."""
    env = {"TRADINGBOT_HOME": str(tmp_path), "TRADINGBOT_LOG_DIR": value}
    with pytest.raises(ConfigError) as caught:
        load_config(environ=env)
    assert str(caught.value).startswith(f"TRADINGBOT_LOG_DIR: expected {expected}")
