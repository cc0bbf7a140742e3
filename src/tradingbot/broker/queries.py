"""What strategies, reconciliation and reports ask the gateway: positions, the portfolio
with marks, account values, executions, open and completed orders, historical bars.

Each query is a fresh request to the gateway (never the client's cache alone, except
account values, which the gateway streams) with a timeout: a failed or timed-out query
raises, and is never read as "flat" or "no executions". :func:`submit_query` runs one on
the client's loop without blocking the actor; the answer goes straight to the caller's
reply future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from ib_async import IB, ExecutionFilter

from tradingbot.broker.answers import (
    AccountValue,
    Execution,
    GatewayOrder,
    PortfolioItem,
    Position,
)
from tradingbot.broker.bars import BAR_SIZES, Bar
from tradingbot.broker.errors import BarsUnavailable, BrokerConnectionError
from tradingbot.broker.loop import LoopThread
from tradingbot.broker.messages import FetchBars, Query
from tradingbot.broker.parsing import (
    account_value,
    execution,
    gateway_order,
    historical_bar,
    portfolio_item,
    position,
)
from tradingbot.broker.streams import qualify


async def fetch_positions(ib: IB, account: str | None) -> list[Position]:
    """Every position at the gateway (of ``account`` when given), freshly requested."""
    found = await ib.reqPositionsAsync()
    return [position(p) for p in found if not account or p.account == account]


async def fetch_portfolio(ib: IB, account: str | None) -> list[PortfolioItem]:
    """The account's positions with the gateway's marks, freshly requested.

    Subscribing to the account's updates again makes the gateway send every account
    value and portfolio row anew (marks as of now) and end with ``accountDownloadEnd``;
    so the account values read right after are fresh too. The account is the
    configured one, else the only managed one; with several and none configured there
    is no account to ask for (``ValueError`` naming the setting).
    """
    accounts = ib.managedAccounts()
    subscribed = account or (accounts[0] if len(accounts) == 1 else "")
    if not subscribed:
        raise ValueError("portfolio: several managed accounts; set TRADINGBOT_IB_ACCOUNT")
    await ib.reqAccountUpdatesAsync(subscribed)
    return [portfolio_item(p) for p in ib.portfolio(subscribed) if float(p.position) != 0.0]


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
    if what == "portfolio":
        return await fetch_portfolio(ib, account)
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
    what, since = message.what, message.since
    _submit(loop, what, answer(ib, account, what, since), message.reply, timeout_s)


async def fetch_bars(
    ib: IB, message: FetchBars, timeout_s: float, contracts: dict[str, Any]
) -> list[Bar]:
    """The gateway's historical bars for ``message`` (on the loop).

    ``contracts`` keeps the contracts this connection qualified (loop thread only), so
    a symbol's next request skips that round trip.

    ``ib_async`` answers a refused request (error 162: no permission, bad request, pacing)
    with an empty list; the error seen for the request's id is raised instead, so a
    failed request is never read as "no bars".
    """
    contract = contracts.get(message.symbol)
    if contract is None:
        contract = contracts[message.symbol] = await qualify(ib, message.symbol, timeout_s)
    errors: list[tuple[int, int, str]] = []

    def on_error(req_id: int, code: int, text: str, contract: Any) -> None:
        errors.append((req_id, code, text))

    ib.errorEvent += on_error
    try:
        found = await ib.reqHistoricalDataAsync(
            contract,
            message.end.astimezone(UTC) if message.end is not None else "",
            message.duration,
            message.bar_size,
            message.what_to_show,
            message.use_rth,
            formatDate=2,  # intraday bar times as epoch seconds (UTC)
            timeout=0,  # the caller's timeout applies (asyncio.wait_for around this)
        )
    finally:
        ib.errorEvent -= on_error
    refused = [f"error {code}: {text}" for req_id, code, text in errors if req_id == found.reqId]
    if refused:
        raise BarsUnavailable(f"{message.symbol} {message.bar_size} bars: {refused[-1]}")
    seconds = BAR_SIZES[message.bar_size]
    return [historical_bar(message.symbol, seconds, b) for b in found]


def submit_fetch_bars(
    loop: LoopThread, ib: IB, message: FetchBars, contracts: dict[str, Any]
) -> None:
    """Run ``message`` on the client's loop within its timeout; its reply gets the bars."""
    request = fetch_bars(ib, message, message.timeout_s, contracts)
    _submit(loop, f"{message.symbol} bars", request, message.reply, message.timeout_s)


def _submit(
    loop: LoopThread,
    what: str,
    request: Coroutine[Any, Any, Any],
    reply: concurrent.futures.Future[Any],
    timeout_s: float,
) -> None:
    """Run ``request`` on ``loop`` within ``timeout_s``; ``reply`` gets its answer or error."""

    async def ask_in_time() -> Any:
        try:
            return await asyncio.wait_for(request, timeout_s)
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
