"""Reconciliation with real processes: kill -9, the world changes at the gateway, restart.

The gateway simulator runs in the test process (it outlives the bot, like a real IB
Gateway); ``trading-bot run`` connects to it as ``TRADINGBOT_BROKER=ibkr``.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import Bot, BotFactory, wait_until

from tradingbot import exitcodes
from tradingbot.gateway import SimulatorThread, build_simulator
from tradingbot.storage import Database

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway() -> Iterator[SimulatorThread]:
    sim = SimulatorThread(build_simulator(seed=5, tick_interval_s=0.2), port=0)
    sim.start()
    yield sim
    sim.stop()


def env_for(gateway: SimulatorThread) -> dict[str, str]:
    return {
        "TRADINGBOT_BROKER": "ibkr",
        "TRADINGBOT_IB_HOST": "127.0.0.1",
        "TRADINGBOT_IB_PORT": str(gateway.port),
        "TRADINGBOT_IB_CLIENT_ID": "31",
        "TRADINGBOT_HEALTH_INTERVAL_S": "0.2",
    }


def reconcile_state(bot: Bot) -> dict[str, Any] | None:
    result = bot.shell("reconcile", as_json=True)
    if result.returncode != 0:
        return None
    state: dict[str, Any] = json.loads(result.stdout)
    return state if state["latest"] else None


def recovery_reports(bot: Bot) -> list[str]:
    texts = [p.read_text(errors="replace") for p in (bot.home / "outbox").glob("*.eml")]
    return [t for t in texts if "RECOVERY" in t]


def test_kill_9_then_an_external_position_blocks_until_accepted(
    bot_factory: BotFactory, bot_database_url: str | None, gateway: SimulatorThread
) -> None:
    """After kill -9, a position bought by hand while the bot was down blocks trading, is mailed
    once and reported in health, until the operator accepts it; the next start is clean."""
    env = env_for(gateway)
    first = bot_factory(bot_database_url, env)
    state = wait_until(lambda: reconcile_state(first), message="the start reconciliation")
    assert state["latest"][0]["status"] == "clean"
    assert state["trading_blocked"] is None
    crashed_pid = first.process.pid
    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL

    # While the bot is down, a position appears at the broker (bought by hand).
    account = gateway.call(lambda s: s.brokerage.account_ids[0])
    gateway.call(lambda s: s.brokerage.seed_position(account, "NVDA", 7, 118.5))

    second = bot_factory(bot_database_url, env, home=first.home)
    state = wait_until(
        lambda: (s := reconcile_state(second)) and s["latest"][0]["status"] != "clean" and s,
        message="the start reconciliation to find the position",
    )
    latest = state["latest"][0]
    assert latest["status"] == "discrepancies"
    assert [(d["kind"], d["symbol"], d["broker"]) for d in latest["discrepancies"]] == [
        ("external_position", "NVDA", 7.0)
    ]
    assert "discrepancies" in state["trading_blocked"]
    health = wait_until(
        lambda: (
            (h := second.get("/api/health/trading")).status == 200
            and h.json()["checks"]["trading:gate"][0]["status"] == "warn"
            and h
        ),
        message="the trading gate's health check to warn",
    )
    assert health.json()["checks"]["trading:gate"][0]["output"].startswith(
        "blocked: reconciliation"
    )
    # The crash is settled with the discrepancy list, and the report mailed once.
    with Database.open(second.database_url) as database:
        [crash] = wait_until(
            lambda: [e for e in database.recovery.latest(10) if e.discrepancies],
            message="the crash's discrepancy list",
        )
    assert crash.pid == crashed_pid
    assert crash.status == "detected"  # not settled until accepted
    [report] = wait_until(lambda: recovery_reports(second), message="the recovery report")
    assert f"pid {crashed_pid}" in report
    assert "external_position" in report
    assert "NVDA" in report

    accepted = second.shell("reconcile accept", as_json=True)
    assert accepted.returncode == 0, accepted.stderr
    accepted_id = json.loads(accepted.stdout)["id"]
    assert json.loads(accepted.stdout)["status"] == "accepted"
    state = wait_until(
        lambda: (s := reconcile_state(second)) and s["trading_blocked"] is None and s,
        message="trading to open after the acceptance",
    )
    with Database.open(second.database_url) as database:
        [crash] = [e for e in database.recovery.latest(10) if e.pid == crashed_pid]
    assert crash.status == "accepted"  # the acceptance settles the crash
    assert [d["kind"] for d in crash.discrepancies] == ["external_position"]
    second.signal(signal.SIGTERM)
    assert second.wait() == exitcodes.OK, second.diagnostics()

    third = bot_factory(bot_database_url, env, home=first.home)
    state = wait_until(
        lambda: (s := reconcile_state(third)) and s["latest"][0]["id"] != accepted_id and s,
        message="the next start's reconciliation",
    )
    latest = state["latest"][0]
    assert (latest["status"], latest["discrepancies"]) == ("clean", [])
    assert len(recovery_reports(third)) == 1  # reported once


def test_a_bad_reconcile_command_is_one_clear_line(
    bot_factory: BotFactory, gateway: SimulatorThread
) -> None:
    """A wrong reconcile shell command fails with one usage line, not a traceback."""
    bot = bot_factory(None, env_for(gateway))
    result = bot.shell("reconcile later")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["error: usage: reconcile [run|accept]"]
