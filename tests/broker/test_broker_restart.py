"""A whole runtime stopped and started again against the same gateway and database.

The bot's in-memory order book does not survive the process; the gateway's books and our
database do. After the restart, an idempotency key used before still names the same
order (nothing is sent again), a fill that happened while the bot was down becomes one
TRADE event marked as reconciled, and fills recorded before are not recorded again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from brokerharness import wait_until
from prometheus_client import CollectorRegistry

from support.bot_config import bot_config
from support.ib_errors import IbErrorGuard
from tradingbot.broker import ConnectionState, OrderRequest, place_order
from tradingbot.config import Config
from tradingbot.events import TRADE, Event
from tradingbot.gateway import SimulatorThread
from tradingbot.runtime import Runtime
from tradingbot.storage import Database
from tradingbot.storage.event_query import EventQuery


@pytest.fixture
def config(tmp_path: Path, sim: SimulatorThread) -> Config:
    """The runtime's configuration for a real gateway at the simulator's port."""
    return bot_config(
        tmp_path,
        BROKER="ibkr",
        IB_HOST="127.0.0.1",
        IB_PORT=str(sim.port),
        IB_CLIENT_ID="11",
        # A resting limit order at half the market is far outside the price band.
        RISK_PRICE_BAND_PCT="100",
    )


def started(config: Config) -> Runtime:
    bot = Runtime(config)
    bot.start()
    wait_until(
        lambda: bot.broker_status.view().state == ConnectionState.SYNCED,
        timeout_s=15,
        message="the broker to sync",
    )
    wait_until(
        lambda: bot.broker_status.trading_blocked() is None,
        timeout_s=20,
        message="the start reconciliation to open trading",
    )
    return bot


def trades(database: Database, trade_id: str) -> list[Event]:
    return list(database.events.query(EventQuery(types=(TRADE,), trade_id=trade_id)).events)


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    bots: list[Runtime] = []
    yield bots
    for bot in bots:
        bot.stop()


def test_keys_orders_and_fills_survive_a_restart(
    config: Config, sim: SimulatorThread, runtimes: list[Runtime], ib_errors: IbErrorGuard
) -> None:
    """After a restart, client order keys still name the same orders (nothing is sent twice), a fill
    missed while down is recorded once, and earlier fills are not recorded again."""
    first = started(config)
    runtimes.append(first)
    assert first.tree is not None
    handle = first.tree.handle("broker")
    bought = place_order(
        handle, first.broker_status, OrderRequest("AAPL", "BUY", 5, client_order_id="buy-1")
    )
    limit = round(sim.call(lambda s: s.brokerage.prices.price("MSFT")) * 0.5, 2)
    resting = place_order(
        handle,
        first.broker_status,
        OrderRequest("MSFT", "BUY", 3, "LMT", limit, client_order_id="rest-1"),
    )
    assert first.database is not None
    database = first.database
    wait_until(lambda: trades(database, bought), message="the market order's TRADE event")
    wait_until(
        lambda: (o := first.broker_status.order(resting)) is not None and o.status == "Submitted",
        message="the limit order to rest",
    )
    first.stop()
    runtimes.remove(first)

    def fill_resting(s: Any) -> int:
        s.brokerage.prices.set_price("MSFT", limit * 0.9)
        s.tick()
        return len(s.brokerage.executions)

    assert sim.call(fill_resting) == 2  # the bot is down: this fill is not seen live

    second = started(config)
    runtimes.append(second)
    assert second.tree is not None
    assert second.database is not None
    database = second.database
    handle = second.tree.handle("broker")
    wait_until(lambda: trades(database, resting), message="the missed fill's TRADE event")
    [missed] = trades(database, resting)
    assert missed.context["reconciled"] is True
    assert (missed.context["side"], missed.context["quantity"]) == ("BUY", 3.0)
    record = second.broker_status.order(resting)
    assert record is not None
    assert record.status == "Filled"

    # The same keys name the same orders: nothing is sent again.
    for key, ref in (("buy-1", bought), ("rest-1", resting)):
        request = OrderRequest("AAPL", "BUY", 5, client_order_id=key)
        assert place_order(handle, second.broker_status, request) == ref
    marker = place_order(handle, second.broker_status, OrderRequest("AAPL", "BUY", 1))
    wait_until(lambda: trades(database, marker), message="a fresh order's TRADE event")
    refs = sim.call(lambda s: sorted(o.order_ref for o in s.brokerage.orders.values()))
    assert refs == sorted([bought, resting, marker])
    # The fill recorded by the first run is stored once, and the second run did not even
    # record it again (so no subscriber, e-mail included, saw it twice).
    assert len(trades(database, bought)) == 1
    assert len(trades(database, resting)) == 1
    registry = CollectorRegistry()
    for collector in second.metrics.collectors():
        registry.register(collector)
    recorded = registry.get_sample_value("tradingbot_events_recorded_total", {"type": TRADE})
    assert recorded == 2  # the missed fill and the fresh order's fill
