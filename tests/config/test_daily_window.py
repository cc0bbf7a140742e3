"""The daily window setting (TRADINGBOT_IB_RESTART_WINDOW): parsing, midnight, DST, errors."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tradingbot import exitcodes
from tradingbot.cli import main
from tradingbot.config import ConfigError, load_config
from tradingbot.config.window import parse_daily_window


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_window_reads_back_as_written() -> None:
    """`23:45-00:45 America/New_York` and a seconds form keep their text (`check` shows it)."""
    assert str(parse_daily_window("23:45-00:45 America/New_York")) == (
        "23:45-00:45 America/New_York"
    )
    assert str(parse_daily_window(" 1:05:30 - 01:06 UTC ")) == "01:05:30-01:06 UTC"


def test_a_window_spanning_midnight_ends_the_next_day() -> None:
    """A window from 23:45 to 00:45 New York time on a winter night is 04:45-05:45 UTC on
    the next calendar day, one hour long."""
    window = parse_daily_window("23:45-00:45 America/New_York")
    assert window.spans_midnight
    assert window.occurrence(date(2026, 12, 7)) == (
        _utc(2026, 12, 8, 4, 45),
        _utc(2026, 12, 8, 5, 45),
    )
    assert window.nominal_s == 3600


def test_the_same_local_window_moves_in_utc_across_the_dst_switch() -> None:
    """New York's 23:45 is 04:45 UTC before the March DST switch and 03:45 UTC after it."""
    window = parse_daily_window("23:45-00:45 America/New_York")
    assert window.occurrence(date(2026, 3, 7))[0] == _utc(2026, 3, 8, 4, 45)
    assert window.occurrence(date(2026, 3, 9))[0] == _utc(2026, 3, 10, 3, 45)


def test_a_window_over_the_clock_change_is_shorter_or_longer_in_real_time() -> None:
    """01:30-03:30 New York time lasts one real hour on the spring-forward night and
    01:00-02:00 lasts two on the fall-back night, as the gateway's own clock does."""
    spring = parse_daily_window("01:30-03:30 America/New_York").occurrence(date(2026, 3, 8))
    assert spring[1] - spring[0] == timedelta(hours=1)
    autumn = parse_daily_window("01:00-02:00 America/New_York").occurrence(date(2026, 11, 1))
    assert autumn[1] - autumn[0] == timedelta(hours=2)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("23:45-00:45", "a daily window like 23:45-00:45 America/New_York"),
        ("25:00-01:00 UTC", "a daily window like"),
        ("23:45 America/New_York", "a daily window like"),
        ("23:45-23:45 UTC", "start and end must differ"),
        ("23:45-00:45 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("23:45-00:45 America", "unknown time zone 'America'"),
    ],
)
def test_a_malformed_window_is_a_configuration_error_naming_the_setting(
    tmp_path: Path, raw: str, expected: str
) -> None:
    """A malformed window fails the configuration load, naming the variable and the value."""
    env = {"TRADINGBOT_HOME": str(tmp_path), "TRADINGBOT_IB_RESTART_WINDOW": raw}
    with pytest.raises(ConfigError) as failed:
        load_config(env, prepare_home=False)
    assert failed.value.variable == "TRADINGBOT_IB_RESTART_WINDOW"
    assert expected in str(failed.value)
    assert repr(raw.strip()) in str(failed.value)


def test_lead_window_and_grace_must_fit_in_a_day(tmp_path: Path) -> None:
    """A pause, window and grace that would overlap the next day's window are refused."""
    env = {
        "TRADINGBOT_HOME": str(tmp_path),
        "TRADINGBOT_IB_RESTART_WINDOW": "00:00-20:00 UTC",
        "TRADINGBOT_IB_RESTART_LEAD_S": "7200",
        "TRADINGBOT_IB_RESTART_GRACE_S": "7200",
    }
    with pytest.raises(ConfigError, match="TRADINGBOT_IB_RESTART_GRACE_S: expected"):
        load_config(env, prepare_home=False)


def test_a_bad_window_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`trading-bot check` with a malformed window exits 2 with one stderr line naming it."""
    for name in list(os.environ):
        if name.startswith("TRADINGBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADINGBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRADINGBOT_IB_RESTART_WINDOW", "midnight")
    assert main(["check"]) == exitcodes.USAGE
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "trading-bot: configuration error: TRADINGBOT_IB_RESTART_WINDOW: expected a daily window"
    )


def test_check_shows_the_window_as_text(tmp_path: Path) -> None:
    """The effective configuration shows the window as the operator wrote it."""
    env = {
        "TRADINGBOT_HOME": str(tmp_path),
        "TRADINGBOT_IB_RESTART_WINDOW": "23:45-00:45 America/New_York",
        "TRADINGBOT_LIVE_TRADING": "yes",
    }
    config = load_config(env, prepare_home=False)
    assert config.redacted()["ib_restart_window"] == "23:45-00:45 America/New_York"
    assert config.live_trading is True
