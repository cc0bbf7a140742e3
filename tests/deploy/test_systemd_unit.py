"""The shipped systemd unit is valid and hardened (checked offline by systemd-analyze)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "trading-bot.service"
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    """`systemd-analyze verify` prints nothing for the unit (it exits 0 even on typos)."""
    assert ANALYZE is not None
    script = Path(sys.executable).with_name("trading-bot")
    if not script.exists():
        pytest.skip("the trading-bot console script is not installed next to the interpreter")
    text = UNIT.read_text().replace("/opt/trading-bot/.venv/bin/trading-bot", str(script))
    unit = tmp_path / "trading-bot.service"
    unit.write_text(text)
    result = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stderr.strip() == ""


def test_unit_exposure_is_at_most_2() -> None:
    """The unit's offline security exposure score is <= 2.0 (threshold 20 = 2.0)."""
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--threshold=20", str(UNIT)],
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
