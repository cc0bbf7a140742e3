"""Partial fills through the broker actor: the simulator fills in several executions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from brokerharness import BrokerHarness, wait_until

from support.simulator import running_simulator
from tradingbot.broker import ConnectionState, OrderRequest, place_order
from tradingbot.events import ORDER, TRADE
from tradingbot.gateway import SimulatorThread


@pytest.fixture
def partial_sim() -> Iterator[SimulatorThread]:
    """A simulator that fills at most 100 shares per execution."""
    with running_simulator(max_fill_shares=100) as thread:
        yield thread


@pytest.fixture
def partial_broker(partial_sim: SimulatorThread) -> Iterator[BrokerHarness]:
    """A broker actor connected to ``partial_sim``."""
    harness = BrokerHarness(partial_sim.port)
    harness.start()
    yield harness
    harness.stop()


def test_partially_filled_order_is_one_trade_per_execution_and_one_final_order(
    partial_broker: BrokerHarness, partial_sim: SimulatorThread
) -> None:
    """An order of 250 filled as 100 + 100 + 50 becomes three TRADE events (one per
    execution id, each with its commission) and a single final ORDER event, stored once."""
    broker = partial_broker
    broker.wait_state(ConnectionState.SYNCED)
    ref = place_order(broker.tree.handle("broker"), broker.status, OrderRequest("AAPL", "BUY", 250))
    wait_until(
        lambda: (o := broker.status.order(ref)) is not None and o.status == "Filled",
        message="the order to fill",
    )
    trades = wait_until(
        lambda: t if len(t := broker.sink.of_type(TRADE)) >= 3 else None,
        message="a TRADE event per execution",
    )
    assert sorted(t.context["quantity"] for t in trades) == [50.0, 100.0, 100.0]
    assert all(t.trade_id == ref for t in trades)
    assert all(t.context["commission"] is not None for t in trades)
    assert len({t.context["exec_id"] for t in trades}) == 3
    executions = partial_sim.call(lambda s: [e.exec_id for e in s.brokerage.executions])
    assert sorted(executions) == sorted(t.context["exec_id"] for t in trades)
    actions = [e.context["action"] for e in broker.sink.of_type(ORDER)]
    assert actions == ["place", "final"]
    assert len(broker.sink.of_type(TRADE)) == 3
