"""IB's 1101 (connectivity restored, data lost) against 1102 (restored, data kept).

After 1101 the gateway may have dropped order updates, fills, account and market data
subscriptions, so the broker asks for them again; after 1102 nothing was lost and it
asks for nothing. Shown with the real ib_async client against the simulator, which
counts the requests it receives.
"""

from __future__ import annotations

from typing import Any

from brokerharness import BrokerHarness, wait_until

from support.ib_errors import IbErrorGuard
from tradingbot.broker import (
    ConnectionState,
    OrderRequest,
    place_order,
    positions,
    subscribe_market_data,
)
from tradingbot.events import TRADE
from tradingbot.gateway import SimulatorThread

# TWS request message ids (ib_async.client): what the broker asks the gateway for.
REQ_MKT_DATA, REQ_OPEN_ORDERS, REQ_EXECUTIONS = 1, 5, 7
WATCHED = (REQ_OPEN_ORDERS, REQ_EXECUTIONS, REQ_MKT_DATA)


class Discard:
    """A market data subscriber that ignores its quotes."""

    def tell(self, message: Any) -> None:
        return None


def requests(sim: SimulatorThread) -> list[int]:
    """How many open-orders, executions and market data requests the gateway received."""
    return sim.call(lambda s: [s.requests_received[i] for i in WATCHED])


def fill_unannounced(sim: SimulatorThread, symbol: str) -> str:
    """The gateway fills our resting order but tells the client nothing: the lost data."""

    def fill(s: Any) -> str:
        s.brokerage.prices.set_price(symbol, 1.0)
        [execution] = s.brokerage.match_resting()
        return str(execution.exec_id)

    return sim.call(fill)


def test_data_lost_recovers_a_missed_fill_data_kept_asks_for_nothing(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """A fill the client missed while IB was cut off is recorded as one TRADE event after
    1101 (data lost: open orders, executions and market data are requested again), while
    1102 (data kept) sends no request at all."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    subscribe_market_data(handle, broker.status, "AAPL", Discard())
    price = sim.call(lambda s: s.brokerage.prices.price("MSFT"))
    ref = place_order(
        handle, broker.status, OrderRequest("MSFT", "BUY", 5, "LMT", round(price * 0.5, 2))
    )
    wait_until(
        lambda: (o := broker.status.order(ref)) is not None and o.status == "Submitted",
        message="the limit order to rest",
    )
    exec_id = fill_unannounced(sim, "MSFT")

    before = requests(sim)
    sim.call(lambda s: s.connectivity_lost())
    broker.wait_state(ConnectionState.DEGRADED)
    sim.call(lambda s: s.connectivity_restored(data_lost=False))
    broker.wait_state(ConnectionState.SYNCED)
    # A barrier: the actor handled the 1102 before this query, and the loop sends in
    # order, so any request the 1102 caused reached the gateway before this one's answer.
    positions(handle, broker.status)
    assert requests(sim) == before
    assert broker.sink.of_type(TRADE) == []

    sim.call(lambda s: s.connectivity_lost())
    broker.wait_state(ConnectionState.DEGRADED)
    sim.call(lambda s: s.connectivity_restored(data_lost=True))
    wait_until(lambda: broker.sink.of_type(TRADE) != [], message="the missed fill recorded")
    [trade] = broker.sink.of_type(TRADE)
    assert (trade.context["exec_id"], trade.context["order_ref"]) == (exec_id, ref)
    assert trade.context["quantity"] == 5
    expected = [n + 1 for n in before]
    wait_until(lambda: requests(sim) == expected, message=f"one request each of {WATCHED}")
    broker.wait_state(ConnectionState.SYNCED)
    positions(handle, broker.status)  # the same barrier: nothing more was asked for
    assert requests(sim) == expected
    assert len(broker.sink.of_type(TRADE)) == 1
