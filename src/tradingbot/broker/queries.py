"""What strategies and reconciliation ask the gateway: positions, account values, executions.

The answers are plain frozen dataclasses built on the ``ib_async`` loop thread, so they
cross to any other thread without sharing a client object. Each query is a fresh request
to the gateway (never the client's cache alone) with a timeout: a failed or timed-out
query raises, and is never read as "flat" or "no executions".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ib_async import IB, ExecutionFilter

UNSET_DOUBLE = 1e300  # ib_async reports unset numbers as 1.7976931348623157e308


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """One position at the gateway: ``quantity`` is signed (negative = short)."""

    account: str
    symbol: str
    con_id: int
    quantity: float
    avg_cost: float
    currency: str = "USD"


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountValue:
    """One account value (``NetLiquidation``, ``TotalCashValue``, ...) as the gateway sent it."""

    account: str
    tag: str
    value: str
    currency: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One execution (fill) with its commission report, when the gateway sent one."""

    exec_id: str
    order_ref: str
    account: str
    symbol: str
    side: str  # BUY or SELL
    quantity: float
    price: float
    time: datetime | None
    order_id: int
    perm_id: int
    commission: float | None
    currency: str
    realized_pnl: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayOrder:
    """An order as the gateway reports it, open or completed (ours by ``order_ref``)."""

    order_ref: str
    account: str
    symbol: str
    side: str
    quantity: float
    order_type: str
    limit_price: float | None
    status: str
    filled: float
    order_id: int
    perm_id: int
    client_id: int


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


async def fetch_positions(ib: IB, account: str | None) -> list[Position]:
    """Every position at the gateway (of ``account`` when given), freshly requested."""
    found = await ib.reqPositionsAsync()
    return [
        Position(
            account=p.account,
            symbol=p.contract.symbol,
            con_id=int(p.contract.conId),
            quantity=float(p.position),
            avg_cost=float(p.avgCost),
            currency=p.contract.currency or "USD",
        )
        for p in found
        if not account or p.account == account
    ]


async def fetch_executions(
    ib: IB, account: str | None, since: datetime | None = None
) -> list[Execution]:
    """The executions the gateway reports (of ``account``; executed at or after ``since``,
    to the second, when given: the gateway filters, so a short window is cheap)."""
    if since is None:
        fills = await ib.reqExecutionsAsync()
    else:
        moment = since.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S")
        fills = await ib.reqExecutionsAsync(ExecutionFilter(time=moment))
    # The request's Fill objects are new; the commission reports (sent after each
    # execution) update the client's first Fill of that execution id.
    known = {f.execution.execId: f.commissionReport for f in ib.fills()}
    result = []
    for fill in fills:
        ex = fill.execution
        found = known.get(ex.execId) or fill.commissionReport
        report = found if found.execId else None  # none seen: unknown, not zero
        if account and ex.acctNumber != account:
            continue
        result.append(
            Execution(
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
        )
    return result


async def fetch_open_orders(ib: IB, account: str | None) -> list[GatewayOrder]:
    """Every open order at the gateway, of every client (``reqAllOpenOrders``)."""
    return _gateway_orders(await ib.reqAllOpenOrdersAsync(), account)


async def fetch_completed_orders(ib: IB, account: str | None) -> list[GatewayOrder]:
    """Orders the gateway completed (filled, cancelled, inactive), of every client."""
    return _gateway_orders(await ib.reqCompletedOrdersAsync(apiOnly=False), account)


def _gateway_orders(trades: list[Any], account: str | None) -> list[GatewayOrder]:
    result = []
    for trade in trades:
        order, status = trade.order, trade.orderStatus
        if account and order.account != account:
            continue
        result.append(
            GatewayOrder(
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
        )
    return result


def cached_account_values(ib: IB, account: str | None) -> list[AccountValue]:
    """Account values as streamed by the account-updates subscription made at connect.

    The gateway pushes every change on that subscription, so the client's copy is the
    gateway's current state while the connection is synced (the caller checks that).
    """
    return [
        AccountValue(account=v.account, tag=v.tag, value=v.value, currency=v.currency)
        for v in ib.accountValues(account or "")
    ]
