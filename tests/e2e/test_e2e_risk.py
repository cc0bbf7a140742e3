"""The daily loss limit with a real process: an adverse price path at the gateway trips
the kill switch (a RISK CRITICAL event, an e-mail, a failing health check) and flattens.

The gateway simulator runs in the test process (it outlives the bot, like a real IB
Gateway), holds a position of the bot's account and moves its price; ``trading-bot run``
connects to it as ``TRADINGBOT_BROKER=ibkr`` on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import Bot, BotFactory, find_node, wait_until

from tradingbot.gateway import SimulatorThread, build_simulator

pytestmark = pytest.mark.slow

SHARES = 100


@pytest.fixture
def gateway() -> Iterator[SimulatorThread]:
    sim = SimulatorThread(build_simulator(seed=11, tick_interval_s=0.2), port=0)
    sim.start()
    yield sim
    sim.stop()


def _daily_pnl(bot: Bot) -> float | None:
    """The day's P&L the loss limit's actor last saw (None before the first report)."""
    node = find_node(bot.actors(), "risk")
    value = None if node is None else node["details"].get("daily_pnl")
    return None if value is None else float(value)


def _trading(bot: Bot) -> dict[str, Any]:
    result = bot.shell("trading", as_json=True)
    assert result.returncode == 0, result.stderr
    state: dict[str, Any] = json.loads(result.stdout)["kill_switch"]
    return state


def _gates(bot: Bot) -> dict[str, Any]:
    result = bot.shell("trading", as_json=True)
    assert result.returncode == 0, result.stderr
    gates: dict[str, Any] = json.loads(result.stdout)["gates"]
    return gates


def _alerts(bot: Bot, phrase: str) -> list[str]:
    texts = [p.read_text(errors="replace") for p in (bot.home / "outbox").glob("*.eml")]
    return [t for t in texts if phrase in t]


def test_an_adverse_price_path_trips_the_daily_loss_limit(
    bot_factory: BotFactory, gateway: SimulatorThread
) -> None:
    """A held position falling 1 % a step crosses a 1,000 USD daily loss limit: the kill
    switch trips once (by risk, naming the P&L), the RISK CRITICAL event is stored and
    mailed, health fails on the trading check, and the position is closed at the gateway."""
    account = gateway.call(lambda s: s.brokerage.account_ids[0])
    start = gateway.call(lambda s: s.brokerage.prices.price("AAPL"))
    gateway.call(lambda s: s.brokerage.seed_position(account, "AAPL", SHARES, start))
    bot = bot_factory(
        None,
        {
            "TRADINGBOT_BROKER": "ibkr",
            "TRADINGBOT_IB_HOST": "127.0.0.1",
            "TRADINGBOT_IB_PORT": str(gateway.port),
            "TRADINGBOT_IB_CLIENT_ID": "41",
            "TRADINGBOT_HEALTH_INTERVAL_S": "0.2",
            "TRADINGBOT_RISK_DAILY_LOSS_LIMIT_USD": "1000",
            # The seeded position is not in the bot's books: accepted, so the gate opens.
            "TRADINGBOT_RECONCILE_ACCEPT": "true",
        },
    )
    wait_until(lambda: _daily_pnl(bot) is not None, message="the account's P&L to stream")
    wait_until(lambda: _gates(bot)["reconciliation"] is None, message="reconciliation to pass")
    assert _trading(bot)["mode"] == "running"

    for step in range(1, 5):  # down 1 % a step: -488, -976, then past the limit
        price = round(start * (1 - step / 100), 2)
        gateway.call(lambda s, p=price: s.brokerage.prices.set_price("AAPL", p))
        seen = SHARES * (price - start) * 0.5  # the P&L has moved at least half the step
        wait_until(
            lambda s=seen: (p := _daily_pnl(bot)) is not None and p <= s,
            message=f"the bot to see the P&L of step {step}",
        )
    state = wait_until(
        lambda: (s := _trading(bot))["mode"] == "tripped" and s, message="the kill switch to trip"
    )
    assert state["changed_by"] == "risk"
    pnl = bot.get("/api/trading").json()["pnl"]  # for the dashboard
    assert pnl["daily"] <= -1000
    assert pnl["account"] == account
    assert "daily loss limit" in state["reason"]

    reply = bot.get("/api/events?type=RISK&severity=CRITICAL")
    assert reply.status == 200
    critical = reply.json()["events"]
    assert [e["context"]["event"] for e in critical] == ["kill_switch_tripped"]
    assert critical[0]["context"]["by"] == "risk"
    wait_until(lambda: _alerts(bot, "risk limit tripped"), message="the alert e-mail")
    assert len(_alerts(bot, "risk limit tripped")) == 1

    health = wait_until(
        lambda: (h := bot.get("/api/health")).status == 503 and h, message="health to fail"
    )
    assert "tripped by risk" in health.body.decode()

    def held() -> float:
        return gateway.call(
            lambda s: sum(
                p.quantity
                for p in s.brokerage.account_positions(account)
                if p.instrument.symbol == "AAPL"
            )
        )

    wait_until(lambda: held() == 0, message="the flatten to close the position")
    flattens = [
        e
        for e in bot.get("/api/events?type=RISK").json()["events"]
        if e["context"].get("event") == "flatten"
    ]
    assert [e["context"]["by"] for e in flattens] == ["risk"]
