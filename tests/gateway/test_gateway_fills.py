"""Partial fills and OCA reduce groups through the real ib_async client."""

from __future__ import annotations

import pytest
from ib_async import LimitOrder, MarketOrder, Order, Stock, StopOrder
from simharness import IbErrorGuard, connected, run, running_simulator, wait_for

from tradingbot.gateway import Brokerage, PriceModel

CANCELLED = r"Error 202, reqId \d+: Order Canceled"


def test_whole_fills_are_the_default() -> None:
    """Without the option an order of 1,000 shares fills in one execution."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 1000))
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            assert [f.execution.shares for f in trade.fills] == [1000]

    run(scenario())


def test_large_order_fills_in_several_executions_with_cumulative_status() -> None:
    """With max_fill_shares=100 a market order of 250 fills as 100, 100 and 50, one per
    tick: each execution has its commission report, the status in between is Submitted
    with the cumulative filled and remaining, then Filled; reqExecutions lists all three."""

    async def scenario() -> None:
        brokerage = Brokerage(prices=PriceModel(1), max_fill_shares=100)
        async with running_simulator(brokerage=brokerage) as sim, connected(sim) as ib:
            statuses: list[tuple[str, float, float]] = []
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 250))
            trade.statusEvent += lambda t: statuses.append(
                (t.orderStatus.status, t.orderStatus.filled, t.orderStatus.remaining)
            )
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            await wait_for(lambda: all(f.commissionReport.execId for f in trade.fills))
            assert [f.execution.shares for f in trade.fills] == [100, 100, 50]
            assert [f.execution.cumQty for f in trade.fills] == [100, 200, 250]
            assert all(f.commissionReport.commission == 1.0 for f in trade.fills)
            assert ("Submitted", 100, 150) in statuses
            assert ("Submitted", 200, 50) in statuses
            assert statuses[-1] == ("Filled", 250, 0)
            [position] = ib.positions()
            assert position.position == 250
            fills = await ib.reqExecutionsAsync()
            assert len([f for f in fills if f.execution.orderId == trade.order.orderId]) == 3

    run(scenario())


@pytest.mark.parametrize("oca_type", [2, 3])
def test_oca_reduce_types_shrink_the_other_orders_by_what_executed(
    oca_type: int, ib_errors: IbErrorGuard
) -> None:
    """ocaType 2 and 3 (reduce with / without block): each partial execution of one
    order reduces the other order of the group by as many shares (the client sees the
    new totalQuantity); when the first order is filled the other is cancelled."""
    ib_errors.allow(CANCELLED)

    async def scenario() -> None:
        brokerage = Brokerage(prices=PriceModel(1), max_fill_shares=40)
        async with running_simulator(brokerage=brokerage) as sim, connected(sim) as ib:
            stock = Stock("XOM", "SMART", "USD")
            sim.brokerage.prices.set_price("XOM", 100.0)
            take = LimitOrder("SELL", 100, 110.0, ocaGroup="exit", ocaType=oca_type)
            stop = StopOrder("SELL", 100, 90.0, ocaGroup="exit", ocaType=oca_type)
            taking, stopping = ib.placeOrder(stock, take), ib.placeOrder(stock, stop)
            await wait_for(lambda: stopping.orderStatus.status == "Submitted")
            sizes: list[float] = []
            stopping.statusEvent += lambda t: sizes.append(t.order.totalQuantity)
            sim.brokerage.prices.set_price("XOM", 111.0)
            await wait_for(lambda: taking.orderStatus.status == "Filled")
            await wait_for(lambda: stopping.orderStatus.status == "Cancelled")
            assert [f.execution.shares for f in taking.fills] == [40, 40, 20]
            assert sizes[:2] == [60, 20]
            assert stopping.fills == []
            assert sim.brokerage.account_positions()[0].quantity == -100

    run(scenario())


def test_oca_cancel_type_cancels_the_others_at_the_first_execution(
    ib_errors: IbErrorGuard,
) -> None:
    """ocaType 1 (cancel with block): the first partial execution of one order cancels
    the other orders of the group; the executing order itself fills completely."""
    ib_errors.allow(CANCELLED)

    async def scenario() -> None:
        brokerage = Brokerage(prices=PriceModel(1), max_fill_shares=40)
        async with running_simulator(brokerage=brokerage) as sim, connected(sim) as ib:
            stock = Stock("IBM", "SMART", "USD")
            sim.brokerage.prices.set_price("IBM", 100.0)
            buy = ib.placeOrder(stock, LimitOrder("BUY", 100, 101.0, ocaGroup="g", ocaType=1))
            other = ib.placeOrder(stock, LimitOrder("BUY", 100, 50.0, ocaGroup="g", ocaType=1))
            await wait_for(lambda: buy.orderStatus.status == "Filled")
            await wait_for(lambda: other.orderStatus.status == "Cancelled")
            assert [f.execution.shares for f in buy.fills] == [40, 40, 20]

    run(scenario())


def test_oca_reduce_with_whole_fills_cancels_like_a_plain_oca(ib_errors: IbErrorGuard) -> None:
    """With whole fills (the default) an ocaType 3 group behaves as one-cancels-all: the
    fill reduces the other order to nothing, which cancels it."""
    ib_errors.allow(CANCELLED)

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            stock = Stock("JPM", "SMART", "USD")
            sim.brokerage.prices.set_price("JPM", 100.0)
            a = ib.placeOrder(stock, LimitOrder("BUY", 10, 99.0, ocaGroup="w", ocaType=3))
            b = ib.placeOrder(stock, LimitOrder("BUY", 10, 98.0, ocaGroup="w", ocaType=3))
            await wait_for(lambda: b.orderStatus.status == "Submitted")
            sim.brokerage.prices.set_price("JPM", 98.5)
            await wait_for(lambda: a.orderStatus.status == "Filled")
            await wait_for(lambda: b.orderStatus.status == "Cancelled")
            assert sum(p.quantity for p in sim.brokerage.account_positions()) == 10

    run(scenario())


def test_unknown_oca_type_is_rejected(ib_errors: IbErrorGuard) -> None:
    """An ocaType other than 1, 2 or 3 is refused with error 201 naming it."""
    ib_errors.allow(r"Error 201, reqId \d+: Order rejected - reason:Invalid ocaType 7")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            order = Order(action="BUY", totalQuantity=1, orderType="MKT", ocaGroup="x")
            order.ocaType = 7
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), order)
            await wait_for(lambda: trade.orderStatus.status == "Cancelled")
            assert sim.brokerage.executions == []

    run(scenario())


def test_bracket_stop_shrinks_as_the_take_profit_fills_in_parts(ib_errors: IbErrorGuard) -> None:
    """With partial fills a bracket's children start once the parent has filled
    completely; each execution of the take-profit reduces the stop by as many shares,
    and the stop is cancelled when the take-profit is filled."""
    ib_errors.allow(CANCELLED)

    async def scenario() -> None:
        brokerage = Brokerage(prices=PriceModel(1), max_fill_shares=40)
        async with running_simulator(brokerage=brokerage) as sim, connected(sim) as ib:
            stock = Stock("MSFT", "SMART", "USD")
            sim.brokerage.prices.set_price("MSFT", 100.0)
            parent, take, stop = ib.bracketOrder("BUY", 100, 100.5, 110.0, 90.0)
            held: list[str] = []  # the stop's status while the parent is part filled
            trades = [ib.placeOrder(stock, o) for o in (parent, take)]
            trades[0].fillEvent += lambda t, f: held.append(trades[2].orderStatus.status)
            trades.append(ib.placeOrder(stock, stop))
            await wait_for(lambda: trades[0].orderStatus.status == "Filled")
            assert [f.execution.shares for f in trades[0].fills] == [40, 40, 20]
            assert "Submitted" not in held[:2]  # held (PreSubmitted) until the parent is done
            await wait_for(lambda: trades[2].orderStatus.status == "Submitted")
            sizes: list[float] = []
            trades[2].statusEvent += lambda t: sizes.append(t.order.totalQuantity)
            sim.brokerage.prices.set_price("MSFT", 111.0)
            await wait_for(lambda: trades[1].orderStatus.status == "Filled")
            await wait_for(lambda: trades[2].orderStatus.status == "Cancelled")
            assert sizes[:2] == [60, 20]
            assert sim.brokerage.account_positions()[0].quantity == 0

    run(scenario())
