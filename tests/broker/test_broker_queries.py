"""Positions, the portfolio with marks, account values, executions and open orders through
the broker actor.

Every answer is checked against the simulator's own books, and every failure mode
(not synced, frozen gateway, unknown query) must raise, never answer with an empty list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from brokerharness import BrokerHarness, wait_until

from support.ib_errors import IbErrorGuard
from tradingbot.broker import (
    BrokerNotReady,
    ConnectionState,
    OrderRequest,
    account_values,
    cancel_order,
    executions,
    open_orders,
    place_order,
    portfolio,
    positions,
)
from tradingbot.broker.messages import Query
from tradingbot.gateway import SimulatorThread


def filled(broker: BrokerHarness, ref: str) -> None:
    wait_until(
        lambda: (o := broker.status.order(ref)) is not None and o.status == "Filled",
        message=f"order {ref} to fill",
    )


def test_positions_match_the_gateway_after_a_fill(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """A seeded position and one bought through the bot are reported with exact quantities."""
    account = sim.call(lambda s: s.brokerage.account_ids[0])
    sim.call(lambda s: s.brokerage.seed_position(account, "MSFT", -25, 401.5))
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    filled(broker, place_order(handle, broker.status, OrderRequest("AAPL", "BUY", 10)))

    found = {p.symbol: p for p in positions(handle, broker.status)}
    expected = sim.call(
        lambda s: {
            p.instrument.symbol: (p.quantity, p.avg_cost, p.instrument.con_id)
            for p in s.brokerage.account_positions(account)
        }
    )
    assert {sym: (p.quantity, p.avg_cost, p.con_id) for sym, p in found.items()} == expected
    assert found["MSFT"].quantity == -25
    assert found["AAPL"].quantity == 10
    assert all(p.account == account for p in found.values())


def test_account_values_are_the_gateways(broker: BrokerHarness, sim: SimulatorThread) -> None:
    """The account values query returns the gateway's cash and net liquidation for the account."""
    broker.wait_state(ConnectionState.SYNCED)
    account = sim.call(lambda s: s.brokerage.account_ids[0])
    values = account_values(broker.tree.handle("broker"), broker.status)
    by_tag = {(v.tag, v.currency): v.value for v in values if v.account == account}
    cash = sim.call(lambda s: s.brokerage.accounts[account].cash)
    assert float(by_tag[("TotalCashValue", "USD")]) == pytest.approx(cash)
    assert ("NetLiquidation", "USD") in by_tag


def test_the_portfolio_has_the_gateways_marks_of_now(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """Each open position comes with the gateway's current market price, value and
    unrealized P&L, and the net liquidation read right after is as fresh."""
    account = sim.call(lambda s: s.brokerage.account_ids[0])
    sim.call(lambda s: s.brokerage.seed_position(account, "MSFT", -25, 401.5))
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    for price in (390.0, 410.0):  # the mark follows the price: a fresh request each time
        sim.call(lambda s, price=price: s.brokerage.prices.set_price("MSFT", price))
        [item] = [i for i in portfolio(handle, broker.status) if i.symbol == "MSFT"]
        assert (item.account, item.quantity, item.avg_cost) == (account, -25, 401.5)
        assert item.market_price == pytest.approx(price)
        assert item.market_value == pytest.approx(-25 * price)
        assert item.unrealized_pnl == pytest.approx((price - 401.5) * -25)
        values = account_values(handle, broker.status)
        [net] = [v.value for v in values if v.tag == "NetLiquidation" and v.account == account]
        cash = sim.call(lambda s: s.brokerage.accounts[account].cash)
        assert float(net) == pytest.approx(cash - 25 * price)


def test_executions_carry_our_order_ref_and_commission(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """An execution of our order comes back with our order ref, side, quantity, price, commission
    and time."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    ref = place_order(handle, broker.status, OrderRequest("AAPL", "SELL", 4))
    filled(broker, ref)
    [execution] = [e for e in executions(handle, broker.status) if e.order_ref == ref]
    sim_exec = sim.call(lambda s: [e for e in s.brokerage.executions if e.order.order_ref == ref])
    assert len(sim_exec) == 1
    assert execution.exec_id == sim_exec[0].exec_id
    assert (execution.side, execution.quantity, execution.symbol) == ("SELL", 4.0, "AAPL")
    assert execution.price == pytest.approx(sim_exec[0].price)
    assert execution.commission is not None
    assert execution.commission > 0
    assert execution.time is not None


def test_open_orders_show_a_resting_order_until_it_is_cancelled(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """A resting limit order is listed among the open orders until it is cancelled."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    limit = round(sim.call(lambda s: s.brokerage.prices.price("MSFT")) * 0.5, 2)
    ref = place_order(handle, broker.status, OrderRequest("MSFT", "BUY", 2, "LMT", limit))
    wait_until(
        lambda: any(o.order_ref == ref for o in open_orders(handle, broker.status)),
        message="the resting order among the open orders",
    )
    [order] = [o for o in open_orders(handle, broker.status) if o.order_ref == ref]
    assert (order.side, order.quantity, order.order_type, order.limit_price) == (
        "BUY",
        2.0,
        "LMT",
        limit,
    )
    cancel_order(handle, broker.status, ref)
    wait_until(
        lambda: not any(o.order_ref == ref for o in open_orders(handle, broker.status)),
        message="the cancelled order to leave the open orders",
    )


def test_queries_while_disconnected_are_refused_at_once(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """Every query made while the gateway is unreachable is refused at once with a not-synced
    error."""
    broker.wait_state(ConnectionState.SYNCED)
    sim.run(sim.call(lambda s: s.refuse_connections(30.0)))
    broker.wait_state(ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
    handle = broker.tree.handle("broker")
    for query in (positions, portfolio, account_values, executions, open_orders):
        with pytest.raises(BrokerNotReady, match="not synced"):
            query(handle, broker.status, timeout_s=5.0)


@pytest.fixture
def slow_prober(sim: SimulatorThread) -> Iterator[BrokerHarness]:
    """A broker whose heartbeat probe will not notice a freeze during the test."""
    harness = BrokerHarness(sim.port, probe_interval_s=60.0, request_timeout_s=0.5)
    harness.start()
    yield harness
    harness.stop()


def test_a_frozen_gateway_is_a_timeout_never_an_empty_answer(
    slow_prober: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """The gateway keeps the socket open but stops answering: the position query fails
    with a timeout naming the query; it does not return "no positions"."""
    ib_errors.allow(r"positions|timeout|Timeout")
    slow_prober.wait_state(ConnectionState.SYNCED)
    handle = slow_prober.tree.handle("broker")
    assert positions(handle, slow_prober.status) is not None
    sim.call(lambda s: s.freeze())
    try:
        with pytest.raises(TimeoutError, match="positions: no answer from the gateway"):
            positions(handle, slow_prober.status, timeout_s=10.0)
        with pytest.raises(TimeoutError, match="executions: no answer"):
            executions(handle, slow_prober.status, timeout_s=10.0)
    finally:
        sim.call(lambda s: s.unfreeze())
    wait_until(
        lambda: positions(handle, slow_prober.status) is not None,
        message="positions answered again after the freeze",
    )


def test_an_unknown_query_is_refused_by_name(broker: BrokerHarness) -> None:
    """A query the broker does not know is refused with an error naming it."""
    broker.wait_state(ConnectionState.SYNCED)
    message = Query("balances")
    broker.tree.handle("broker").tell(message)
    with pytest.raises(ValueError, match="unknown query 'balances'"):
        message.reply.result(5.0)


def test_waiting_for_an_order_outcome(broker: BrokerHarness, sim: SimulatorThread) -> None:
    """wait_for_order wakes on the fill; for a resting order it gives up after the timeout."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    ref = place_order(handle, broker.status, OrderRequest("AAPL", "BUY", 6))
    record = broker.status.wait_for_order(ref, {"Filled"}, timeout_s=10.0)
    assert record is not None
    assert (record.status, record.filled) == ("Filled", 6.0)
    limit = round(sim.call(lambda s: s.brokerage.prices.price("AAPL")) * 0.5, 2)
    resting = place_order(handle, broker.status, OrderRequest("AAPL", "BUY", 1, "LMT", limit))
    assert broker.status.wait_for_order(resting, {"Submitted"}, timeout_s=10.0) is not None
    assert broker.status.wait_for_order(resting, {"Filled"}, timeout_s=0.2) is None


def test_executions_since_a_moment_are_filtered_by_the_gateway(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """Asking for executions since a moment returns only those after it."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    ref = place_order(handle, broker.status, OrderRequest("AAPL", "BUY", 2))
    filled(broker, ref)
    now = datetime.now(UTC)
    recent = executions(handle, broker.status, since=now - timedelta(minutes=5))
    assert [e.order_ref for e in recent] == [ref]
    assert executions(handle, broker.status, since=now + timedelta(hours=1)) == []
