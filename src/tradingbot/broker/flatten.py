"""Cancel-all and flatten: the operator's (and the daily loss limit's) way out of the market.

**Cancel-all** records a durable ORDER event (``action`` ``cancel_all``) and a durable
RISK event (``source=kill_switch``: always mailed) naming who and why, then sends the
gateway's *global cancel* (``reqGlobalCancel``). IB's global cancel cancels every open
order of the login — placed by any API client, by TWS or by the IB Gateway's user — in
every account the login manages. So when the gateway reports managed accounts other
than ours, the broker instead cancels our account's orders one by one (only those this
client placed can be cancelled that way: IB allows nothing narrower). Nothing is sent
when either event could not be stored.

**Flatten** is cancel-all, a bounded wait until our open orders are final, a fresh read
of the account's positions, and one market order closing each non-zero position. The
closing orders are *reduce-only*: they pass the kill switch's gate (flatten is used
while paused or tripped) but never the reconciliation gate, and the broker refuses one
that would increase or flip the position at the moment of sending. A repeat is safe:
each closing order's idempotency key is derived from the New York date, the account,
the symbol and the position it closes (plus a generation, advanced only past a closing
order that ended unfilled or was filled and the same position came back), so a second
flatten finds a live closing order known and sends nothing, and a flat position sends
nothing at all.

The actor-side handler (:func:`send_cancel_all`) and the reduce-only check
(:func:`refuse_unless_reducing`) run in the broker actor and on its loop; :func:`flatten`
runs in the caller's thread, like every function of :mod:`tradingbot.broker.api`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from ib_async import IB

from tradingbot.broker.answers import CancelAllResult
from tradingbot.broker.api import cancel_all, place_order, positions
from tradingbot.broker.errors import BrokerConnectionError, NotReducing, TradingBlocked
from tradingbot.broker.ids import is_bot_order, order_ref_for
from tradingbot.broker.messages import CancelAll, OrderRequest
from tradingbot.broker.queries import fetch_open_orders, fetch_positions
from tradingbot.broker.status import FINAL_STATUSES, BrokerStatus
from tradingbot.events import ORDER, RISK, Severity
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.notify.routing import KILL_SWITCH_SOURCE
from tradingbot.tellable import Tellable

if TYPE_CHECKING:
    from tradingbot.broker.client import Client

log = structlog.get_logger("tradingbot.broker")

NEW_YORK = ZoneInfo("America/New_York")
CLOSING_PREFIX = "FL"  # a closing order's idempotency key starts with FL<yymmdd>-
MAX_GENERATIONS = 50
EPSILON = 1e-9


# -- in the broker actor --------------------------------------------------------------------


def send_cancel_all(
    message: CancelAll, client: Client, account: str, recorder: EventRecorder | None
) -> None:
    """Handle :class:`CancelAll` (actor thread): record both events, then cancel on the
    loop; the reply gets a :class:`CancelAllResult` or the error (nothing sent then)."""
    reply = message.reply
    what = "flatten" if message.flatten else "cancel-all"
    context: dict[str, Any] = {
        "action": "cancel_all",
        "by": message.by,
        "reason": message.reason,
        "account": account,
        "flatten": message.flatten,
    }
    if recorder is not None:
        try:
            recorder.record_durable(ORDER, f"CANCEL ALL ({what})", context=context)
            recorder.record_durable(
                RISK,
                f"{what} by {message.by}: {message.reason}",
                severity=Severity.WARNING,
                source=KILL_SWITCH_SOURCE,
                context={**context, "event": what.replace("-", "_")},
            )
        except EventNotDurable as exc:
            reply.set_exception(exc)
            return
    ib = client.ib

    async def send() -> CancelAllResult:
        before = await fetch_open_orders(ib, account or None)
        others = [a for a in ib.managedAccounts() if a != account] if account else []
        if others:
            mine = ib.client.clientId  # IB refuses to cancel another client's order
            for trade in ib.openTrades():
                if trade.order.account == account and trade.order.clientId == mine:
                    ib.cancelOrder(trade.order)
            return CancelAllResult(open_orders=tuple(before), scope="account")
        ib.reqGlobalCancel()  # type: ignore[no-untyped-call]
        return CancelAllResult(open_orders=tuple(before), scope="global")

    def sent(future: concurrent.futures.Future[CancelAllResult]) -> None:  # loop thread
        if future.cancelled():
            reply.set_exception(BrokerConnectionError("the connection closed while cancelling"))
        elif (error := future.exception()) is not None:
            log.warning("broker_cancel_all_failed", error=str(error))
            reply.set_exception(error)
        else:
            result = future.result()
            log.warning(
                "broker_cancel_all_sent",
                scope=result.scope,
                open_orders=[o.order_ref for o in result.open_orders],
                by=message.by,
            )
            reply.set_result(result)

    try:
        client.loop.submit(send()).add_done_callback(sent)
    except RuntimeError as exc:  # the loop stopped meanwhile
        reply.set_exception(exc)


async def refuse_unless_reducing(ib: IB, account: str, request: OrderRequest) -> None:
    """Raise :class:`NotReducing` unless ``request`` only reduces the position in its
    symbol, as the gateway reports it now (loop thread, right before the send)."""
    held = sum(
        p.quantity for p in await fetch_positions(ib, account or None) if p.symbol == request.symbol
    )
    signed = request.quantity if request.side == "BUY" else -request.quantity
    if held == 0 or (held > 0) == (signed > 0) or abs(signed) > abs(held) + EPSILON:
        raise NotReducing(
            f"reduce-only order refused: {request.side} {request.quantity:g} "
            f"{request.symbol} would not reduce the position of {held:g}"
        )


# -- in the caller's thread -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosingOrder:
    """One position a flatten closed (or tried to): the order sent, known, or the error."""

    symbol: str
    position: float  # the signed position it closes
    side: str
    quantity: float
    order_ref: str | None
    sent: bool  # False: a live closing order was already known (nothing new), or an error
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "position": self.position,
            "side": self.side,
            "quantity": self.quantity,
            "order_ref": self.order_ref,
            "sent": self.sent,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FlattenResult:
    """What a flatten did: the cancel-all, our orders still not final after the wait,
    and one :class:`ClosingOrder` per non-zero position."""

    cancelled: CancelAllResult
    still_open: tuple[str, ...]
    closing: tuple[ClosingOrder, ...]

    @property
    def sent(self) -> tuple[ClosingOrder, ...]:
        """The closing orders sent by this flatten (new at the gateway)."""
        return tuple(c for c in self.closing if c.sent)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cancelled": cancel_all_dict(self.cancelled),
            "still_open": list(self.still_open),
            "closing": [c.as_dict() for c in self.closing],
        }


def cancel_all_dict(result: CancelAllResult) -> dict[str, Any]:
    """A cancel-all's result as JSON-able data (the shell's and the HTTP API's body)."""
    return {
        "scope": result.scope,
        "open_orders": [
            {
                "order_ref": o.order_ref,
                "ours": is_bot_order(o.order_ref),
                "symbol": o.symbol,
                "side": o.side,
                "quantity": o.quantity,
                "filled": o.filled,
                "order_type": o.order_type,
                "status": o.status,
            }
            for o in result.open_orders
        ],
    }


def describe_cancel_all(result: CancelAllResult) -> list[str]:
    """What a cancel-all did, in lines for the operator (shell, HTTP ``summary``)."""
    if not result.open_orders:
        return ["no order was open at the gateway"]
    how = "global cancel" if result.scope == "global" else "one cancel per order of the account"
    lines = [f"cancelled ({how}) {len(result.open_orders)} open order(s):"]
    for o in result.open_orders:
        price = "" if o.limit_price is None else f" {o.limit_price:g}"
        whose = "" if is_bot_order(o.order_ref) else "  (not placed by the bot)"
        lines.append(
            f"  {o.side} {o.quantity:g} {o.symbol} {o.order_type}{price}  "
            f"{o.order_ref or '-'}{whose}"
        )
    return lines


def describe_flatten(result: FlattenResult) -> list[str]:
    """What a flatten did, in lines for the operator (shell, HTTP ``summary``)."""
    lines = describe_cancel_all(result.cancelled)
    if result.still_open:
        lines.append(f"warning: still open after the wait: {', '.join(result.still_open)}")
    if not result.closing:
        lines.append("no position to close")
    for c in result.closing:
        what = f"{c.side} {c.quantity:g} {c.symbol} MKT (position {c.position:g})"
        if c.error is not None:
            lines.append(f"NOT SENT: {what}: {c.error}")
        elif c.sent:
            lines.append(f"sent: {what}  {c.order_ref}")
        else:
            lines.append(f"already being closed, nothing new sent: {what}  {c.order_ref}")
    return lines


def closing_key(day: datetime, account: str, symbol: str, position: float, generation: int) -> str:
    """The idempotency key of the order closing ``position`` in ``symbol`` on ``day``:
    the same in every repeat, readable in the ORDER event (``FL261206-AAPL-3fa2c1-1``)."""
    digest = hashlib.sha256(f"{account}|{symbol}|{position:g}".encode()).hexdigest()[:6]
    readable = "".join(ch if ch.isalnum() else "_" for ch in symbol)[:12]
    return f"{CLOSING_PREFIX}{day:%y%m%d}-{readable}-{digest}-{generation}"


def flatten(
    broker: Tellable,
    status: BrokerStatus,
    *,
    by: str,
    reason: str,
    timeout_s: float = 30.0,
) -> FlattenResult:
    """Cancel every open order, wait (within ``timeout_s`` in all) for ours to be final,
    then close every non-zero position of the account with a reduce-only market order.

    Raises :class:`BrokerNotReady` when the broker is not synced (nothing done),
    ``EventNotDurable`` when the cancel-all could not be recorded (nothing sent),
    ``TimeoutError`` or the gateway's error when the cancel or the position query fails.
    A closing order that is refused (e.g. reconciliation has not passed) is reported in
    its :class:`ClosingOrder` and the other positions are still closed.
    """
    deadline = time.monotonic() + timeout_s

    def remaining() -> float:
        return max(0.1, deadline - time.monotonic())

    cancelled = cancel_all(
        broker, status, by=by, reason=reason, timeout_s=remaining(), for_flatten=True
    )
    still_open = []
    for order in cancelled.open_orders:
        if status.order(order.order_ref) is None:
            continue  # not placed through this broker: no status reports to wait for
        done = status.wait_for_order(order.order_ref, FINAL_STATUSES, remaining())
        if done is None:
            still_open.append(order.order_ref)
    if still_open:
        log.warning("flatten_orders_not_final", order_refs=still_open)
    day = datetime.now(NEW_YORK)
    closing = []
    for held in positions(broker, status, remaining()):
        if abs(held.quantity) <= EPSILON:
            continue
        closing.append(
            _close(broker, status, day, held.account, held.symbol, held.quantity, remaining())
        )
    result = FlattenResult(
        cancelled=cancelled, still_open=tuple(still_open), closing=tuple(closing)
    )
    log.warning(
        "flatten_done",
        by=by,
        sent=[c.order_ref for c in result.sent],
        known=[c.order_ref for c in closing if not c.sent and c.error is None],
        errors=[c.error for c in closing if c.error is not None],
    )
    return result


def _close(
    broker: Tellable,
    status: BrokerStatus,
    day: datetime,
    account: str,
    symbol: str,
    position: float,
    timeout_s: float,
) -> ClosingOrder:
    """Send (or find) the order closing one position."""
    side = "SELL" if position > 0 else "BUY"
    quantity = abs(position)
    common: dict[str, Any] = {"symbol": symbol, "position": position, "side": side}
    for generation in range(1, MAX_GENERATIONS + 1):
        key = closing_key(day, account, symbol, position, generation)
        known = status.order(order_ref_for(key))
        if known is not None and known.status not in FINAL_STATUSES:
            return ClosingOrder(**common, quantity=quantity, order_ref=known.order_ref, sent=False)
        if known is not None:
            continue  # ended (unfilled, or the same position came back): the next one
        request = OrderRequest(symbol, side, quantity, client_order_id=key, reduce_only=True)
        try:
            ref = place_order(broker, status, request, timeout_s)
        except (RuntimeError, EventNotDurable, OSError, ValueError) as exc:
            # RuntimeError: refused (TradingBlocked, NotReducing) or BrokerNotReady.
            refused = isinstance(exc, TradingBlocked)
            error = str(exc) if refused else f"{type(exc).__name__}: {exc}"
            return ClosingOrder(
                **common, quantity=quantity, order_ref=None, sent=False, error=error
            )
        return ClosingOrder(**common, quantity=quantity, order_ref=ref, sent=True)
    error = f"more than {MAX_GENERATIONS} closing orders for this position today"
    return ClosingOrder(**common, quantity=quantity, order_ref=None, sent=False, error=error)
