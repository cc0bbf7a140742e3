"""The shipped systemd unit is valid and hardened (checked offline by systemd-analyze)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "trading-bot.service"
WATCHDOG_SERVICE = DEPLOY / "trading-bot-watchdog.service"
WATCHDOG_TIMER = DEPLOY / "trading-bot-watchdog.timer"
BACKUP_SERVICE = DEPLOY / "trading-bot-backup.service"
BACKUP_TIMER = DEPLOY / "trading-bot-backup.timer"
ALL_UNITS = (UNIT, WATCHDOG_SERVICE, WATCHDOG_TIMER, BACKUP_SERVICE, BACKUP_TIMER)
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


@pytest.mark.parametrize(
    "name",
    [unit.name for unit in ALL_UNITS],
)
def test_unit_verifies_without_warnings(tmp_path: Path, name: str) -> None:
    """`systemd-analyze verify` prints nothing for the unit (it exits 0 even on typos)."""
    assert ANALYZE is not None
    script = Path(sys.executable).with_name("trading-bot")
    if not script.exists():
        pytest.skip("the trading-bot console script is not installed next to the interpreter")
    for source in ALL_UNITS:  # a timer needs its service
        text = source.read_text().replace("/opt/trading-bot/.venv/bin/trading-bot", str(script))
        (tmp_path / source.name).write_text(text)
    result = subprocess.run(
        [ANALYZE, "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stderr.strip() == ""


@pytest.mark.parametrize("unit", [UNIT, WATCHDOG_SERVICE, BACKUP_SERVICE], ids=lambda p: p.name)
def test_unit_exposure_is_at_most_2(unit: Path) -> None:
    """The unit's offline security exposure score is <= 2.0 (threshold 20 = 2.0)."""
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:]


def test_unit_uses_notify_and_watchdog() -> None:
    """The unit lets the bot report READY/WATCHDOG and never restarts on bad configuration."""
    text = UNIT.read_text()
    assert "Type=notify" in text
    assert "WatchdogSec=" in text
    assert "RestartPreventExitStatus=2" in text
    unit_section = text.split("[Service]")[0]
    assert "StartLimitIntervalSec=" in unit_section


def test_watchdog_timer_runs_the_check_every_minute() -> None:
    """The timer starts the watchdog service periodically; the service runs watchdog-check."""
    timer = WATCHDOG_TIMER.read_text()
    assert "Unit=trading-bot-watchdog.service" in timer
    assert "OnUnitActiveSec=1min" in timer
    assert "WantedBy=timers.target" in timer
    service = WATCHDOG_SERVICE.read_text()
    assert "Type=oneshot" in service
    assert "trading-bot watchdog-check" in service
    # The same state folder and environment as the bot, so it checks the same database.
    for line in (
        "Environment=TRADINGBOT_HOME=/var/lib/trading-bot",
        "Environment=TRADINGBOT_LOG_DIR=/var/log/trading-bot",
        "EnvironmentFile=-/etc/trading-bot/trading-bot.env",
        "User=trading-bot",
    ):
        assert line in service
        assert line in UNIT.read_text()
        assert line in BACKUP_SERVICE.read_text()
