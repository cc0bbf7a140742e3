"""The broker's API for strategies and the rest of the bot: place and cancel orders, ask
the gateway, subscribe to market data. Every function may be called from any thread.

Each one tells the broker actor a command and waits for its reply, with a timeout. A
broker that is not synced refuses at once with :class:`BrokerNotReady` (nothing is
queued for later); a failed or timed-out query raises, and is never an empty answer.

```python
order_id = place_order(broker, status, OrderRequest("AAPL", "BUY", 10, client_order_id="k1"))
status.wait_for_order(order_id, {"Filled"}, timeout_s=30)
```
"""

from __future__ import annotations

import concurrent.futures
import re
from datetime import datetime
from typing import Any

from tradingbot.broker.answers import AccountValue, Execution, GatewayOrder, Position
from tradingbot.broker.errors import BrokerNotReady, UnknownOrder
from tradingbot.broker.messages import (
    CancelOrder,
    OrderRequest,
    PlaceOrder,
    Query,
    Subscribe,
    Unsubscribe,
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
    refusal = status.order_refusal(request.client_order_id)
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


def positions(broker: Tellable, status: BrokerStatus, timeout_s: float = 30.0) -> list[Position]:
    """Every position at the gateway (of the configured account), freshly requested.

    Raises :class:`BrokerNotReady` when not synced and ``TimeoutError`` (or the
    gateway's error) when the query fails: a failed query is never an empty answer.
    """
    result: list[Position] = _request(broker, status, Query("positions"), "positions", timeout_s)
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
    if not SYMBOL.fullmatch(symbol):
        raise ValueError(f"symbol: 1-20 upper-case letters, digits and ' ._-', got {symbol!r}")
    result: str = _request(broker, status, Subscribe(symbol, sink), "subscribe", timeout_s)
    return result


def unsubscribe_market_data(
    broker: Tellable, status: BrokerStatus, symbol: str, sink: Tellable, timeout_s: float = 30.0
) -> str:
    """Stop telling ``sink`` quotes of ``symbol`` (the last one out cancels the stream)."""
    result: str = _request(broker, status, Unsubscribe(symbol, sink), "unsubscribe", timeout_s)
    return result
