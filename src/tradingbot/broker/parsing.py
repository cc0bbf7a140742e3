"""``ib_async`` objects → our plain data: how a fill, an order status, a quote, a position
or an order the gateway reports is read.

Every function here runs on the client's loop thread (where the ``ib_async`` objects
live) and returns frozen dataclasses that may cross to any thread. Unset numbers
(``ib_async``'s huge sentinel, NaN) become ``None``, never zero: an unknown commission
is not a free one.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

from ib_async import IB, Ticker

from tradingbot.broker.answers import (
    AccountValue,
    Execution,
    GatewayOrder,
    PortfolioItem,
    Position,
)
from tradingbot.broker.bars import REALTIME_BAR_S, Bar
from tradingbot.broker.ids import client_order_id_of, is_bot_order, strategy_of
from tradingbot.broker.market import Quote
from tradingbot.broker.messages import FillReported, OrderStatusChanged
from tradingbot.broker.status import OrderRecord

UNSET_DOUBLE = 1e300  # ib_async reports unset numbers as 1.7976931348623157e308


def number(value: Any) -> float | None:
    """A float, or None for ib_async's unset values (huge sentinel, NaN, None, text)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(result) or abs(result) >= UNSET_DOUBLE:
        return None
    return result


def side_of(execution_side: str) -> str:
    """The gateway's ``BOT``/``SLD`` as ``BUY``/``SELL``."""
    return {"BOT": "BUY", "SLD": "SELL"}.get(execution_side, execution_side)


# -- live reports ----------------------------------------------------------------------------


def fill_reported(
    order_ref: str, fill: Any, report: Any, *, reconciled: bool = False
) -> FillReported:
    """A fill and its commission report (``commissionReportEvent``)."""
    execution = fill.execution
    when = getattr(fill, "time", None)
    return FillReported(
        order_ref=order_ref or execution.orderRef or "",
        symbol=fill.contract.symbol,
        side=side_of(execution.side),
        quantity=float(execution.shares),
        price=float(execution.price),
        commission=number(report.commission),
        currency=report.currency or "",
        realized_pnl=number(report.realizedPNL),
        order_id=int(execution.orderId),
        perm_id=int(execution.permId),
        exec_id=execution.execId,
        time=when.timestamp() if isinstance(when, datetime) else None,
        reconciled=reconciled,
    )


def order_status(trade: Any) -> OrderStatusChanged:
    """A trade's order status (``orderStatusEvent``)."""
    order, st = trade.order, trade.orderStatus
    return OrderStatusChanged(
        order_ref=order.orderRef,
        status=st.status,
        filled=float(st.filled),
        avg_fill_price=float(st.avgFillPrice),
        order_id=int(order.orderId),
        perm_id=int(order.permId),
    )


def quote(ticker: Ticker, now: float) -> Quote:
    """A ticker's prices and sizes (``pendingTickersEvent``); ``now`` is the arrival time."""
    return Quote(
        symbol=ticker.contract.symbol if ticker.contract is not None else "",
        bid=number(ticker.bid),
        ask=number(ticker.ask),
        last=number(ticker.last),
        bid_size=number(ticker.bidSize),
        ask_size=number(ticker.askSize),
        last_size=number(ticker.lastSize),
        volume=number(ticker.volume),
        received_at=now,
        ticks=len(ticker.ticks),
    )


def realtime_bar(symbol: str, bar: Any) -> Bar:
    """A 5-second real-time bar (``RealTimeBar``: ``time``, ``open_``, ...)."""
    return Bar(
        symbol=symbol,
        start=bar.time.astimezone(UTC),
        seconds=REALTIME_BAR_S,
        open=float(bar.open_),
        high=float(bar.high),
        low=float(bar.low),
        close=float(bar.close),
        volume=max(0.0, number(bar.volume) or 0.0),
        wap=_positive(bar.wap),
    )


def historical_bar(symbol: str, seconds: int, bar: Any) -> Bar:
    """A historical bar (``BarData``); a daily bar's date becomes 00:00 UTC of that date."""
    when = bar.date
    if isinstance(when, datetime):
        start = when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
    elif isinstance(when, date):
        start = datetime(when.year, when.month, when.day, tzinfo=UTC)
    else:
        raise ValueError(f"{symbol}: a historical bar without a date ({when!r})")
    return Bar(
        symbol=symbol,
        start=start,
        seconds=seconds,
        open=float(bar.open),
        high=float(bar.high),
        low=float(bar.low),
        close=float(bar.close),
        volume=max(0.0, number(bar.volume) or 0.0),  # MIDPOINT bars have none (-1)
        wap=_positive(bar.average),
    )


def _positive(value: Any) -> float | None:
    found = number(value)
    return found if found is not None and found > 0 else None


def synced_state(ib: IB) -> list[OrderRecord | OrderStatusChanged | FillReported]:
    """After a (re)connect: our orders, their statuses and every fill with its commission.

    Orders are matched by ``orderRef`` (old Trade objects are orphaned by a reconnect);
    each of our orders (``TB-`` prefix) comes first as an :class:`OrderRecord`, so that
    an order placed by an earlier run of the bot is known again (its idempotency key
    still holds). A fill that happened while we were away is reported here; its TRADE
    event id is derived from the execution id, so it is stored once however often seen.
    """
    trades = [t for t in ib.trades() if is_bot_order(t.order.orderRef)]
    found: list[OrderRecord | OrderStatusChanged | FillReported] = []
    for trade in trades:
        order, contract, st = trade.order, trade.contract, trade.orderStatus
        ref = order.orderRef
        # Adopted with the gateway's status as it is now: an order that ended while the
        # bot was away is not an end seen live (reconciliation reports and records it).
        found.append(
            OrderRecord(
                order_ref=ref,
                symbol=contract.symbol,
                side=order.action,
                quantity=float(order.totalQuantity),
                order_type=order.orderType,
                limit_price=number(order.lmtPrice) if order.orderType == "LMT" else None,
                status=st.status or "PendingSubmit",
                filled=float(st.filled),
                avg_fill_price=float(st.avgFillPrice),
                order_id=int(order.orderId),
                perm_id=int(order.permId),
                client_order_id=client_order_id_of(ref),
                strategy_id=strategy_of(ref),
            )
        )
    found.extend(order_status(trade) for trade in trades)
    for fill in ib.fills():
        report = fill.commissionReport
        if report is not None and report.execId:
            found.append(fill_reported("", fill, report, reconciled=True))
    return found


# -- query answers ----------------------------------------------------------------------------


def position(p: Any) -> Position:
    """One entry of ``reqPositions``."""
    return Position(
        account=p.account,
        symbol=p.contract.symbol,
        con_id=int(p.contract.conId),
        quantity=float(p.position),
        avg_cost=float(p.avgCost),
        currency=p.contract.currency or "USD",
    )


def portfolio_item(p: Any) -> PortfolioItem:
    """One portfolio row of the account-updates subscription (``ib_async.PortfolioItem``)."""
    return PortfolioItem(
        account=p.account,
        symbol=p.contract.symbol,
        con_id=int(p.contract.conId),
        quantity=float(p.position),
        avg_cost=float(p.averageCost),
        market_price=number(p.marketPrice),
        market_value=number(p.marketValue),
        unrealized_pnl=number(p.unrealizedPNL),
        realized_pnl=number(p.realizedPNL),
        currency=p.contract.currency or "USD",
    )


def execution(fill: Any, report: Any | None) -> Execution:
    """One fill of ``reqExecutions`` with its commission report (None: none seen yet)."""
    ex = fill.execution
    return Execution(
        exec_id=ex.execId,
        order_ref=ex.orderRef or "",
        account=ex.acctNumber,
        symbol=fill.contract.symbol,
        side=side_of(ex.side),
        quantity=float(ex.shares),
        price=float(ex.price),
        time=fill.time if isinstance(fill.time, datetime) else None,
        order_id=int(ex.orderId),
        perm_id=int(ex.permId),
        commission=None if report is None else number(report.commission),
        currency="" if report is None else report.currency or "",
        realized_pnl=None if report is None else number(report.realizedPNL),
    )


def gateway_order(trade: Any) -> GatewayOrder:
    """One order of ``reqAllOpenOrders`` or ``reqCompletedOrders``."""
    order, status = trade.order, trade.orderStatus
    return GatewayOrder(
        order_ref=order.orderRef or "",
        account=order.account,
        symbol=trade.contract.symbol,
        side=order.action,
        quantity=float(order.totalQuantity),
        order_type=order.orderType,
        limit_price=number(order.lmtPrice) if order.orderType == "LMT" else None,
        status=status.status,
        filled=float(status.filled),
        order_id=int(order.orderId),
        perm_id=int(order.permId),
        client_id=int(order.clientId),
    )


def account_value(v: Any) -> AccountValue:
    """One account value of the account-updates subscription."""
    return AccountValue(account=v.account, tag=v.tag, value=v.value, currency=v.currency)
