"""Order types through the real ib_async client: what-if, brackets, OCA, stops, cancels."""

from __future__ import annotations

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Order, Stock, StopOrder
from simharness import IbErrorGuard, connected, run, running_simulator, wait_for

from tradingbot.gateway.protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION

CANCELLED = r"Error 202, reqId \d+: Order Canceled"


@pytest.mark.parametrize("version", [MIN_SERVER_VERSION, MAX_SERVER_VERSION])
def test_what_if_order_previews_margin_and_never_executes(version: int) -> None:
    """whatIfOrder answers margin before/after and a commission, and nothing is booked
    (at the lowest and highest server version: the placeOrder layout differs)."""

    async def scenario() -> None:
        async with running_simulator(max_server_version=version) as sim, connected(sim) as ib:
            state = await ib.whatIfOrderAsync(
                Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 100)
            )
            price = sim.brokerage.prices.price("AAPL")
            assert float(state.initMarginBefore) == 0
            assert abs(float(state.initMarginChange) - 100 * price * 0.5) < 100 * 0.02
            assert float(state.equityWithLoanAfter) > 0
            assert state.commission == 1.0
            assert sim.brokerage.executions == []
            assert sim.brokerage.orders == {}
            assert ib.positions() == []

    run(scenario())


def _bracket(ib: IB, price: float) -> tuple[Order, Order, Order]:
    parent, take, stop = ib.bracketOrder(
        "BUY", 10, round(price * 0.98, 2), round(price * 1.05, 2), round(price * 0.9, 2)
    )
    return parent, take, stop


def test_bracket_children_wait_for_the_parent_then_one_cancels_the_other(
    ib_errors: IbErrorGuard,
) -> None:
    """A bracket sent with transmit=False/True fills its parent first; the take-profit
    fill then cancels the stop leg (children are one-cancels-all)."""
    ib_errors.allow(CANCELLED)

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            stock = Stock("MSFT", "SMART", "USD")
            price = sim.brokerage.prices.price("MSFT")
            parent, take, stop = _bracket(ib, price)  # the parent rests below the market
            trades = [ib.placeOrder(stock, o) for o in (parent, take, stop)]
            await wait_for(lambda: trades[0].orderStatus.status == "Submitted")
            await wait_for(lambda: trades[2].orderStatus.status == "PreSubmitted")
            assert trades[1].orderStatus.status == "PreSubmitted"
            assert sim.brokerage.executions == []
            sim.brokerage.prices.set_price("MSFT", round(price * 0.97, 2))
            await wait_for(lambda: trades[0].orderStatus.status == "Filled")
            await wait_for(lambda: trades[1].orderStatus.status == "Submitted")
            sim.brokerage.prices.set_price("MSFT", round(price * 1.06, 2))
            await wait_for(lambda: trades[1].orderStatus.status == "Filled")
            await wait_for(lambda: trades[2].orderStatus.status == "Cancelled")
            assert [p.quantity for p in sim.brokerage.account_positions()] == [0]

    run(scenario())


def test_untransmitted_order_never_works_until_the_group_is_sent() -> None:
    """An order with transmit=False stays PreSubmitted even when marketable."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            order = MarketOrder("BUY", 5, transmit=False)
            trade = ib.placeOrder(Stock("IBM", "SMART", "USD"), order)
            await wait_for(lambda: trade.orderStatus.status == "PreSubmitted")
            sim.tick()
            assert sim.brokerage.executions == []
            order.transmit = True
            ib.placeOrder(Stock("IBM", "SMART", "USD"), order)
            await wait_for(lambda: trade.orderStatus.status == "Filled")

    run(scenario())


def test_oca_group_fill_cancels_the_other_orders(ib_errors: IbErrorGuard) -> None:
    """When one order of an OCA group fills, the others are cancelled."""
    ib_errors.allow(CANCELLED)

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            stock = Stock("XOM", "SMART", "USD")
            price = sim.brokerage.prices.price("XOM")
            low = LimitOrder("BUY", 3, round(price - 10, 2), ocaGroup="g1", ocaType=1)
            high = LimitOrder("SELL", 3, round(price + 10, 2), ocaGroup="g1", ocaType=1)
            a, b = ib.placeOrder(stock, low), ib.placeOrder(stock, high)
            await wait_for(lambda: b.orderStatus.status == "Submitted")
            sim.brokerage.prices.set_price("XOM", round(price + 11, 2))
            await wait_for(lambda: b.orderStatus.status == "Filled")
            await wait_for(lambda: a.orderStatus.status == "Cancelled")

    run(scenario())


def test_trailing_percent_and_stop_limit_work_at_the_lowest_version() -> None:
    """At server version 157 a TRAIL by percent and a STP LMT are read correctly: the
    trail sits 2 % under the price, the stop limit triggers and fills at its limit."""

    async def scenario() -> None:
        async with (
            running_simulator(max_server_version=MIN_SERVER_VERSION) as sim,
            connected(sim) as ib,
        ):
            stock = Stock("IBM", "SMART", "USD")
            sim.brokerage.prices.set_price("IBM", 200.0)
            trail = Order(action="SELL", totalQuantity=1, orderType="TRAIL", trailingPercent=2.0)
            trailing = ib.placeOrder(stock, trail)
            stp_lmt = Order(
                action="BUY",
                totalQuantity=1,
                orderType="STP LMT",
                auxPrice=205.0,
                lmtPrice=206.0,
            )
            stop_limit = ib.placeOrder(stock, stp_lmt)
            await wait_for(lambda: stop_limit.orderStatus.status == "Submitted")
            held = sim.brokerage.orders[trailing.order.permId]
            assert held.trail_stop_price is not None
            assert 195.0 < held.trail_stop_price < 197.0
            sim.brokerage.prices.set_price("IBM", 205.5)
            await wait_for(lambda: stop_limit.orderStatus.status == "Filled")
            assert stop_limit.fills[0].execution.price <= 206.0

    run(scenario())


def test_stop_and_trailing_stop_trigger_on_the_price_path() -> None:
    """A sell stop fills once the price falls to it; a trailing stop follows the price up
    and fills when it falls back by the trailing amount."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            stock = Stock("JPM", "SMART", "USD")
            sim.brokerage.prices.set_price("JPM", 100.0)
            stop = ib.placeOrder(stock, StopOrder("SELL", 2, 95.0))
            trail = Order(action="SELL", totalQuantity=2, orderType="TRAIL", auxPrice=3.0)
            trailing = ib.placeOrder(stock, trail)
            await wait_for(lambda: trailing.orderStatus.status == "Submitted")
            sim.brokerage.prices.set_price("JPM", 110.0)
            sim.tick()
            trail_stop = sim.brokerage.orders[trailing.order.permId].trail_stop_price
            assert trail_stop is not None
            assert 106 < trail_stop < 108  # 110 - 3, one random-walk step on
            sim.brokerage.prices.set_price("JPM", 105.0)
            await wait_for(lambda: trailing.orderStatus.status == "Filled")
            assert stop.orderStatus.status == "Submitted"
            sim.brokerage.prices.set_price("JPM", 94.5)
            await wait_for(lambda: stop.orderStatus.status == "Filled")

    run(scenario())


def test_global_cancel_cancels_every_clients_open_orders(ib_errors: IbErrorGuard) -> None:
    """reqGlobalCancel from one client cancels the resting orders of every client."""
    ib_errors.allow(CANCELLED)

    async def scenario() -> None:
        async with (
            running_simulator() as sim,
            connected(sim, client_id=1) as one,
            connected(sim, client_id=2) as two,
        ):
            mine = one.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 1.0))
            theirs = two.placeOrder(Stock("IBM", "SMART", "USD"), LimitOrder("BUY", 1, 1.0))
            await wait_for(lambda: theirs.orderStatus.status == "Submitted")
            await wait_for(lambda: mine.orderStatus.status == "Submitted")
            one.reqGlobalCancel()
            await wait_for(lambda: mine.orderStatus.status == "Cancelled")
            await wait_for(lambda: theirs.orderStatus.status == "Cancelled")
            assert sim.brokerage.open_orders() == []

    run(scenario())
