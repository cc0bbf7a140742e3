"""What strategies and reconciliation ask the gateway: positions, account values, executions,
open and completed orders.

Each query is a fresh request to the gateway (never the client's cache alone, except
account values, which the gateway streams) with a timeout: a failed or timed-out query
raises, and is never read as "flat" or "no executions". :func:`submit_query` runs one on
the client's loop without blocking the actor; the answer goes straight to the caller's
reply future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import UTC, datetime
from typing import Any

from ib_async import IB, ExecutionFilter

from tradingbot.broker.answers import AccountValue, Execution, GatewayOrder, Position
from tradingbot.broker.errors import BrokerConnectionError
from tradingbot.broker.loop import LoopThread
from tradingbot.broker.messages import Query
from tradingbot.broker.parsing import account_value, execution, gateway_order, position


async def fetch_positions(ib: IB, account: str | None) -> list[Position]:
    """Every position at the gateway (of ``account`` when given), freshly requested."""
    found = await ib.reqPositionsAsync()
    return [position(p) for p in found if not account or p.account == account]


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
        found = known.get(fill.execution.execId) or fill.commissionReport
        report = found if found.execId else None  # none seen: unknown, not zero
        if account and fill.execution.acctNumber != account:
            continue
        result.append(execution(fill, report))
    return result


async def fetch_open_orders(ib: IB, account: str | None) -> list[GatewayOrder]:
    """Every open order at the gateway, of every client (``reqAllOpenOrders``)."""
    return _of_account(await ib.reqAllOpenOrdersAsync(), account)


async def fetch_completed_orders(ib: IB, account: str | None) -> list[GatewayOrder]:
    """Orders the gateway completed (filled, cancelled, inactive), of every client."""
    return _of_account(await ib.reqCompletedOrdersAsync(apiOnly=False), account)


def _of_account(trades: list[Any], account: str | None) -> list[GatewayOrder]:
    return [gateway_order(t) for t in trades if not account or t.order.account == account]


def cached_account_values(ib: IB, account: str | None) -> list[AccountValue]:
    """Account values as streamed by the account-updates subscription made at connect.

    The gateway pushes every change on that subscription, so the client's copy is the
    gateway's current state while the connection is synced (the caller checks that;
    after a 1101 "data lost" notice the broker subscribes again).
    """
    return [account_value(v) for v in ib.accountValues(account or "")]


async def answer(ib: IB, account: str | None, what: str, since: datetime | None) -> Any:
    """The gateway's answer to query ``what`` (one of ``messages.QUERIES``)."""
    if what == "positions":
        return await fetch_positions(ib, account)
    if what == "executions":
        return await fetch_executions(ib, account, since)
    if what == "open_orders":
        return await fetch_open_orders(ib, account)
    if what == "completed_orders":
        return await fetch_completed_orders(ib, account)
    return cached_account_values(ib, account)


def submit_query(
    loop: LoopThread, ib: IB, account: str | None, message: Query, timeout_s: float
) -> None:
    """Run ``message`` on the client's loop; its reply gets the answer or the error.

    Returns at once (the actor does not wait for the gateway). The caller checked that
    ``message.what`` is one of :data:`~tradingbot.broker.messages.QUERIES`.
    """
    reply, what, since = message.reply, message.what, message.since

    async def ask_in_time() -> Any:
        try:
            return await asyncio.wait_for(answer(ib, account, what, since), timeout_s)
        except TimeoutError:
            text = f"{what}: no answer from the gateway within {timeout_s:g} s"
            raise TimeoutError(text) from None

    def done(future: concurrent.futures.Future[Any]) -> None:
        if reply.done():
            return
        if future.cancelled():
            reply.set_exception(BrokerConnectionError(f"{what}: the connection closed"))
        elif (exc := future.exception()) is not None:
            reply.set_exception(exc)
        else:
            reply.set_result(future.result())

    try:
        loop.submit(ask_in_time()).add_done_callback(done)
    except RuntimeError as exc:  # the loop stopped meanwhile
        reply.set_exception(BrokerConnectionError(f"{what}: {exc}"))
