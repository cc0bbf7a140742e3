"""Shell commands of the risk limits: ``risk`` (read-only) and ``order`` (a manual order).

``order SIDE QUANTITY SYMBOL [LIMIT_PRICE] [key=KEY]`` goes through the broker's API like
any strategy's order: the kill switch, reconciliation and the pre-trade risk limits all
apply, and a refusal is one line naming why (``RiskRefused: order refused by risk limit
max_order_usd: …``). A market order for a symbol nobody streams is valued at a snapshot
quote. ``risk`` shows the limits, today's P&L against the loss limit, our open orders,
the orders of the last minute and the positions.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tradingbot.broker import (
    BrokerNotReady,
    OrderRequest,
    TradingBlocked,
    UnknownSymbol,
    place_order,
)
from tradingbot.control.registry import RuntimeCommands, command, usage_of
from tradingbot.control.server import CommandError, CommandResult
from tradingbot.events.recorder import EventNotDurable

ORDER_TIMEOUT_S = 30.0


@command("risk", "risk", "show the risk limits, today's P&L against the loss limit, open orders")
async def _risk(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    if args:
        raise CommandError(f"usage: {usage_of('risk')}")
    book = ctx.risk_book
    if book is None:
        raise CommandError("the risk limits are not loaded (the bot is starting)")
    status = ctx.broker_status
    limits = book.limits
    pnl = status.pnl()
    data: dict[str, Any] = {
        "account": book.account,
        "limits": {
            "max_position_shares": limits.max_position_shares,
            "max_position_usd": limits.max_position_usd,
            "max_order_usd": limits.max_order_usd,
            "max_open_orders": limits.max_open_orders,
            "max_orders_per_minute": limits.max_orders_per_minute,
            "price_band_pct": limits.price_band_pct,
            "daily_loss_limit_usd": limits.daily_loss_limit_usd,
            "warn_at": limits.warn_at,
        },
        "pnl": None if pnl is None else pnl.as_dict(),
        "open_orders": status.open_orders(),
        "orders_last_minute": book.orders_last_minute(),
        "positions": status.positions(),
    }
    daily = "no P&L from the broker yet" if pnl is None else f"daily P&L {pnl.daily:,.2f}"
    lines = [
        f"{daily} (loss limit {limits.daily_loss_limit_usd:,.2f})",
        f"open orders {data['open_orders']} of {limits.max_open_orders}; "
        f"orders in the last minute {data['orders_last_minute']} of "
        f"{limits.max_orders_per_minute}",
        f"per order at most {limits.max_order_usd:,.2f}; per symbol at most "
        f"{limits.max_position_shares:g} shares and {limits.max_position_usd:,.2f}; "
        f"limit prices within {limits.price_band_pct:g}% of the last quote",
    ]
    lines += [f"position {symbol} {qty:g}" for symbol, qty in sorted(data["positions"].items())]
    return CommandResult(result=data, text="\n".join(lines))


def parse_order(args: list[str]) -> OrderRequest:
    """``SIDE QUANTITY SYMBOL [LIMIT_PRICE] [key=KEY]`` as an order request."""
    key = None
    if args and args[-1].startswith("key="):
        key = args.pop()[4:]
    if len(args) not in (3, 4):
        raise CommandError(f"usage: {usage_of('order')}")
    side, quantity, symbol = args[0].upper(), args[1], args[2].upper()
    try:
        amount = float(quantity)
        price = None if len(args) == 3 else float(args[3])
    except ValueError:
        raise CommandError(
            f"QUANTITY and LIMIT_PRICE must be numbers: {usage_of('order')}"
        ) from None
    try:
        return OrderRequest(
            symbol,
            side,
            amount,
            "MKT" if price is None else "LMT",
            price,
            client_order_id=key,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


@command(
    "order",
    "order BUY|SELL QUANTITY SYMBOL [LIMIT_PRICE] [key=KEY]",
    "place an order by hand (market, or limit with a price); risk limits apply",
    mutating=True,
)
async def _order(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    request = parse_order(list(args))
    broker = ctx.tree.handle("broker")
    status = ctx.broker_status
    try:
        ref = await asyncio.to_thread(place_order, broker, status, request, ORDER_TIMEOUT_S)
    except (TradingBlocked, BrokerNotReady, UnknownSymbol, EventNotDurable, TimeoutError) as exc:
        raise CommandError(f"{type(exc).__name__}: {exc}") from None
    price = "" if request.limit_price is None else f" {request.limit_price:g}"
    what = f"{request.side} {request.quantity:g} {request.symbol} {request.order_type}{price}"
    return CommandResult(result={"order_id": ref, "order": what}, text=f"order {ref} sent: {what}")
