"""What a strategy author sees: the :class:`Strategy` contract, its :class:`Context`, and
the plain data both exchange. Nothing here is an ``ib_async`` object.

A strategy is a class in the user's own module, loaded by
``TRADINGBOT_STRATEGIES=module:Class``. Each configured strategy runs in its own
supervised actor (its own thread): callbacks of one strategy never run concurrently,
and a callback that raises crashes that actor, which is restarted with its state rebuilt
from the broker and the events table (see ``docs/strategies.md``). Two exceptions are
not crashes: :class:`OrderRefused` (the broker, a risk limit or the kill switch refused
an order) and ``BrokerNotReady`` (the connection is down); the callback is abandoned, a
warning is logged, and the strategy goes on with the next message.

```python
from tradingbot.strategies import Context, Quote, StrategyBase

class FirstQuote(StrategyBase):
    strategy_id = "first_quote"
    params = {"quantity": 1}

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        if quote.symbol not in ctx.last_signals():
            signal = ctx.signal(quote.symbol, "BUY", 1.0, "first quote", {"last": quote.last})
            ctx.buy(quote.symbol, ctx.params["quantity"], signal=signal)
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

import structlog

# Re-exported: the strategy API's data (the package's __all__ lists its public names).
from tradingbot.broker.answers import Position as Position
from tradingbot.broker.bars import Bar as Bar
from tradingbot.broker.market import Quote as Quote

SIDES = ("BUY", "SELL")
SIGNAL_SIDES = ("BUY", "SELL", "FLAT")

SignalId = str  # the SIGNAL event's id (a UUID as text)
OrderId = str  # our order id: the order's ``orderRef`` (``TB-<strategy>.<digest>``)

# Parameter values a TOML table may set (the type of each default decides).
ParamValue = bool | int | float | str | list[str]


class OrderRefused(Exception):
    """The order was not placed: a gate is closed (reconciliation, kill switch, live
    account), a risk limit refused it, the broker is not connected, or the request is
    invalid. The message says why. Nothing was sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A decision, as stored in its SIGNAL event (``id`` is the event's id)."""

    id: SignalId
    symbol: str
    side: str  # BUY, SELL or FLAT
    strength: float
    reason: str
    inputs: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """One of the strategy's orders as the broker reports it."""

    id: OrderId
    symbol: str
    side: str
    quantity: float
    order_type: str
    limit_price: float | None
    status: str
    filled: float
    signal_id: SignalId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution of one of the strategy's orders (from its stored TRADE event)."""

    order_id: OrderId
    symbol: str
    side: str
    quantity: float
    price: float
    commission: float | None
    exec_id: str
    signal_id: SignalId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdate:
    """An order of the strategy reached a final status (Filled, Cancelled, Inactive)."""

    order_id: OrderId
    symbol: str
    side: str
    quantity: float
    status: str
    filled: float
    avg_fill_price: float
    signal_id: SignalId | None = None


class Context(Protocol):
    """What a strategy may do and read; handed to every callback (the same object for
    the life of one actor incarnation). Every method runs on the strategy's thread."""

    strategy_id: str
    watchlist: tuple[str, ...]  # the symbols it subscribed (unknown ones are left out)
    # Defaults overlaid with its TOML table; each value has its default's type (checked
    # at load), so ``int(ctx.params["fast"])`` is safe.
    params: Mapping[str, Any]
    log: structlog.stdlib.BoundLogger  # bound with strategy_id

    def quote(self, symbol: str) -> Quote | None:
        """The latest quote of ``symbol`` (None before the first one)."""
        ...

    def bars(self, symbol: str, n: int) -> Sequence[Bar]:
        """The last ``n`` completed bars of ``symbol``, oldest first (fewer at the start)."""
        ...

    def positions(self) -> Mapping[str, Position]:
        """The account's positions at the broker by symbol (a round trip; account-wide)."""
        ...

    def position(self, symbol: str) -> float:
        """The signed quantity held in ``symbol`` at the broker (0 when flat)."""
        ...

    def open_orders(self) -> Sequence[Order]:
        """This strategy's open orders at the broker (a round trip)."""
        ...

    def last_signals(self) -> Mapping[str, Signal]:
        """This strategy's latest signal per symbol, restored from the events table at
        (re)start and updated by :meth:`signal`."""
        ...

    def signal(
        self,
        symbol: str,
        side: str,
        strength: float,
        reason: str,
        inputs: Mapping[str, Any] | None = None,
    ) -> SignalId:
        """Record a decision as a durable SIGNAL event; return its id (blocks until stored)."""
        ...

    def buy(
        self,
        symbol: str,
        quantity: float,
        *,
        limit: float | None = None,
        signal: SignalId | None = None,
        key: str | None = None,
    ) -> OrderId:
        """Buy (market, or limit at ``limit``) for ``signal`` (default: the latest signal
        of ``symbol``); the same signal and key always give the same order id, so placing
        again sends nothing new. Raises :class:`OrderRefused`."""
        ...

    def sell(
        self,
        symbol: str,
        quantity: float,
        *,
        limit: float | None = None,
        signal: SignalId | None = None,
        key: str | None = None,
    ) -> OrderId:
        """Sell; as :meth:`buy`."""
        ...

    def close(
        self,
        symbol: str,
        quantity: float | None = None,
        *,
        limit: float | None = None,
        signal: SignalId | None = None,
        key: str | None = None,
    ) -> OrderId | None:
        """Reduce the position in ``symbol`` by ``quantity`` (default: all of it) with a
        sell for a long or a buy for a short; None when flat (nothing sent)."""
        ...

    def cancel(self, order_id: OrderId) -> None:
        """Cancel one of this strategy's open orders (the outcome arrives as an update)."""
        ...

    def schedule(self, every_s: float) -> None:
        """Call :meth:`Strategy.on_timer` every ``every_s`` seconds from now on."""
        ...

    def trading_blocked(self) -> str | None:
        """Why new orders would be refused right now (kill switch, reconciliation...)."""
        ...


class Strategy(Protocol):
    """The contract of a strategy class; subclass :class:`StrategyBase` for no-op defaults.

    Class attributes: ``strategy_id`` (default id; ``TRADINGBOT_STRATEGIES`` may give
    another), ``params`` (every parameter with its default: the TOML table may set only
    these keys, with values of the same type), ``bar_seconds`` (bar length the strategy
    wants in :meth:`on_bar`; 0 for none) and ``warmup_bars`` (historical bars fetched at
    start). The class is instantiated without arguments at every (re)start.
    """

    strategy_id: ClassVar[str]
    params: ClassVar[Mapping[str, ParamValue]]
    bar_seconds: ClassVar[int]
    warmup_bars: ClassVar[int]

    def on_start(self, ctx: Context) -> None:
        """Started (or restarted): rebuild state from ``ctx`` (positions, open orders,
        last signals), call ``ctx.schedule`` for timers."""

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        """A new quote of a watchlist symbol."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        """A bar of ``bar_seconds`` completed."""

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """One of its orders was (partly) filled; the TRADE event is stored."""

    def on_order_status(self, ctx: Context, order: OrderUpdate) -> None:
        """One of its orders became final."""

    def on_timer(self, ctx: Context, now: datetime) -> None:
        """A timer from :meth:`Context.schedule` fired (``now`` in UTC)."""

    def on_stop(self, ctx: Context) -> None:
        """The strategy is stopping in order (not after a crash)."""


class StrategyBase:
    """No-op callbacks and empty defaults: subclass it and override what you need."""

    strategy_id: ClassVar[str] = ""
    params: ClassVar[Mapping[str, ParamValue]] = {}
    bar_seconds: ClassVar[int] = 0
    warmup_bars: ClassVar[int] = 0

    def on_start(self, ctx: Context) -> None:
        """Nothing to rebuild."""

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        """Quotes ignored."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        """Bars ignored."""

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """Fills ignored."""

    def on_order_status(self, ctx: Context, order: OrderUpdate) -> None:
        """Order updates ignored."""

    def on_timer(self, ctx: Context, now: datetime) -> None:
        """Timers ignored."""

    def on_stop(self, ctx: Context) -> None:
        """Nothing to release."""
