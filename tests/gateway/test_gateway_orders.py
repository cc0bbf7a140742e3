"""Orders through the real ib_async client: fills, commissions, cancels, rejections."""

from __future__ import annotations

import asyncio

from ib_async import IB, LimitOrder, MarketOrder, Stock
from simharness import IbErrorGuard, connected, run, running_simulator, wait_for


def _error_codes(ib: IB) -> list[int]:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    return codes


def test_market_order_fills_with_commission_report() -> None:
    """A market order reaches Filled with a positive commission and commissionReportEvent."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            reports: list[float] = []
            ib.commissionReportEvent += lambda trade, fill, report: reports.append(
                report.commission
            )
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 300))
            await wait_for(lambda: bool(reports))
            assert trade.orderStatus.status == "Filled"
            assert trade.orderStatus.filled == 300
            assert trade.order.permId > 0
            assert trade.fills[0].commissionReport.commission == 1.5  # 300 x $0.005
            assert trade.fills[0].execution.side == "BOT"
            assert trade.fills[0].contract.conId > 0
            positions = {p.contract.symbol: p.position for p in ib.positions()}
            assert positions["AAPL"] == 300
            await wait_for(lambda: any(i.contract.symbol == "AAPL" for i in ib.portfolio()))

    run(scenario())


def test_round_trip_reports_realized_pnl_and_minimum_commission() -> None:
    """Selling a bought position reports realized P&L net of the $1 minimum commission."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            stock = Stock("MSFT", "SMART", "USD")
            buy = ib.placeOrder(stock, MarketOrder("BUY", 10))
            await wait_for(lambda: buy.isDone() and bool(buy.fills))
            buy_price = buy.fills[0].execution.price
            sim.brokerage.prices.set_price("MSFT", buy_price + 2.0)
            sell = ib.placeOrder(stock, MarketOrder("SELL", 10))
            await wait_for(lambda: bool(sell.fills) and sell.fills[0].commissionReport.execId)
            report = sell.fills[0].commissionReport
            assert report.commission == 1.0
            # avg cost includes the $1 buy commission (0.10/share), then $1 to sell
            assert report.realizedPNL == round(10 * 2.0 - 1.0 - 1.0, 4)

    run(scenario())


def test_limit_order_rests_then_cancels(ib_errors: IbErrorGuard) -> None:
    """A non-marketable limit order stays Submitted until cancelled, then is Cancelled."""
    ib_errors.allow(r"Error 202, reqId \d+: Order Canceled")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            trade = ib.placeOrder(Stock("IBM", "SMART", "USD"), LimitOrder("BUY", 10, 1.00))
            await wait_for(lambda: trade.orderStatus.status == "Submitted")
            await asyncio.sleep(0.2)  # several price ticks: still resting
            assert trade.orderStatus.status == "Submitted"
            assert [t.order.orderId for t in ib.openTrades()] == [trade.order.orderId]
            ib.cancelOrder(trade.order)
            await wait_for(lambda: trade.orderStatus.status == "Cancelled")
            assert not trade.fills
            assert sim.brokerage.open_orders() == []

    run(scenario())


def test_marketable_limit_order_fills_at_once() -> None:
    """A buy limit above the market fills immediately at the model price."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            price = sim.brokerage.prices.price("NVDA")
            trade = ib.placeOrder(
                Stock("NVDA", "SMART", "USD"), LimitOrder("BUY", 5, round(price * 1.5, 2))
            )
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            assert trade.fills[0].execution.price <= price * 1.5

    run(scenario())


def test_resting_limit_fills_when_price_crosses() -> None:
    """A resting sell limit fills on a later price tick once the market reaches it."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            price = sim.brokerage.prices.price("XOM")
            trade = ib.placeOrder(
                Stock("XOM", "SMART", "USD"), LimitOrder("SELL", 7, round(price + 5, 2))
            )
            await wait_for(lambda: trade.orderStatus.status == "Submitted")
            sim.brokerage.prices.set_price("XOM", price + 10)
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            assert trade.fills[0].execution.side == "SLD"
            await wait_for(lambda: trade.fills[0].commissionReport.commission > 0)

    run(scenario())


def test_unknown_symbol_is_rejected_with_code_200(ib_errors: IbErrorGuard) -> None:
    """An order for an unknown symbol gets error 200 and the trade ends Cancelled."""
    ib_errors.allow(r"Error 200, reqId \d+: No security definition")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            codes = _error_codes(ib)
            trade = ib.placeOrder(Stock("NOSUCH", "SMART", "USD"), MarketOrder("BUY", 1))
            await wait_for(lambda: trade.orderStatus.status == "Cancelled")
            assert codes == [200]
            assert trade.log[-1].errorCode == 200

    run(scenario())


def test_zero_quantity_is_refused_with_code_434() -> None:
    """An order for quantity 0 gets the gateway's 434 "order size cannot be zero" (which
    ib_async records as a validation warning) and nothing is booked."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            codes = _error_codes(ib)
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 0))
            await wait_for(lambda: trade.orderStatus.status == "ValidationError")
            assert codes == [434]
            assert trade.log[-1].errorCode == 434
            assert sim.brokerage.executions == []
            assert sim.brokerage.orders == {}

    run(scenario())


def test_reconnect_sees_earlier_executions_and_continues_order_ids() -> None:
    """A reconnecting client syncs earlier fills and completed orders and gets a higher id."""

    async def scenario() -> None:
        async with running_simulator() as sim:
            async with connected(sim, client_id=5) as ib:
                trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 10))
                await wait_for(lambda: trade.orderStatus.status == "Filled")
                first_id = trade.order.orderId
                exec_id = trade.fills[0].execution.execId
            async with connected(sim, client_id=5) as ib:
                assert [f.execution.execId for f in ib.fills()] == [exec_id]
                assert ib.fills()[0].commissionReport.commission == 1.0
                fills = await ib.reqExecutionsAsync()
                assert [f.execution.execId for f in fills] == [exec_id]
                completed = await ib.reqCompletedOrdersAsync(False)
                assert [t.orderStatus.status for t in completed] == ["Filled"]
                assert ib.client.getReqId() > first_id
                again = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("SELL", 10))
                await wait_for(lambda: again.orderStatus.status == "Filled")
                assert again.order.orderId > first_id
                assert sim.brokerage.next_order_id(5) == again.order.orderId + 1

    run(scenario())


def test_reconnect_syncs_resting_orders_which_stay_cancellable(ib_errors: IbErrorGuard) -> None:
    """A resting order is listed in openTrades after a reconnect and can be cancelled then."""
    ib_errors.allow(r"Error 202, reqId \d+: Order Canceled")

    async def scenario() -> None:
        async with running_simulator() as sim:
            async with connected(sim, client_id=6) as ib:
                trade = ib.placeOrder(
                    Stock("JPM", "SMART", "USD"), LimitOrder("BUY", 3, 1.0, orderRef="mine-1")
                )
                await wait_for(lambda: trade.orderStatus.status == "Submitted")
            async with connected(sim, client_id=6) as ib:
                [synced] = ib.openTrades()
                assert synced.order.orderRef == "mine-1"
                assert synced.order.permId == trade.order.permId
                assert synced.orderStatus.status == "Submitted"
                ib.cancelOrder(synced.order)
                await wait_for(lambda: synced.orderStatus.status == "Cancelled")

    run(scenario())


def test_modifying_a_resting_limit_to_marketable_fills_it() -> None:
    """Re-placing a resting order with a marketable limit modifies it and it fills."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            stock = Stock("TSLA", "SMART", "USD")
            order = LimitOrder("BUY", 4, 1.0)
            trade = ib.placeOrder(stock, order)
            await wait_for(lambda: trade.orderStatus.status == "Submitted")
            order.lmtPrice = round(sim.brokerage.prices.price("TSLA") * 2, 2)
            same = ib.placeOrder(stock, order)
            assert same is trade
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            assert len(sim.brokerage.orders) == 1

    run(scenario())
