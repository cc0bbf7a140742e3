"""Strategies the tests load by name (``strategy_samples:BuyOnce``), and what they saw.

Each class records its observations in class-level lists (read by the test thread), so
a test can follow a strategy across restarts of its actor.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from tradingbot.strategies import (
    Bar,
    Context,
    Fill,
    OrderUpdate,
    ParamValue,
    Quote,
    Signal,
    StrategyBase,
)


@dataclass(frozen=True, slots=True)
class StartView:
    """What a (re)started strategy read from the broker and the events table."""

    position: float
    open_orders: tuple[str, ...]
    last_signal: Signal | None
    watchlist: tuple[str, ...]


class BuyOnce(StrategyBase):
    """Buys ``quantity`` of ``symbol`` once, on its first quote, unless a stored signal
    says it already decided (state rebuilt from what is durable, never from memory)."""

    strategy_id = "buy_once"
    params: ClassVar[Mapping[str, ParamValue]] = {"symbol": "AAPL", "quantity": 1}
    lock = threading.Lock()
    starts: ClassVar[list[StartView]] = []
    fills: ClassVar[list[Fill]] = []
    updates: ClassVar[list[OrderUpdate]] = []
    orders: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.done = False

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.starts.clear()
            cls.fills.clear()
            cls.updates.clear()
            cls.orders.clear()

    def on_start(self, ctx: Context) -> None:
        symbol = str(ctx.params["symbol"])
        last = ctx.last_signals().get(symbol)
        view = StartView(
            position=ctx.position(symbol),
            open_orders=tuple(o.id for o in ctx.open_orders()),
            last_signal=last,
            watchlist=ctx.watchlist,
        )
        with self.lock:
            self.starts.append(view)
        self.done = last is not None

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        if self.done or quote.symbol != ctx.params["symbol"]:
            return
        self.done = True
        signal = ctx.signal(quote.symbol, "BUY", 1.0, "first quote", {"last": quote.last})
        quantity = ctx.params["quantity"]
        assert isinstance(quantity, int)
        order = ctx.buy(quote.symbol, quantity, signal=signal)
        with self.lock:
            self.orders.append(order)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        with self.lock:
            self.fills.append(fill)

    def on_order_status(self, ctx: Context, order: OrderUpdate) -> None:
        with self.lock:
            self.updates.append(order)


class Crasher(StrategyBase):
    """Raises on every quote: a crash loop."""

    strategy_id = "crasher"

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        raise RuntimeError(f"deliberate crash on a {quote.symbol} quote")


class MinuteBars(StrategyBase):
    """Wants one-minute bars, warmed up with the last 5 historical ones."""

    strategy_id = "minute_bars"
    bar_seconds = 60
    warmup_bars = 5
    warm: ClassVar[list[list[Bar]]] = []

    def on_start(self, ctx: Context) -> None:
        self.warm.append(list(ctx.bars("AAPL", 10)))


class FiveSecondBars(StrategyBase):
    """Wants the gateway's 5-second real-time bars."""

    strategy_id = "five_second_bars"
    bar_seconds = 5
    seen: ClassVar[list[Bar]] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        assert ctx.bars(bar.symbol, 1) == [bar]
        self.seen.append(bar)
