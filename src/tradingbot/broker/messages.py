"""Every message the broker actor receives: commands from callers, reports from its client.

Commands (imperative: :class:`PlaceOrder`, :class:`Query`, ...) carry a
``concurrent.futures.Future`` as their reply slot; :mod:`tradingbot.broker.api` builds
and awaits them. Reports (past tense: :class:`FillReported`, :class:`ConnectionLost`, ...)
are told by callbacks on the client's loop thread: plain data, never ``ib_async``
objects. Reports about one connection carry its ``epoch``: messages left in a crashed
incarnation's inbox reach its replacement, which ignores them.
"""

from __future__ import annotations

import concurrent.futures
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tradingbot.broker.bars import Bar
from tradingbot.broker.market import Quote
from tradingbot.tellable import Tellable

MAX_REASON_CHARS = 500  # as the kill switch's reasons
CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,40}")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order a strategy asks for: ``side`` BUY/SELL, ``order_type`` MKT/LMT.

    ``client_order_id`` is an optional idempotency key chosen by the caller: the order's
    id (its ``orderRef``) becomes ``TB-<client_order_id>``, and placing again with a key
    whose order is already known returns that order's id without sending anything.
    ``strategy_id`` and ``signal_id`` name the strategy and the SIGNAL event behind the
    order; its ORDER and TRADE events carry them.

    ``reduce_only`` marks an order that only reduces a position (a flatten's closing
    order): it passes the kill switch's gate (not reconciliation's), and the broker
    refuses it when, against the gateway's position at the moment of sending, it would
    increase or flip the position.
    """

    symbol: str
    side: str
    quantity: float
    order_type: str = "MKT"
    limit_price: float | None = None
    exchange: str = "SMART"
    currency: str = "USD"
    client_order_id: str | None = None
    # Who decided it (tradingbot.strategies): carried into the ORDER and TRADE events.
    strategy_id: str | None = None
    signal_id: str | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("symbol: required")
        if self.side not in ("BUY", "SELL"):
            raise ValueError(f"side: expected BUY or SELL, got {self.side!r}")
        if not self.quantity > 0:
            raise ValueError(f"quantity: must be > 0, got {self.quantity!r}")
        if self.order_type not in ("MKT", "LMT"):
            raise ValueError(f"order_type: expected MKT or LMT, got {self.order_type!r}")
        if self.order_type == "LMT" and not (self.limit_price and self.limit_price > 0):
            raise ValueError("limit_price: a LMT order needs a positive limit price")
        if self.client_order_id is not None and not CLIENT_ORDER_ID.fullmatch(self.client_order_id):
            raise ValueError("client_order_id: 1-40 characters from letters, digits and _ . : -")

    def event_fields(self, order_ref: str) -> dict[str, Any]:
        """The order as its ORDER and RISK events' context names it."""
        return {
            "order_ref": order_ref,
            "symbol": self.symbol,
            "side": self.side,
            "quantity": self.quantity,
            "order_type": self.order_type,
            "limit_price": self.limit_price,
            "client_order_id": self.client_order_id,
        }


# -- commands (from any thread) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Command: place ``request``; ``reply`` resolves to our order id or a refusal."""

    request: OrderRequest
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Command: cancel our order ``order_ref``; ``reply`` resolves to it or a refusal."""

    order_ref: str
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Command: the gateway's global cancel, recorded first (an ORDER event, and a RISK
    event naming ``by`` and ``reason``); ``reply`` gets the orders open just before it."""

    by: str
    reason: str
    flatten: bool = False  # part of a flatten: the RISK event says so
    reply: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)

    def __post_init__(self) -> None:
        # Both land in events, e-mail subjects and terminals: one line, bounded.
        for name, text in (("by", self.by), ("reason", self.reason)):
            if not text.strip() or len(text) > MAX_REASON_CHARS:
                raise ValueError(f"{name}: 1-{MAX_REASON_CHARS} characters, got {len(text)}")
            if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
                raise ValueError(f"{name} must not contain control characters")


QUERIES = (
    "positions",
    "portfolio",
    "account_values",
    "executions",
    "open_orders",
    "completed_orders",
)


@dataclass(frozen=True, slots=True)
class Query:
    """Command: ask the gateway ``what`` (one of :data:`QUERIES`); ``reply`` gets the list."""

    what: str
    reply: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)
    since: datetime | None = None  # executions: only those at or after this moment


@dataclass(frozen=True, slots=True, eq=False)
class Subscribe:
    """Command: tell ``sink`` every new :class:`Quote` of ``symbol``."""

    symbol: str
    sink: Tellable
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True, eq=False)
class Unsubscribe:
    """Command: stop telling ``sink`` quotes of ``symbol``."""

    symbol: str
    sink: Tellable
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True)
class FetchBars:
    """Command: the gateway's historical bars of ``symbol``; ``reply`` gets a list of
    :class:`Bar` (the arguments were checked by :func:`~tradingbot.broker.api.historical_bars`)."""

    symbol: str
    bar_size: str
    duration: str
    what_to_show: str
    use_rth: bool
    end: datetime | None
    timeout_s: float
    reply: concurrent.futures.Future[list[Bar]] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True, eq=False)
class SubscribeBars:
    """Command: tell ``sink`` every completed :class:`Bar` of ``seconds`` of ``symbol``."""

    symbol: str
    seconds: int
    sink: Tellable
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True, eq=False)
class UnsubscribeBars:
    """Command: stop telling ``sink`` bars of ``seconds`` of ``symbol``."""

    symbol: str
    seconds: int
    sink: Tellable
    reply: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)


@dataclass(frozen=True, slots=True)
class Probe:
    """Timer: send a heartbeat request (``reqCurrentTime``) to the gateway."""


# -- reports (from the client's loop thread) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """Setup could not connect: crash, so that the supervisor's backoff retries."""

    epoch: str
    error: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The probe's outcome (from the loop thread): round trip in ms, or the error."""

    epoch: str
    roundtrip_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The client's ``disconnectedEvent`` fired (not during our own disconnect)."""

    epoch: str


@dataclass(frozen=True, slots=True)
class GatewayNotice:
    """Error 1100, 1101 or 1102 from the gateway."""

    epoch: str
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class QuotesArrived:
    """New quotes from the client's ``pendingTickersEvent`` (one network batch)."""

    epoch: str
    quotes: tuple[Quote, ...]


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """A symbol's market data request finished on the loop: ``error`` is None on success."""

    epoch: str
    symbol: str
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class BarArrived:
    """A 5-second real-time bar of a symbol's bar stream (``RealTimeBarList.updateEvent``)."""

    epoch: str
    bar: Bar


@dataclass(frozen=True, slots=True)
class BarStreamStarted:
    """A symbol's real-time bar request finished on the loop: ``error`` is None on success."""

    epoch: str
    symbol: str
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class CancelChecked:
    """The order a :class:`CancelOrder` is about was looked up in the client: ``open`` says
    whether the gateway still has it open, ``order_id`` is its gateway id then."""

    epoch: str
    cancel: CancelOrder
    open: bool
    order_id: int = 0


@dataclass(frozen=True, slots=True)
class QuoteFetched:
    """The snapshot quote a pre-trade check asked for arrived (``price`` None: none to be
    had): the order ``place`` (our id ``order_ref``) goes on from its risk check."""

    epoch: str
    place: PlaceOrder
    order_ref: str
    price: float | None


@dataclass(frozen=True, slots=True)
class SendFailed:
    """An order's send failed on the loop thread: publish its ``Unresolved`` status."""

    order_ref: str


@dataclass(frozen=True, slots=True)
class OrderStatusChanged:
    """An order status report. When ``applied`` (on the loop thread, already in the
    status), ``resolved`` says it settled an unresolved order and ``final`` that it
    made the order final. ``never_sent``: why the broker cancelled the order itself
    before sending it (a gate closed at the last moment); the gateway never saw it."""

    order_ref: str
    status: str
    filled: float
    avg_fill_price: float
    order_id: int
    perm_id: int
    applied: bool = False
    resolved: bool = False
    final: bool = False
    never_sent: str = ""


@dataclass(frozen=True, slots=True)
class FillReported:
    """A commission report arrived for an execution of one of our orders."""

    order_ref: str
    symbol: str
    side: str
    quantity: float
    price: float
    commission: float | None
    currency: str
    realized_pnl: float | None
    order_id: int
    perm_id: int
    exec_id: str
    time: float | None = None  # execution time (epoch seconds), when the gateway sent it
    reconciled: bool = False  # found at (re)connect, not reported live
