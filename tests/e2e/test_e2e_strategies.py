"""Strategies in a real ``trading-bot run``: the shipped example trades out of the box."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import BotFactory, clean_env, run_cli

from support.waiting import wait_until
from tradingbot.events import ORDER, SIGNAL, TRADE, Event
from tradingbot.storage import Database
from tradingbot.storage.event_query import EventQuery

pytestmark = pytest.mark.slow

# The docs promise trades within 2 minutes; in practice the example trades in seconds.
FIRST_TRADES_S = 150.0


def _events(database_url: str, *types: str) -> list[Event]:
    with Database.open(database_url) as database:
        page = database.events.query(EventQuery(types=types, strategy_id="ma_cross", limit=1000))
    return list(reversed(page.events))


def test_a_fresh_run_trades_the_example_strategy(bot_factory: BotFactory) -> None:
    """With no configuration the example makes signals, orders, fills, trade mails and positions."""
    # The embedded defaults (SQLite); the example trades on PostgreSQL in test_e2e_trading.
    bot = bot_factory(None, {"TRADINGBOT_STRATEGIES": None})  # unset: the default
    trades = wait_until(
        lambda: _events(bot.database_url, TRADE), FIRST_TRADES_S, "the example's first fill"
    )
    signals = {str(e.id): e for e in _events(bot.database_url, SIGNAL)}
    placed = [e for e in _events(bot.database_url, ORDER) if e.context.get("action") == "place"]
    assert placed
    for order in placed:
        signal = signals[order.context["signal_id"]]  # every order has its stored signal
        assert signal.timestamp < order.timestamp
    assert all(t.context["signal_id"] in signals for t in trades)
    outbox = bot.home / "outbox"
    wait_until(
        lambda: list(outbox.glob("*trade_execution*.eml")), 30, "a trade e-mail in the outbox"
    )
    report = bot.get("/api/reports/daily").json()
    assert report["positions"], report
    node = bot.node("strategy-ma_cross")
    assert node["status"] == "running"
    assert node["details"]["state"] == "running"
    wait_until(lambda: bot.get("/api/health").json()["status"] == "pass", 30, "health to pass")


def test_check_refuses_an_unknown_strategy_parameter(short_tmp: Path) -> None:
    """`trading-bot check` exits 2 with one line naming the file, the strategy and the key."""
    toml = short_tmp / "strategies.toml"
    toml.write_text("[ma_cross]\nfast = 3\nslowest = 40\n")
    env = clean_env(short_tmp / "home", TRADINGBOT_STRATEGY_CONFIG=str(toml))
    del env["TRADINGBOT_STRATEGIES"]
    result = run_cli(["check"], env, cwd=short_tmp)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"trading-bot: configuration error: TRADINGBOT_STRATEGY_CONFIG: {toml}: [ma_cross]: "
        "unknown key 'slowest' (parameters: cooldown_s, fast, max_orders_per_minute, "
        "max_shares, min_gap_bps, order_usd, sample_s, slow; and watchlist)"
    ]


def test_run_refuses_a_malformed_watchlist_before_starting(short_tmp: Path) -> None:
    """`trading-bot run` with a malformed watchlist symbol exits 2 at once, naming it."""
    env = clean_env(short_tmp / "home", TRADINGBOT_WATCHLIST="AAPL,BRK/B")
    result = run_cli(["run"], env, cwd=short_tmp)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("trading-bot: configuration error: TRADINGBOT_WATCHLIST: ")
    assert "bad symbol 'BRK/B'" in result.stderr
