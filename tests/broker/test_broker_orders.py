"""Orders through the broker actor, and the runtime's in-process simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from brokerharness import BrokerHarness, wait_until

from support.bot_config import bot_environ
from support.ib_errors import IbErrorGuard
from tradingbot.broker import BrokerNotReady, ConnectionState, OrderRequest, place_order
from tradingbot.broker.messages import PlaceOrder
from tradingbot.config import Config, load_config
from tradingbot.events import ORDER, TRADE, Event
from tradingbot.gateway import SimulatorThread
from tradingbot.runtime import Runtime
from tradingbot.storage.event_query import EventQuery


class CountingSink:
    """The broker actor's handle, counting the messages told to it."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.told = 0

    def tell(self, message: Any) -> None:
        self.told += 1
        self._handle.tell(message)


def config_for(tmp_path: Path, **env: str) -> Config:
    """The configuration of a bot in ``tmp_path``: ``env`` (TRADINGBOT_*) and no .env file."""
    # STRATEGIES: no example strategy trading under the test.
    return load_config(environ={**bot_environ(tmp_path, STRATEGIES=""), **env})


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """The whole runtime (SQLite, event logger, broker) with the default in-process simulator."""
    config = config_for(tmp_path)
    assert config.broker == "sim"
    bot = Runtime(config)
    bot.start()
    wait_until(
        lambda: bot.broker_status.trading_blocked() is None,
        timeout_s=20,
        message="the start reconciliation to open trading",
    )
    yield bot
    bot.stop()


def test_runtime_starts_the_simulator_and_the_broker_syncs(runtime: Runtime) -> None:
    """With TRADINGBOT_BROKER=sim the runtime runs a simulator on loopback; the broker syncs."""
    assert runtime.simulator is not None
    assert runtime.tree is not None
    assert runtime.tree.actor_ids() == [
        "root",
        "event_logger",
        "notifier",
        "heartbeat",
        "risk",
        "broker",
        "reconciler",
        "scheduler",
        "health",
    ]
    node = runtime.tree.snapshot().find("broker")
    assert node is not None
    assert node.details["state"] == "synced"
    assert node.details["port"] == runtime.simulator.port


def test_market_order_fills_and_one_trade_event_is_stored(runtime: Runtime) -> None:
    """A market order is recorded (ORDER), sent with our orderRef, fills, and its commission
    report becomes exactly one stored TRADE event."""
    assert runtime.tree is not None
    assert runtime.database is not None
    database = runtime.database
    ref = place_order(
        runtime.tree.handle("broker"), runtime.broker_status, OrderRequest("AAPL", "BUY", 10)
    )
    assert ref.startswith("TB-")
    wait_until(
        lambda: (o := runtime.broker_status.order(ref)) is not None and o.status == "Filled",
        message="the order to fill",
    )

    def trades() -> list[Event]:
        page = database.events.query(EventQuery(types=(TRADE,), trade_id=ref))
        return list(page.events)

    [trade] = wait_until(trades, message="the TRADE event in the database")
    assert trade.context["symbol"] == "AAPL"
    context = trade.context
    assert (context["side"], context["quantity"], context["order_ref"]) == ("BUY", 10.0, ref)
    assert context["price"] > 0
    assert context["commission"] is not None
    assert context["commission"] > 0
    assert context["exec_id"]
    assert context["order_id"] > 0
    assert context["perm_id"] > 0
    assert context["account"] == ""  # no account configured: the gateway's only one
    orders = database.events.query(EventQuery(types=(ORDER,), trade_id=ref)).events
    assert [e.context["action"] for e in reversed(orders)] == ["place", "final"]
    assert orders[-1].timestamp <= trade.timestamp  # recorded before the order was sent
    assert orders[0].context["status"] == "Filled"
    assert orders[0].context["account"] == ""
    assert (orders[-1].message, orders[-1].context["account"]) == ("BUY 10 AAPL MKT", "")
    simulator = runtime.simulator
    assert simulator is not None
    at_gateway = simulator.call(
        lambda s: [o.status for o in s.brokerage.orders.values() if o.order_ref == ref]
    )
    assert at_gateway == ["Filled"]


def test_order_while_disconnected_is_refused_at_once(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """While the gateway is unreachable an order is refused immediately (the caller waits for
    nothing: the broker actor is not even asked), and nothing is queued."""
    broker.wait_state(ConnectionState.SYNCED)
    sim.run(sim.call(lambda s: s.refuse_connections(2.0)))
    broker.wait_state(ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
    asked = CountingSink(broker.tree.handle("broker"))
    with pytest.raises(BrokerNotReady, match="not synced"):
        place_order(asked, broker.status, OrderRequest("AAPL", "BUY", 1))
    assert asked.told == 0
    broker.wait_state(ConnectionState.SYNCED, timeout_s=15)
    assert broker.sink.of_type(ORDER) == []
    assert sim.call(lambda s: len(s.brokerage.executions)) == 0


def test_actor_refuses_an_order_that_reaches_it_unsynced(
    broker: BrokerHarness, ib_errors: IbErrorGuard, sim: SimulatorThread
) -> None:
    """An order message reaching a degraded actor is answered with BrokerNotReady; the actor
    keeps running."""
    broker.wait_state(ConnectionState.SYNCED)
    sim.call(lambda s: s.connectivity_lost())
    broker.wait_state(ConnectionState.DEGRADED)
    message = PlaceOrder(OrderRequest("AAPL", "SELL", 1))
    broker.tree.tell("broker", message)
    with pytest.raises(BrokerNotReady):
        message.reply.result(5)
    assert broker.node().restarts == 0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"side": "HOLD"}, "side"),
        ({"quantity": 0}, "quantity"),
        ({"order_type": "STP"}, "order_type"),
        ({"order_type": "LMT"}, "limit_price"),
    ],
)
def test_bad_order_requests_are_rejected_before_sending(
    fields: dict[str, object], error: str
) -> None:
    """An order request with a bad side, quantity, type or missing limit price is a ValueError."""
    values: dict[str, object] = {"symbol": "AAPL", "side": "BUY", "quantity": 1, **fields}
    with pytest.raises(ValueError, match=error):
        OrderRequest(**values)  # type: ignore[arg-type]


def test_fill_while_disconnected_becomes_one_trade_after_reconnect(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """A resting order that fills while the gateway refuses connections is reported once, as
    one TRADE event, after the reconnect; the gateway holds a single order for it."""
    broker.wait_state(ConnectionState.SYNCED)
    market = sim.call(lambda s: s.brokerage.prices.price("MSFT"))
    limit = round(market * 0.5, 2)
    ref = place_order(
        broker.tree.handle("broker"), broker.status, OrderRequest("MSFT", "BUY", 3, "LMT", limit)
    )
    wait_until(
        lambda: (o := broker.status.order(ref)) is not None and o.status == "Submitted",
        message="the order to rest at the gateway",
    )
    sim.run(sim.call(lambda s: s.refuse_connections(1.0)))
    broker.wait_state(ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)

    def fill_now(s: Any) -> int:
        s.brokerage.prices.set_price("MSFT", limit * 0.9)
        s.tick()
        return len(s.brokerage.executions)

    assert sim.call(fill_now) == 1
    broker.wait_state(ConnectionState.SYNCED, timeout_s=15)
    wait_until(lambda: broker.sink.of_type(TRADE), message="the TRADE event of the missed fill")
    wait_until(
        lambda: (o := broker.status.order(ref)) is not None and o.status == "Filled",
        message="the order to be seen filled after the reconnect",
    )
    [trade] = broker.sink.of_type(TRADE)
    assert trade.trade_id == ref
    assert (trade.context["side"], trade.context["quantity"]) == ("BUY", 3.0)
    assert trade.context["commission"] is not None
    assert [e.context["action"] for e in broker.sink.of_type(ORDER)] == ["place", "final"]
    refs = sim.call(lambda s: [o.order_ref for o in s.brokerage.orders.values()])
    assert refs == [ref]


def test_runtime_broker_crash_with_an_order_in_flight_stores_one_trade(
    runtime: Runtime, ib_errors: IbErrorGuard
) -> None:
    """The runtime's broker crashes right after sending a keyed order: after the restart the
    simulator holds one order with that orderRef and the database one TRADE event for it."""
    ib_errors.allow(r"Peer closed connection|Socket disconnect")
    tree, database, simulator = runtime.tree, runtime.database, runtime.simulator
    assert tree is not None
    assert database is not None
    assert simulator is not None
    request = OrderRequest("AAPL", "BUY", 7, client_order_id="runtime-crash-1")
    ref = place_order(tree.handle("broker"), runtime.broker_status, request)
    tree.crash("broker")
    wait_until(
        lambda: (n := tree.snapshot().find("broker")) is not None and n.restarts >= 1,
        message="the broker to restart",
    )
    wait_until(
        lambda: runtime.broker_status.view().state == ConnectionState.SYNCED,
        timeout_s=15,
        message="the broker to sync again",
    )
    wait_until(
        lambda: (o := runtime.broker_status.order(ref)) is not None and o.status == "Filled",
        message="the order seen filled after the restart",
    )
    assert place_order(tree.handle("broker"), runtime.broker_status, request) == ref
    marker = place_order(
        tree.handle("broker"),
        runtime.broker_status,
        OrderRequest("AAPL", "BUY", 1, client_order_id="runtime-marker-1"),
    )

    def stored(trade_id: str) -> list[Event]:
        return list(database.events.query(EventQuery(types=(TRADE,), trade_id=trade_id)).events)

    wait_until(lambda: stored(marker), message="the marker order's TRADE event in the database")
    assert len(stored(ref)) == 1
    placed = database.events.query(EventQuery(types=(ORDER,), trade_id=ref)).events
    assert [e.context["action"] for e in placed].count("place") == 1
    at_gateway = simulator.call(
        lambda s: [o.status for o in s.brokerage.orders.values() if o.order_ref == ref]
    )
    assert at_gateway == ["Filled"]


def test_connection_settings_come_from_the_configuration(tmp_path: Path) -> None:
    """Timeouts and probe settings reach the broker actor; the gateway address is the
    configured one for ``ibkr``."""
    config = config_for(
        tmp_path,
        TRADINGBOT_BROKER="ibkr",
        TRADINGBOT_IB_HOST="10.0.0.7",
        TRADINGBOT_IB_PORT="4001",
        TRADINGBOT_IB_ACCOUNT="U765",
        TRADINGBOT_IB_CONNECT_TIMEOUT_S="3",
        TRADINGBOT_IB_REQUEST_TIMEOUT_S="4",
        TRADINGBOT_IB_PROBE_INTERVAL_S="2",
        TRADINGBOT_IB_PROBE_TIMEOUT_S="1",
        TRADINGBOT_IB_PROBE_MISSES="6",
    )
    settings = Runtime(config).broker_settings()
    assert (settings.host, settings.port, settings.account) == ("10.0.0.7", 4001, "U765")
    assert (settings.connect_timeout_s, settings.request_timeout_s) == (3.0, 4.0)
    assert (settings.probe_interval_s, settings.probe_timeout_s) == (2.0, 1.0)
    assert settings.max_probe_misses == 6


def test_the_built_in_simulator_uses_the_configured_account(tmp_path: Path) -> None:
    """With TRADINGBOT_IB_ACCOUNT set, the in-process simulator's account is that one, so
    the broker syncs (a gateway without the account would never answer its sync), and a fill's
    TRADE event is the gateway's execution (account, price, commission, currency, realized
    P&L, execution time, the strategy and signal that decided the order), as is its end."""
    config = config_for(tmp_path, TRADINGBOT_IB_ACCOUNT="DU777")
    bot = Runtime(config)
    bot.start()
    try:
        simulator, database, tree = bot.simulator, bot.database, bot.tree
        assert simulator is not None
        assert database is not None
        assert tree is not None
        assert simulator.call(lambda s: s.brokerage.account_ids) == ["DU777"]
        wait_until(
            lambda: bot.broker_status.view().state == ConnectionState.SYNCED,
            timeout_s=15,
            message="the broker to sync with the DU777 simulator",
        )
        wait_until(lambda: bot.broker_status.trading_blocked() is None, 20, "trading to open")
        request = OrderRequest("MSFT", "BUY", 3, strategy_id="dip", signal_id="sig-7")
        ref = place_order(tree.handle("broker"), bot.broker_status, request)
        [trade] = wait_until(
            lambda: database.events.query(EventQuery(types=(TRADE,), trade_id=ref)).events,
            message="the TRADE event in the database",
        )
        [execution] = simulator.call(
            lambda s: [e for e in s.brokerage.executions if e.order.order_ref == ref]
        )
        assert (trade.strategy_id, trade.source) == ("dip", "broker")
        assert trade.context == {
            "symbol": "MSFT",
            "side": "BUY",
            "quantity": 3.0,
            "price": execution.price,
            "commission": execution.commission,
            "currency": "USD",
            "realized_pnl": execution.realized_pnl,
            "order_ref": ref,
            "order_id": execution.order.order_id,
            "perm_id": execution.order.perm_id,
            "exec_id": execution.exec_id,
            "account": "DU777",
            "exec_time": pytest.approx(execution.time.timestamp(), abs=1.0),
            "strategy_id": "dip",
            "signal_id": "sig-7",
        }
        [end] = wait_until(
            lambda: [
                e
                for e in database.events.query(EventQuery(types=(ORDER,), trade_id=ref)).events
                if e.context.get("action") == "final"
            ],
            message="the order's end in our books",
        )
        assert end.strategy_id == "dip"
        record = bot.broker_status.order(ref)  # what the strategies API shows
        assert record is not None
        assert (record.status, record.filled, record.avg_fill_price) == (
            "Filled",
            3.0,
            execution.avg_price,
        )
        assert (record.order_id, record.perm_id) == (
            execution.order.order_id,
            execution.order.perm_id,
        )
        assert end.context == {
            "strategy_id": "dip",
            "signal_id": "sig-7",
            "order_ref": ref,
            "action": "final",
            "status": "Filled",
            "filled": 3.0,
            "avg_fill_price": execution.avg_price,
            "account": "DU777",
        }
    finally:
        bot.stop()
