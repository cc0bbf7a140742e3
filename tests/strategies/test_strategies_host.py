"""Strategies in the whole runtime: real simulator, real ib_async client, real SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from strategy_samples import BuyOnce

from support.bot_config import bot_config
from support.waiting import wait_until
from tradingbot.events import ORDER, SIGNAL, SYSTEM, TRADE, Event, Severity
from tradingbot.runtime import Runtime
from tradingbot.storage.event_query import EventQuery

BotFactory = Callable[..., Runtime]


@pytest.fixture
def start_bot(tmp_path: Path) -> Iterator[BotFactory]:
    """Start a runtime with the given strategies, start gate and ``TRADINGBOT_*`` overrides."""
    started: list[Runtime] = []
    BuyOnce.reset()

    def start(
        strategies: str, start_gate: Callable[[], str | None] | None = None, **env: str
    ) -> Runtime:
        config = bot_config(tmp_path, **{"STRATEGIES": strategies, "WATCHLIST": "AAPL", **env})
        bot = Runtime(config)
        if start_gate is not None:
            bot.strategy_start_gate = start_gate
        started.append(bot)
        bot.start()
        return bot

    yield start
    for bot in started:
        bot.stop()


def events(bot: Runtime, *types: str, strategy_id: str | None = None) -> list[Event]:
    """Stored events of ``types``, oldest first."""
    assert bot.database is not None
    page = bot.database.events.query(EventQuery(types=types, strategy_id=strategy_id, limit=1000))
    return list(reversed(page.events))


def test_a_signal_is_stored_before_its_order_and_the_order_and_trade_carry_its_ids(
    start_bot: BotFactory,
) -> None:
    """The SIGNAL event is stored first; the ORDER and TRADE events name its strategy and signal."""
    bot = start_bot("strategy_samples:BuyOnce")
    trades = wait_until(
        lambda: events(bot, TRADE, strategy_id="buy_once"), 30, "a TRADE of the strategy"
    )
    signals = events(bot, SIGNAL, strategy_id="buy_once")
    orders = [e for e in events(bot, ORDER) if e.context.get("action") == "place"]
    assert len(signals) == 1
    assert len(orders) == 1
    signal, order, trade = signals[0], orders[0], trades[0]
    assert signal.context["side"] == "BUY"
    assert signal.context["symbol"] == "AAPL"
    assert signal.timestamp < order.timestamp
    for event in (order, trade):
        assert event.strategy_id == "buy_once"
        assert event.context["strategy_id"] == "buy_once"
        assert event.context["signal_id"] == str(signal.id)
    assert order.trade_id == trade.trade_id == BuyOnce.orders[0]
    assert order.trade_id is not None
    assert order.trade_id.startswith("TB-buy_once.")
    wait_until(lambda: BuyOnce.fills and BuyOnce.updates, 10, "the fill and the final status")
    assert BuyOnce.fills[0].signal_id == str(signal.id)
    assert BuyOnce.updates[0].status == "Filled"
    assert bot.tree is not None
    node = bot.tree.snapshot().find("strategy-buy_once")
    assert node is not None
    assert (node.details["signals"], node.details["orders"], node.details["refused"]) == (1, 1, 0)


def test_a_crashed_strategy_restarts_with_its_state_from_the_broker_and_the_events(
    start_bot: BotFactory,
) -> None:
    """After a crash the new incarnation sees its position and its last signal; it buys no more."""
    bot = start_bot("strategy_samples:BuyOnce")
    wait_until(lambda: BuyOnce.updates, 30, "the first order to fill")
    first_signal = events(bot, SIGNAL, strategy_id="buy_once")[0]
    assert bot.tree is not None
    bot.tree.crash("strategy-buy_once")
    wait_until(lambda: len(BuyOnce.starts) == 2, 30, "the restarted strategy's start")
    before, after = BuyOnce.starts
    assert before.position == 0
    assert before.last_signal is None
    assert after.position == 1
    assert after.last_signal is not None
    assert after.last_signal.id == str(first_signal.id)
    # The restarted strategy starts before its supervisor records the restart: wait for it.
    tree = bot.tree
    wait_until(
        lambda: (
            (n := tree.snapshot().find("strategy-buy_once")) is not None
            and n.status == "running"
            and n.restarts >= 1
        ),
        10,
        "the restart recorded",
    )
    node = tree.snapshot().find("strategy-buy_once")
    assert node is not None
    assert node.restarts == 1
    assert bot.simulator is not None
    refs = bot.simulator.call(lambda sim: [o.order_ref for o in sim.brokerage.orders.values()])
    assert refs == BuyOnce.orders  # one order in all, never sent again
    assert len(bot.market_data.sinks("AAPL")) == 1  # the restart added no second subscriber


def test_a_crash_looping_strategy_is_stopped_alone_while_another_keeps_trading(
    start_bot: BotFactory,
) -> None:
    """A strategy crashing on every quote is stopped for good with an ERROR event; the rest runs."""
    bot = start_bot("strategy_samples:Crasher,strategy_samples:BuyOnce")
    stopped = wait_until(
        lambda: [
            e
            for e in events(bot, SYSTEM, strategy_id="crasher")
            if e.context.get("event") == "strategy_stopped"
        ],
        30,
        "the crash-looping strategy to be stopped",
    )
    assert stopped[0].severity == Severity.ERROR
    assert "buy_once" in stopped[0].context["other_strategies"]
    wait_until(lambda: BuyOnce.updates, 30, "the other strategy to trade")
    assert bot.tree is not None
    assert bot.tree.exit is None
    snapshot = bot.tree.snapshot()
    crasher, other = snapshot.find("strategy-crasher"), snapshot.find("strategy-buy_once")
    assert crasher is not None
    assert crasher.status == "stopped"
    assert other is not None
    assert other.status == "running"
    assert snapshot.find("broker") is not None
    escalations = [
        e for e in events(bot, SYSTEM) if e.context.get("event") == "supervisor_escalated"
    ]
    assert [e.context["child"] for e in escalations] == ["strategy-crasher"]


def test_an_unknown_symbol_is_one_warning_and_the_rest_of_the_watchlist_runs(
    start_bot: BotFactory,
) -> None:
    """A symbol the gateway does not know is one WARNING event, skipped, even across restarts."""
    bot = start_bot("strategy_samples:BuyOnce", WATCHLIST="NOSUCH1,AAPL")
    wait_until(lambda: BuyOnce.updates, 30, "the strategy to trade its known symbol")
    assert BuyOnce.starts[0].watchlist == ("AAPL",)
    assert bot.tree is not None
    bot.tree.crash("strategy-buy_once")
    wait_until(lambda: len(BuyOnce.starts) == 2, 30, "the restarted strategy's start")
    warnings = [
        e
        for e in events(bot, SYSTEM, strategy_id="buy_once")
        if e.context.get("event") == "unknown_symbol"
    ]
    assert len(warnings) == 1
    assert warnings[0].severity == Severity.WARNING
    assert warnings[0].context["symbol"] == "NOSUCH1"


def test_strategies_wait_for_the_start_gate(start_bot: BotFactory) -> None:
    """While the start gate names a reason the strategy does not start; once clear, it trades."""
    reason = ["live account U123 needs TRADINGBOT_LIVE_TRADING=yes"]
    bot = start_bot("strategy_samples:BuyOnce", lambda: reason[0] if reason else None)
    assert bot.tree is not None

    def waiting_for() -> object:
        node = bot.tree.snapshot().find("strategy-buy_once") if bot.tree else None
        return None if node is None else node.details.get("waiting_for")

    wait_until(lambda: waiting_for() == reason[0], 30, "the strategy to wait for the gate")
    assert BuyOnce.starts == []
    reason.clear()
    wait_until(lambda: BuyOnce.updates, 30, "the strategy to start and trade")


def test_an_order_refused_by_the_kill_switch_is_not_a_crash(start_bot: BotFactory) -> None:
    """While paused, the strategy's signal is stored, its order refused, and it keeps running."""
    gate = ["held back until the pause is in force"]
    bot = start_bot("strategy_samples:BuyOnce", lambda: gate[0] if gate else None)
    assert bot.kill_switch is not None
    bot.kill_switch.pause(by="test", reason="no orders now")
    gate.clear()
    wait_until(lambda: events(bot, SIGNAL, strategy_id="buy_once"), 30, "the strategy's decision")
    assert bot.tree is not None
    wait_until(
        lambda: (
            (node := bot.tree.snapshot().find("strategy-buy_once")) is not None
            and node.details.get("state") == "running"
        ),
        10,
        "the strategy to run",
    )
    node = bot.tree.snapshot().find("strategy-buy_once")
    assert node is not None
    assert node.restarts == 0
    assert BuyOnce.orders == []
    assert [e for e in events(bot, ORDER) if e.context.get("action") == "place"] == []


def test_a_restarted_bot_rebuilds_its_strategy_and_trading_opens(start_bot: BotFactory) -> None:
    """After a restart the paper account still holds the position, reconciliation passes,
    and the strategy starts from its stored signal instead of buying again."""
    first = start_bot("strategy_samples:BuyOnce")
    wait_until(lambda: events(first, TRADE, strategy_id="buy_once"), 30, "the first fill")
    [signal] = events(first, SIGNAL, strategy_id="buy_once")
    first.stop()

    second = start_bot("strategy_samples:BuyOnce")
    wait_until(lambda: len(BuyOnce.starts) == 2, 30, "the strategy's start in the new process")
    after = BuyOnce.starts[1]
    assert after.position == 1
    assert after.last_signal is not None
    assert after.last_signal.id == str(signal.id)
    assert second.broker_status.trading_blocked() is None
    assert second.reconciliations[-1].record.status == "clean"
    assert len(events(second, TRADE, strategy_id="buy_once")) == 1
