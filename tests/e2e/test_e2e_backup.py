"""Backup a running bot, restore into a fresh home, and the bot starts and reconciles.

Real processes throughout: `trading-bot run` against the gateway simulator (which
outlives the bots, like a real IB Gateway), `trading-bot db backup / verify / restore`.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import Bot, BotFactory, run_cli, wait_until

from tradingbot import exitcodes
from tradingbot.events import Event
from tradingbot.gateway import SimulatorThread, build_simulator
from tradingbot.storage import Database

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway() -> Iterator[SimulatorThread]:
    sim = SimulatorThread(build_simulator(seed=7, tick_interval_s=0.2), port=0)
    sim.start()
    yield sim
    sim.stop()


def env_for(gateway: SimulatorThread) -> dict[str, str]:
    return {
        "TRADINGBOT_BROKER": "ibkr",
        "TRADINGBOT_IB_HOST": "127.0.0.1",
        "TRADINGBOT_IB_PORT": str(gateway.port),
        "TRADINGBOT_IB_CLIENT_ID": "41",
    }


def latest_reconciliation(bot: Bot) -> dict[str, Any] | None:
    result = bot.shell("reconcile", as_json=True)
    if result.returncode != 0:
        return None
    state: dict[str, Any] = json.loads(result.stdout)
    return state if state["latest"] else None


def test_backup_while_running_then_restore_into_a_fresh_home(
    bot_factory: BotFactory, gateway: SimulatorThread
) -> None:
    """A live backup restores into a new home; the bot starts there, reconciles and trades."""
    env = env_for(gateway)
    first = bot_factory(None, env)
    first_run = first.run_id
    wait_until(lambda: latest_reconciliation(first), message="the first start's reconciliation")
    with Database.open(first.database_url) as database:
        marker = Event(type="TRADE", message="bought before the backup")
        database.events.insert_many([marker])
    backup_file = first.home.parent / "live.backup.tar"

    made = run_cli(["db", "backup", str(backup_file)], first.env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"backup written: {backup_file}")
    checked = run_cli(["db", "verify", str(backup_file)], first.env)
    assert checked.returncode == 0, checked.stderr

    refused = run_cli(["db", "restore", str(backup_file)], first.env)
    assert refused.returncode == exitcodes.ALREADY_RUNNING
    assert refused.stderr.startswith("trading-bot: restore refused:")
    assert f"pid {first.process.pid}" in refused.stderr
    before = latest_reconciliation(first)
    assert before is not None
    known = {row["id"] for row in before["latest"]}
    first.signal(signal.SIGTERM)
    assert first.wait() == exitcodes.OK, first.diagnostics()

    fresh_home = first.home.parent / "fresh"
    fresh_env = {**first.env, "TRADINGBOT_HOME": str(fresh_home)}
    restored = run_cli(["db", "restore", str(backup_file)], fresh_env)
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout

    second = bot_factory(None, env, home=fresh_home)
    state = wait_until(
        lambda: (s := latest_reconciliation(second)) and s["latest"][0]["id"] not in known and s,
        message="the restored bot's own start reconciliation",
    )
    assert state["latest"][0]["status"] == "clean"
    assert state["trading_blocked"] is None
    with Database.open(second.database_url) as database:
        assert database.events.get(marker.id) is not None
        assert database.system_state.get(first_run) is not None
