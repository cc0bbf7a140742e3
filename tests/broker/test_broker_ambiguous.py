"""Ambiguous order outcomes, idempotent retries and cancels, through real sockets."""

from __future__ import annotations

import pytest
from brokerharness import BrokerHarness, at_gateway, wait_until

from support.ib_errors import IbErrorGuard
from tradingbot.broker import (
    BrokerNotReady,
    ConnectionState,
    OrderRequest,
    TradingBlocked,
    UnknownOrder,
    cancel_order,
    place_order,
)
from tradingbot.broker.status import KILL_SWITCH_GATE
from tradingbot.events import ORDER, TRADE, Event
from tradingbot.gateway import SimulatorThread

# What ib_async logs when the gateway drops the connection; a close with unread data in
# the socket is a reset (errno 104) rather than an end of stream.
DROPPED = (
    r"API connection failed|Make sure API port|ConnectionRefusedError|Connect call failed"
    r"|TimeoutError|timed out|Peer closed connection|Socket disconnect"
    r"|Connection reset by peer"
)


def events(broker: BrokerHarness, type_: str, ref: str) -> list[Event]:
    """Events of ``type_`` recorded for our order ``ref``."""
    return [e for e in broker.sink.of_type(type_) if e.trade_id == ref]


def placements(broker: BrokerHarness, ref: str) -> list[Event]:
    """The ORDER events that placed our order ``ref`` (one per order sent)."""
    return [e for e in events(broker, ORDER, ref) if e.context.get("action") == "place"]


def place(broker: BrokerHarness, request: OrderRequest) -> str:
    """Place ``request`` through the harness's broker actor."""
    return place_order(broker.tree.handle("broker"), broker.status, request)


def status_of(broker: BrokerHarness, ref: str) -> str:
    """Our current status of order ``ref``."""
    record = broker.status.order(ref)
    assert record is not None
    return record.status


def settle(broker: BrokerHarness, key: str) -> None:
    """Place a marker market order and wait for its TRADE: everything told before is handled."""
    ref = place(broker, OrderRequest("AAPL", "BUY", 1, client_order_id=key))
    wait_until(lambda: events(broker, TRADE, ref), message="the marker order's TRADE event")


def test_retry_with_the_same_key_creates_one_order(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """Placing twice with the same client_order_id returns the same id and sends one order."""
    broker.wait_state(ConnectionState.SYNCED)
    request = OrderRequest("AAPL", "BUY", 2, client_order_id="retry-1")
    ref = place(broker, request)
    assert ref == "TB-retry-1"
    assert place(broker, request) == ref
    wait_until(lambda: status_of(broker, ref) == "Filled", message="the order to fill")
    assert place(broker, request) == ref
    settle(broker, "marker-1")
    assert at_gateway(sim, ref) == ["Filled"]
    assert len(placements(broker, ref)) == 1
    assert len(events(broker, TRADE, ref)) == 1


def test_a_placed_order_is_recorded_whole_then_sent_as_recorded(sim: SimulatorThread) -> None:
    """The ORDER event names the order, account, strategy and signal; our record holds the
    order as asked plus the gateway's order id once the caller has its answer; the gateway
    gets it for that account, in dollars, at that limit."""
    account = sim.call(lambda s: s.brokerage.account_ids[0])
    broker = BrokerHarness(sim.port, account=account)
    broker.start()
    try:
        broker.wait_state(ConnectionState.SYNCED)
        limit = round(sim.call(lambda s: s.brokerage.prices.price("MSFT")) * 0.5, 2)
        request = OrderRequest(
            "MSFT", "BUY", 3, "LMT", limit, client_order_id="whole-1", strategy_id="dip",
            signal_id="sig-2",
        )  # fmt: skip
        ref = place(broker, request)
        record = broker.status.order(ref)  # as the caller got its answer
        [gateway] = wait_until(
            lambda: sim.call(
                lambda s: [o for o in s.brokerage.orders.values() if o.order_ref == ref]
            ),
            message="the order at the gateway",
        )
        assert record is not None
        assert (record.symbol, record.side, record.quantity) == ("MSFT", "BUY", 3)
        assert (record.order_type, record.limit_price) == ("LMT", limit)
        assert (record.client_order_id, record.strategy_id, record.signal_id) == (
            "whole-1",
            "dip",
            "sig-2",
        )
        assert record.order_id == gateway.order_id
        assert (gateway.account_id, gateway.lmt_price) == (account, limit)
        assert gateway.instrument.currency == "USD"
        [placed] = placements(broker, ref)
        assert placed.message == f"BUY 3 MSFT LMT {limit:g}"
        assert placed.strategy_id == "dip"
        assert placed.context == {
            "order_ref": ref,
            "symbol": "MSFT",
            "side": "BUY",
            "quantity": 3,
            "order_type": "LMT",
            "limit_price": limit,
            "client_order_id": "whole-1",
            "action": "place",
            "account": account,
            "strategy_id": "dip",
            "signal_id": "sig-2",
        }
        # Trading paused: a retry of this key is no new order, it gets its order back.
        broker.status.block_trading("paused by the test", gate=KILL_SWITCH_GATE)
        assert place(broker, request) == ref
        with pytest.raises(TradingBlocked, match="paused by the test"):
            place(broker, OrderRequest("MSFT", "BUY", 1, client_order_id="whole-2"))
    finally:
        broker.stop()


def test_bad_client_order_id_is_rejected() -> None:
    """A client_order_id with spaces or over 40 characters is a ValueError."""
    with pytest.raises(ValueError, match="client_order_id"):
        OrderRequest("AAPL", "BUY", 1, client_order_id="has space")
    with pytest.raises(ValueError, match="client_order_id"):
        OrderRequest("AAPL", "BUY", 1, client_order_id="x" * 41)


def test_connection_closed_right_after_an_order_is_sent(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """The gateway closes the connection as soon as it has the order: after the reconnect
    there is one order with that orderRef, one TRADE event, and a retry sends nothing."""
    ib_errors.allow(DROPPED)
    broker.wait_state(ConnectionState.SYNCED)
    request = OrderRequest("MSFT", "BUY", 5, client_order_id="closed-1")
    ref = place(broker, request)
    wait_until(lambda: at_gateway(sim, ref), message="the order to reach the gateway")
    sim.call(lambda s: s.close_all_connections())
    wait_until(lambda: broker.node().restarts >= 1, message="the broker to restart")
    broker.wait_state(ConnectionState.SYNCED, timeout_s=15)
    wait_until(lambda: status_of(broker, ref) == "Filled", message="the order seen filled")
    assert place(broker, request) == ref
    settle(broker, "marker-2")
    assert at_gateway(sim, ref) == ["Filled"]
    assert len(placements(broker, ref)) == 1
    [trade] = events(broker, TRADE, ref)
    assert (trade.context["side"], trade.context["quantity"]) == ("BUY", 5.0)


def test_order_lost_in_a_frozen_gateway_stays_unresolved(
    sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """An order sent to a frozen gateway whose connection then closes stays unresolved (in
    the status and the snapshot), is never marked rejected, a retry sends nothing, and a
    cancel of it is refused as not open at the gateway, with no CANCEL event stored."""
    ib_errors.allow(DROPPED)
    # Slow probes: the order must be sent before a missed probe degrades the connection.
    broker = BrokerHarness(sim.port, probe_interval_s=2.0, probe_timeout_s=5.0)
    broker.start()
    try:
        _frozen_scenario(broker, sim)
    finally:
        broker.stop()


def _frozen_scenario(broker: BrokerHarness, sim: SimulatorThread) -> None:
    broker.wait_state(ConnectionState.SYNCED)
    sim.call(lambda s: s.freeze())
    request = OrderRequest("AAPL", "BUY", 1, client_order_id="frozen-1")
    ref = place(broker, request)
    sim.call(lambda s: s.close_all_connections())
    wait_until(lambda: status_of(broker, ref) == "Unresolved", message="the order to be unresolved")
    wait_until(
        lambda: ref in broker.node().details.get("unresolved_orders", []),
        message="the unresolved order in the snapshot",
    )
    sim.call(lambda s: s.unfreeze())
    broker.wait_state(ConnectionState.SYNCED, timeout_s=15)
    settle(broker, "marker-3")
    assert status_of(broker, ref) == "Unresolved"
    assert place(broker, request) == ref
    settle(broker, "marker-5")  # a retry that did send would be at the gateway by now
    assert at_gateway(sim, ref) == []
    assert status_of(broker, ref) == "Unresolved"
    assert events(broker, TRADE, ref) == []
    # Not open at the gateway: a cancel is refused before anything is stored or sent.
    with pytest.raises(ValueError, match=f"order {ref} is not open at the gateway"):
        cancel_order(broker.tree.handle("broker"), broker.status, ref)
    assert [e.context.get("action") for e in events(broker, ORDER, ref)] == ["place"]


def test_broker_crash_with_an_order_in_flight(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """The broker actor crashes right after sending an order: after its restart there is one
    order with that orderRef at the gateway and its fill is one TRADE event."""
    ib_errors.allow(DROPPED)
    broker.wait_state(ConnectionState.SYNCED)
    request = OrderRequest("MSFT", "SELL", 4, client_order_id="crash-1")
    ref = place(broker, request)
    broker.tree.crash("broker")
    wait_until(lambda: broker.node().restarts >= 1, message="the broker to restart")
    broker.wait_state(ConnectionState.SYNCED, timeout_s=15)
    wait_until(lambda: status_of(broker, ref) == "Filled", message="the order seen filled")
    assert place(broker, request) == ref
    settle(broker, "marker-4")
    assert at_gateway(sim, ref) == ["Filled"]
    assert len(placements(broker, ref)) == 1
    [trade] = events(broker, TRADE, ref)
    assert (trade.context["side"], trade.context["quantity"]) == ("SELL", 4.0)


def test_cancel_a_resting_limit_order(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """A resting limit order is cancelled by its id; the cancel is an ORDER event naming the
    order, its gateway id and the strategy and signal behind it, and the gateway's order ends
    Cancelled; unknown and final orders are refused clearly."""
    broker.wait_state(ConnectionState.SYNCED)
    market = sim.call(lambda s: s.brokerage.prices.price("MSFT"))
    request = OrderRequest(
        "MSFT", "BUY", 3, "LMT", round(market * 0.5, 2), strategy_id="dip", signal_id="sig-1"
    )
    ref = place(broker, request)
    wait_until(lambda: status_of(broker, ref) == "Submitted", message="the order to rest")
    gateway_id = sim.call(
        lambda s: [o.order_id for o in s.brokerage.orders.values() if o.order_ref == ref]
    )
    handle = broker.tree.handle("broker")
    assert cancel_order(handle, broker.status, ref) == ref
    wait_until(lambda: status_of(broker, ref) == "Cancelled", message="the order to be cancelled")
    assert at_gateway(sim, ref) == ["Cancelled"]
    wait_until(lambda: len(events(broker, ORDER, ref)) == 3, message="the order's end recorded")
    recorded = events(broker, ORDER, ref)
    assert [e.context.get("action") for e in recorded] == ["place", "cancel", "final"]
    assert recorded[-1].context["status"] == "Cancelled"
    cancel = recorded[1]
    assert (cancel.trade_id, cancel.strategy_id) == (ref, "dip")
    assert {k: cancel.context.get(k) for k in ("order_ref", "order_id", "strategy_id")} == {
        "order_ref": ref,
        "order_id": gateway_id[0],
        "strategy_id": "dip",
    }
    assert cancel.context["signal_id"] == "sig-1"
    with pytest.raises(ValueError, match="not open"):
        cancel_order(handle, broker.status, ref)
    with pytest.raises(UnknownOrder, match="unknown order id"):
        cancel_order(handle, broker.status, "TB-nope")


def test_cancel_while_disconnected_is_refused_at_once(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """While the gateway refuses connections a cancel is refused with BrokerNotReady."""
    ib_errors.allow(DROPPED)
    broker.wait_state(ConnectionState.SYNCED)
    sim.run(sim.call(lambda s: s.refuse_connections(2.0)))
    broker.wait_state(ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
    with pytest.raises(BrokerNotReady, match="not synced"):
        cancel_order(broker.tree.handle("broker"), broker.status, "TB-any")
    broker.wait_state(ConnectionState.SYNCED, timeout_s=15)
