"""The broker's API for strategies and the rest of the bot: place and cancel orders, ask
the gateway, subscribe to market data, fetch and subscribe to bars. Every function may
be called from any thread.

Each one tells the broker actor a command and waits for its reply, with a timeout. A
broker that is not synced refuses at once with :class:`BrokerNotReady` (nothing is
queued for later); a failed or timed-out query raises, and is never an empty answer.

```python
order_id = place_order(broker, status, OrderRequest("AAPL", "BUY", 10, client_order_id="k1"))
status.wait_for_order(order_id, {"Filled"}, timeout_s=30)
day = historical_bars(broker, status, "AAPL", bar_size="1 min", duration="1 D")
subscribe_bars(broker, status, "AAPL", my_actor_handle, seconds=60)  # told each Bar
```

Bars are :class:`~tradingbot.broker.bars.Bar` (UTC ``start``, ``seconds`` long). A
subscriber is told a bar when it *completes*: ``seconds=5`` gets the gateway's 5-second
real-time bars as they come, longer lengths (a multiple of 5 dividing an hour; 60 by
default) bars aggregated from them on the broker side, aligned to the clock.
"""

from __future__ import annotations

import concurrent.futures
import re
from datetime import datetime
from typing import Any

from tradingbot.broker.answers import (
    AccountValue,
    CancelAllResult,
    Execution,
    GatewayOrder,
    PortfolioItem,
    Position,
)
from tradingbot.broker.bars import (
    WHAT_TO_SHOW,
    Bar,
    bar_seconds,
    check_duration,
    check_stream_seconds,
)
from tradingbot.broker.errors import BrokerNotReady, UnknownOrder
from tradingbot.broker.messages import (
    CancelAll,
    CancelOrder,
    FetchBars,
    OrderRequest,
    PlaceOrder,
    Query,
    Subscribe,
    SubscribeBars,
    Unsubscribe,
    UnsubscribeBars,
)
from tradingbot.broker.status import BrokerStatus, ConnectionState
from tradingbot.tellable import Tellable

SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9 ._-]{0,19}")


def _refuse_unless_synced(status: BrokerStatus, what: str) -> None:
    state = status.view().state
    if state != ConnectionState.SYNCED:
        raise BrokerNotReady(f"{what} refused: the broker is {state.value}, not synced")


def _request(
    broker: Tellable, status: BrokerStatus, message: Any, what: str, timeout_s: float
) -> Any:
    """Tell the actor ``message`` unless the broker is not synced; wait for its reply."""
    _refuse_unless_synced(status, what)
    broker.tell(message)
    # Not reply.result(timeout): a TimeoutError *answered* by the actor (the gateway did
    # not answer a query) must not be mistaken for the actor not answering.
    done, _ = concurrent.futures.wait([message.reply], timeout_s)
    if not done:
        raise TimeoutError(f"the broker did not answer within {timeout_s:g} s")
    return message.reply.result()


def place_order(
    broker: Tellable, status: BrokerStatus, request: OrderRequest, timeout_s: float = 30.0
) -> str:
    """Place an order through the broker actor; return our order id (its ``orderRef``).

    Raises :class:`BrokerNotReady` at once when the broker is not synced (nothing is
    queued), :class:`TradingBlocked` for a new order while a gate is closed
    (reconciliation has not passed, or the kill switch is paused or tripped; checked
    again right before the send; a retry of a known key still returns its order),
    ``EventNotDurable`` when the ORDER event could not be stored (nothing is sent),
    ``TimeoutError`` when the actor did not answer in time (the outcome is then unknown;
    look the order up by reference before retrying).
    """
    refusal = status.order_refusal(request.client_order_id, reduce_only=request.reduce_only)
    if refusal is not None:
        raise refusal
    result: str = _request(broker, status, PlaceOrder(request), "order", timeout_s)
    return result


def cancel_order(
    broker: Tellable, status: BrokerStatus, order_id: str, timeout_s: float = 30.0
) -> str:
    """Cancel one of our orders by its id (``orderRef``); return the id once the cancel is sent.

    Raises :class:`BrokerNotReady` at once when the broker is not synced,
    :class:`UnknownOrder` when no order with this id was placed through this broker,
    ``ValueError`` when the order is final (filled, cancelled) or not open at the gateway,
    ``EventNotDurable`` when the cancel's ORDER event could not be stored (nothing is
    sent), ``TimeoutError`` when the actor did not answer in time. The outcome arrives as
    an order status (``Cancelled``) in ``status.order(order_id)``.
    """
    _refuse_unless_synced(status, "cancel")
    if status.order(order_id) is None:
        raise UnknownOrder(f"unknown order id {order_id!r}")
    result: str = _request(broker, status, CancelOrder(order_id), "cancel", timeout_s)
    return result


def cancel_all(
    broker: Tellable,
    status: BrokerStatus,
    *,
    by: str,
    reason: str,
    timeout_s: float = 30.0,
    for_flatten: bool = False,
) -> CancelAllResult:
    """Cancel every open order of the account at the gateway (global cancel); return the
    orders that were open just before it (ours have a ``TB-`` ``order_ref``).

    First a durable ORDER event (``action`` ``cancel_all``) and a durable RISK event
    naming ``by`` and ``reason`` (mailed; ``for_flatten`` says it is a flatten's first
    step). What IB's global cancel reaches, and when the broker cancels order by order
    instead: :mod:`tradingbot.broker.flatten`. Cancel-all passes every gate (it only
    reduces risk). Raises :class:`BrokerNotReady` when not synced, ``EventNotDurable``
    when an event could not be stored (nothing sent), ``TimeoutError`` when the actor or
    the gateway did not answer. The cancels' outcomes arrive as order statuses.
    """
    message = CancelAll(by, reason, for_flatten)
    result: CancelAllResult = _request(broker, status, message, "cancel-all", timeout_s)
    return result


def positions(broker: Tellable, status: BrokerStatus, timeout_s: float = 30.0) -> list[Position]:
    """Every position at the gateway (of the configured account), freshly requested.

    Raises :class:`BrokerNotReady` when not synced and ``TimeoutError`` (or the
    gateway's error) when the query fails: a failed query is never an empty answer.
    """
    result: list[Position] = _request(broker, status, Query("positions"), "positions", timeout_s)
    return result


def portfolio(
    broker: Tellable, status: BrokerStatus, timeout_s: float = 30.0
) -> list[PortfolioItem]:
    """The account's open positions with the gateway's marks (market price, value and
    unrealized P&L), freshly requested; :func:`account_values` right after is as fresh.

    Raises like :func:`positions`; ``ValueError`` when the login manages several
    accounts and ``TRADINGBOT_IB_ACCOUNT`` is unset.
    """
    what = "portfolio"
    result: list[PortfolioItem] = _request(broker, status, Query(what), what, timeout_s)
    return result


def account_values(
    broker: Tellable, status: BrokerStatus, timeout_s: float = 30.0
) -> list[AccountValue]:
    """The account's values (``NetLiquidation``, ``TotalCashValue``, ...) as streamed."""
    what = "account_values"
    result: list[AccountValue] = _request(broker, status, Query(what), what, timeout_s)
    return result


def executions(
    broker: Tellable, status: BrokerStatus, timeout_s: float = 30.0, since: datetime | None = None
) -> list[Execution]:
    """The executions the gateway reports (it keeps them across sessions for the day);
    only those executed at or after ``since`` (to the second) when given."""
    what = "executions"
    query = Query(what, since=since)
    result: list[Execution] = _request(broker, status, query, what, timeout_s)
    return result


def open_orders(
    broker: Tellable, status: BrokerStatus, timeout_s: float = 30.0
) -> list[GatewayOrder]:
    """Every open order at the gateway, ours and anyone else's (by ``order_ref``)."""
    what = "open_orders"
    result: list[GatewayOrder] = _request(broker, status, Query(what), what, timeout_s)
    return result


def completed_orders(
    broker: Tellable, status: BrokerStatus, timeout_s: float = 30.0
) -> list[GatewayOrder]:
    """Orders the gateway completed (filled, cancelled, inactive): where reconciliation
    looks an order up individually before declaring it missing."""
    what = "completed_orders"
    result: list[GatewayOrder] = _request(broker, status, Query(what), what, timeout_s)
    return result


def subscribe_market_data(
    broker: Tellable, status: BrokerStatus, symbol: str, sink: Tellable, timeout_s: float = 30.0
) -> str:
    """Tell ``sink`` a :class:`~tradingbot.broker.market.Quote` on every price or size
    change of ``symbol``.

    The subscription survives reconnects (the broker subscribes again after each one).
    Raises ``ValueError`` for a malformed symbol, :class:`UnknownSymbol` when the
    gateway has no such contract, :class:`BrokerNotReady` when not synced.
    """
    _check_symbol(symbol)
    result: str = _request(broker, status, Subscribe(symbol, sink), "subscribe", timeout_s)
    return result


def unsubscribe_market_data(
    broker: Tellable, status: BrokerStatus, symbol: str, sink: Tellable, timeout_s: float = 30.0
) -> str:
    """Stop telling ``sink`` quotes of ``symbol`` (the last one out cancels the stream)."""
    result: str = _request(broker, status, Unsubscribe(symbol, sink), "unsubscribe", timeout_s)
    return result


def historical_bars(
    broker: Tellable,
    status: BrokerStatus,
    symbol: str,
    *,
    bar_size: str = "1 min",
    duration: str = "1 D",
    what_to_show: str = "TRADES",
    use_rth: bool = False,
    end: datetime | None = None,
    timeout_s: float = 30.0,
) -> list[Bar]:
    """The gateway's historical bars of ``symbol``, oldest first, covering ``duration``
    (IB's ``"1 D"``, ``"3600 S"``, ``"2 W"``, ...) up to ``end`` (default: now).

    ``bar_size`` is one of IB's sizes (``"1 min"``, ``"5 mins"``, ``"1 hour"``,
    ``"1 day"``, ...; see :data:`~tradingbot.broker.bars.BAR_SIZES`). Raises
    ``ValueError`` for a malformed argument (before anything is sent),
    :class:`UnknownSymbol`, :class:`BrokerNotReady` when not synced,
    :class:`BarsUnavailable` when the gateway refuses the request and ``TimeoutError``
    when it does not answer within ``timeout_s``: a failed request is never an empty list.
    """
    _check_symbol(symbol)
    bar_seconds(bar_size)
    check_duration(duration)
    if what_to_show not in WHAT_TO_SHOW:
        raise ValueError(
            f"what_to_show: expected one of {', '.join(WHAT_TO_SHOW)}; got {what_to_show!r}"
        )
    if end is not None and end.tzinfo is None:
        raise ValueError("end: a timezone-aware datetime (e.g. UTC), got a naive one")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s: must be > 0, got {timeout_s!r}")
    fetch = FetchBars(symbol, bar_size, duration, what_to_show, use_rth, end, timeout_s)
    # The actor's own timeout answers first; this one only guards a stuck actor.
    result: list[Bar] = _request(broker, status, fetch, "bars", timeout_s + 5.0)
    return result


def subscribe_bars(
    broker: Tellable,
    status: BrokerStatus,
    symbol: str,
    sink: Tellable,
    *,
    seconds: int = 60,
    timeout_s: float = 30.0,
) -> str:
    """Tell ``sink`` a :class:`~tradingbot.broker.bars.Bar` of ``symbol`` each time a bar of
    ``seconds`` completes (5: the gateway's real-time bars; 60: one-minute bars, emitted
    when the minute closes; any multiple of 5 that divides 3600).

    Shared per ``(symbol, seconds)`` and re-requested after every reconnect. The first
    bar may come up to two lengths after subscribing (a partial first span is dropped).
    Raises ``ValueError`` for a malformed symbol or length, :class:`UnknownSymbol` when
    the gateway has no such contract, :class:`BrokerNotReady` when not synced.
    """
    _check_symbol(symbol)
    check_stream_seconds(seconds)
    message = SubscribeBars(symbol, seconds, sink)
    result: str = _request(broker, status, message, "subscribe", timeout_s)
    return result


def unsubscribe_bars(
    broker: Tellable,
    status: BrokerStatus,
    symbol: str,
    sink: Tellable,
    *,
    seconds: int = 60,
    timeout_s: float = 30.0,
) -> str:
    """Stop telling ``sink`` bars of ``seconds`` of ``symbol`` (the symbol's last bar
    subscriber out cancels its gateway stream)."""
    message = UnsubscribeBars(symbol, seconds, sink)
    result: str = _request(broker, status, message, "unsubscribe", timeout_s)
    return result


def _check_symbol(symbol: str) -> None:
    if not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
        raise ValueError(f"symbol: 1-20 upper-case letters, digits and ' ._-', got {symbol!r}")
