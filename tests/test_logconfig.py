"""The process-wide JSON log pipeline: structlog and stdlib lines, context, redaction."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tradingbot.logconfig import LOG_FILE_NAME, configure_logging

SECRET = "hunter2-very-secret"


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    stream = io.StringIO()
    configure_logging(level="INFO", log_dir=tmp_path, secrets=[SECRET], stream=stream)
    yield tmp_path
    for handler in list(logging.getLogger().handlers):
        handler.close()
    logging.getLogger().handlers.clear()
    structlog.contextvars.clear_contextvars()


def lines(log_dir: Path) -> list[dict[str, object]]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (log_dir / LOG_FILE_NAME).read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_structlog_and_stdlib_lines_are_json_with_utc_timestamps(log_dir: Path) -> None:
    """Both structlog and standard-library records become one JSON object per line."""
    structlog.get_logger("tradingbot.test").info("hello", answer=42)
    logging.getLogger("aiohttp.server").warning("from %s", "stdlib")
    records = lines(log_dir)
    assert [r["event"] for r in records] == ["hello", "from stdlib"]
    assert records[0]["answer"] == 42
    assert records[0]["level"] == "info"
    assert records[1]["logger"] == "aiohttp.server"
    for record in records:
        assert str(record["timestamp"]).endswith("Z")


def test_context_variables_are_on_every_line(log_dir: Path) -> None:
    """Context bound with contextvars (trade_id, actor...) appears on each line."""
    structlog.contextvars.bind_contextvars(trade_id="T-1", actor="heartbeat")
    structlog.get_logger("x").info("first")
    structlog.get_logger("y").info("second")
    for record in lines(log_dir):
        assert record["trade_id"] == "T-1"
        assert record["actor"] == "heartbeat"


def test_secrets_never_reach_the_log_file(log_dir: Path) -> None:
    """Secret-looking keys and configured secret values are replaced by ***."""
    log = structlog.get_logger("x")
    log.info("login", password="pw-123456", api_key="k-123456", note=f"token is {SECRET}")
    logging.getLogger("sqlalchemy.engine").error("connect failed for %s", SECRET)
    text = (log_dir / LOG_FILE_NAME).read_text()
    assert SECRET not in text
    assert "pw-123456" not in text
    assert "k-123456" not in text
    records = lines(log_dir)
    assert records[0]["password"] == "***"
    assert records[0]["note"] == "token is ***"
    assert records[1]["event"] == "connect failed for ***"


def test_ordinary_keys_are_not_redacted(log_dir: Path) -> None:
    """Keys that merely contain 'pass' (passed, bypass) keep their values."""
    structlog.get_logger("x").info("tests", passed=3, bypass="no")
    record = lines(log_dir)[0]
    assert record["passed"] == 3
    assert record["bypass"] == "no"


def test_log_file_is_reopened_after_rotation(log_dir: Path) -> None:
    """After logrotate moves the file away, new lines go to a fresh file at the same path."""
    structlog.get_logger("x").info("before rotation")
    rotated = log_dir / (LOG_FILE_NAME + ".1")
    (log_dir / LOG_FILE_NAME).rename(rotated)
    deadline = time.monotonic() + 10
    while not (log_dir / LOG_FILE_NAME).exists():  # reopen is checked at most once a second
        structlog.get_logger("x").info("after rotation")
        assert time.monotonic() < deadline, "the log file was never reopened"
        time.sleep(0.05)
    structlog.get_logger("x").info("after rotation")
    assert "before rotation" in rotated.read_text()
    assert "after rotation" in (log_dir / LOG_FILE_NAME).read_text()
    assert (log_dir / LOG_FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_levels_below_the_threshold_are_not_written(log_dir: Path) -> None:
    """A DEBUG line is dropped when the level is INFO, from structlog and stdlib alike."""
    structlog.get_logger("x").debug("quiet")
    logging.getLogger("y").debug("quiet too")
    structlog.get_logger("x").info("loud")
    assert [r["event"] for r in lines(log_dir)] == ["loud"]
