"""The unit's restart policy, checked against the exit codes the product really uses.

No systemd runs here, so the unit file is parsed and its ``Restart=on-failure`` /
``RestartPreventExitStatus=`` semantics (as systemd.service(5) defines them) are applied
to each exit code in :mod:`tradingbot.exitcodes` and to real ``trading-bot run`` exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tradingbot import exitcodes

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "trading-bot.service"
# Exits systemd counts as clean for every Restart= setting (systemd.service(5)).
_CLEAN_SIGNALS = {"SIGHUP", "SIGINT", "SIGTERM", "SIGPIPE"}
# Exit codes of `trading-bot run` (6 and 7 belong to watchdog-check, a oneshot).
RUN_FAILURES = {
    "FAILURE": exitcodes.FAILURE,
    "TREE_FAILED": exitcodes.TREE_FAILED,
    "SHUTDOWN_DEADLINE": exitcodes.SHUTDOWN_DEADLINE,
    "ALREADY_RUNNING": exitcodes.ALREADY_RUNNING,
    "UNCLEAN_STOP": exitcodes.UNCLEAN_STOP,  # `systemctl stop` is never restarted anyway
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> keys -> every assigned value, in order (repeated keys accumulate)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service() -> dict[str, list[str]]:
    return parse_unit(UNIT)["Service"]


def restarts(*, exit_code: int | None = None, signal_name: str | None = None) -> bool:
    """Would systemd restart the service after this exit? (``watchdog`` = killed by SIGABRT.)"""
    settings = service()
    restart = settings["Restart"][-1]
    prevent = {
        token for value in settings.get("RestartPreventExitStatus", []) for token in value.split()
    }
    if (exit_code is not None and str(exit_code) in prevent) or signal_name in prevent:
        return False
    clean = exit_code == 0 or signal_name in _CLEAN_SIGNALS
    if restart == "always":
        return True
    if restart == "on-failure":
        return not clean
    raise AssertionError(f"unexpected Restart={restart}")


def test_bad_configuration_is_not_restarted() -> None:
    """Exit 2 (bad usage or configuration) is not restarted: restarting cannot fix it."""
    assert exitcodes.USAGE == 2
    assert not restarts(exit_code=exitcodes.USAGE)


@pytest.mark.parametrize("name", sorted(RUN_FAILURES))
def test_runtime_failures_are_restarted(name: str) -> None:
    """Every other failure exit of `trading-bot run` (1, 3, 4, 5, 8) is restarted."""
    assert restarts(exit_code=RUN_FAILURES[name])


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSEGV", "SIGABRT"])
def test_a_killed_process_is_restarted(signal_name: str) -> None:
    """A process killed by a signal (kill -9, a crash, the watchdog's SIGABRT) is restarted."""
    assert restarts(signal_name=signal_name)


def test_a_clean_stop_stays_stopped() -> None:
    """Exit 0 after `systemctl stop` (SIGTERM) is not restarted."""
    assert not restarts(exit_code=exitcodes.OK)
    assert not restarts(signal_name="SIGTERM")


def test_promised_limits() -> None:
    """RestartSec 10 s, at most 5 restarts in 10 min, 2G memory, 65536 files, after PostgreSQL."""
    unit = parse_unit(UNIT)
    settings = unit["Service"]
    assert settings["RestartSec"] == ["10"]
    assert unit["Unit"]["StartLimitIntervalSec"] == ["600"]
    assert unit["Unit"]["StartLimitBurst"] == ["5"]
    assert settings["MemoryMax"] == ["2G"]
    assert settings["LimitNOFILE"] == ["65536"]
    assert "postgresql.service" in " ".join(unit["Unit"]["After"]).split()
    assert "TRADINGBOT_LOG_DIR=/var/log/trading-bot" in settings["Environment"]
    assert settings["LogsDirectory"] == ["trading-bot"]


def test_real_bad_configuration_exit_is_not_restarted(tmp_path: Path) -> None:
    """A real `trading-bot run` with a bad setting exits 2, which the unit does not restart."""
    env = {**os.environ, "TRADINGBOT_HOME": str(tmp_path), "TRADINGBOT_HTTP_PORT": "eighty"}
    env.pop("TRADINGBOT_ENV_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "tradingbot.cli", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert not restarts(exit_code=result.returncode)


def test_real_killed_process_is_restarted(tmp_path: Path) -> None:
    """A real `trading-bot` process killed with SIGKILL counts as a failure the unit restarts."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys, tradingbot.cli; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        cwd=tmp_path,
    )
    process.kill()
    code = process.wait(timeout=30)
    assert code == -signal.SIGKILL
    assert restarts(signal_name=signal.Signals(-code).name)
