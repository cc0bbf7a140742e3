"""Live-account safety and the IB Gateway's daily restart window, with real processes: a
``trading-bot run`` connected (``TRADINGBOT_BROKER=ibkr``) to a standalone
``trading-bot gateway-sim``."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Bot, BotFactory, clean_env, cli_command

from support.waiting import wait_until
from tradingbot.config.window import parse_daily_window

pytestmark = pytest.mark.slow

LIVE_ACCOUNT = "U1234567"
WAIT_S = 60.0

GatewaySim = Callable[..., int]


@pytest.fixture
def gateway_sim(short_tmp: Path) -> Iterator[GatewaySim]:
    """Start ``trading-bot gateway-sim --port 0 ARGS...``; returns the port it listens on."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> int:
        out = short_tmp / f"sim{len(started)}.out"
        with out.open("wb") as stdout:
            process = subprocess.Popen(
                [*cli_command(), "gateway-sim", "--port", "0", *args],
                env=clean_env(short_tmp / "sim-home"),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)

        def port() -> int | None:
            assert process.poll() is None, out.read_text()
            found = re.search(
                r"^gateway simulator listening on [\d.]+:(\d+)$", out.read_text(), re.M
            )
            return None if found is None else int(found[1])

        return wait_until(port, WAIT_S, "the simulator to listen")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=15)


def _trading(bot: Bot) -> dict[str, Any]:
    result = bot.shell("trading", as_json=True)
    assert result.returncode == 0, result.stderr
    state: dict[str, Any] = json.loads(result.stdout)
    return state


def _ibkr(port: int, **extra: str) -> dict[str, str]:
    return {"TRADINGBOT_BROKER": "ibkr", "TRADINGBOT_IB_PORT": str(port), **extra}


def _system_events(bot: Bot) -> list[str]:
    """The messages of the SYSTEM events in the bot's log, oldest first."""
    return [str(line["event"]) for line in bot.log_events() if line.get("event_type") == "SYSTEM"]


def test_a_live_account_is_refused_without_the_opt_in(
    bot_factory: BotFactory, gateway_sim: GatewaySim
) -> None:
    """Against a gateway serving a non-paper account, the bot says so in one stderr line
    and a SYSTEM ERROR event, health warns, and no order may go out even once reconciled."""
    port = gateway_sim("--account", LIVE_ACCOUNT)
    bot = bot_factory(None, _ibkr(port))
    refusal = f"live trading refused: account {LIVE_ACCOUNT} is not a paper account"
    wait_until(lambda: refusal in bot.stderr(), WAIT_S, "the refusal on stderr")
    wait_until(lambda: _trading(bot)["gates"]["reconciliation"] is None, WAIT_S, "reconciled")
    state = _trading(bot)
    assert state["orders_allowed"] is False
    assert refusal in state["gates"]["live_account"]
    assert [line for line in bot.stderr().splitlines() if "live trading" in line] == [
        f"trading-bot: {state['gates']['live_account']}"
    ]
    stored = bot.get("/api/events?type=SYSTEM&severity=ERROR").json()["events"]
    assert any(refusal in event["message"] for event in stored)
    health = bot.get("/api/health/trading").json()
    assert health["status"] == "warn"


def test_the_opt_in_lets_a_live_account_trade(
    bot_factory: BotFactory, gateway_sim: GatewaySim
) -> None:
    """With TRADINGBOT_LIVE_TRADING=yes the same live account trades once reconciled, and
    a WARNING event says live trading is on."""
    port = gateway_sim("--account", LIVE_ACCOUNT)
    bot = bot_factory(None, _ibkr(port, TRADINGBOT_LIVE_TRADING="yes"))
    wait_until(lambda: _trading(bot)["orders_allowed"], WAIT_S, "orders allowed")
    assert _trading(bot)["gates"]["live_account"] is None
    assert "live trading refused" not in bot.stderr()
    allowed = f"live trading allowed on account {LIVE_ACCOUNT} (TRADINGBOT_LIVE_TRADING=yes)"
    assert _system_events(bot).count(allowed) == 1


def test_orders_pause_for_the_restart_window_and_resume_after_sync_and_reconciliation(
    bot_factory: BotFactory, gateway_sim: GatewaySim
) -> None:
    """The gateway restarts inside the configured window: new orders are refused from the
    lead before it, and allowed again only after the broker synced and a reconciliation
    passed after the reconnect (the events say so, in that order)."""
    restart = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
    window = f"{restart:%H:%M:%S}-{restart + timedelta(seconds=6):%H:%M:%S} UTC"
    port = gateway_sim("--restart-at", f"{restart:%H:%M:%S} UTC", "--restart-window", "3")
    env = _ibkr(
        port,
        TRADINGBOT_IB_RESTART_WINDOW=window,
        TRADINGBOT_IB_RESTART_LEAD_S="5",
        TRADINGBOT_IB_RESTART_GRACE_S="120",
        TRADINGBOT_IB_PROBE_INTERVAL_S="0.5",
    )
    bot = bot_factory(None, env)  # SQLite: the window's gate does not touch the database

    def paused() -> str | None:
        reason: str | None = _trading(bot)["gates"]["restart_window"]
        return reason

    reason = wait_until(paused, WAIT_S, "the restart window gate to close")
    assert f"IB Gateway daily restart window {parse_daily_window(window)}" in reason
    assert _trading(bot)["orders_allowed"] is False
    assert _trading(bot)["kill_switch"]["mode"] == "running"  # not the operator's switch
    wait_until(lambda: _trading(bot)["orders_allowed"], WAIT_S, "trading to resume")

    events = _system_events(bot)

    def first(prefix: str, after: int = -1) -> int:
        for index, message in enumerate(events):
            if index > after and message.startswith(prefix):
                return index
        raise AssertionError(f"no SYSTEM event {prefix!r} after #{after} in {events}")

    pause = first("trading paused before the IB Gateway daily restart")
    lost = first("broker connection lost", pause)
    synced = first("broker synced with the gateway", lost)
    reconciled = first("reconciliation clean (reconnect)", synced)
    ended = first("IB Gateway daily restart window ended", pause)
    resumed = first("trading resumed after the IB Gateway daily restart", max(reconciled, ended))
    assert resumed == max(i for i, m in enumerate(events) if "restart" in m)
    assert bot.get("/api/health").status == 200
