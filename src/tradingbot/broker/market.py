"""Market data: who subscribed to which symbol, and the latest quote of each.

A :class:`MarketData` outlives broker actor incarnations (the runtime creates it once,
like :class:`~tradingbot.broker.BrokerStatus`): after a reconnect the new incarnation
subscribes again to every symbol in it, so a strategy's subscription survives a lost
connection. Quotes are read from any thread without asking the actor; subscribers are
also *told* every new :class:`Quote` of their symbols. Its ``bars`` are the bar
subscriptions (:class:`~tradingbot.broker.bars.BarSubscriptions`), shared the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from tradingbot.broker.bars import BarSubscriptions
from tradingbot.tellable import Tellable


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """The latest prices and sizes of one symbol; None where the gateway sent nothing yet."""

    symbol: str
    bid: float | None
    ask: float | None
    last: float | None
    bid_size: float | None
    ask_size: float | None
    last_size: float | None
    volume: float | None
    received_at: float  # time.monotonic() on arrival
    ticks: int = 1  # price ticks folded into this quote since the previous one


class MarketData:
    """Thread-safe subscriptions and latest quotes (and the bar subscriptions)."""

    def __init__(self) -> None:
        self.bars = BarSubscriptions()
        self._lock = threading.Lock()
        self._sinks: dict[str, list[Tellable]] = {}
        self._quotes: dict[str, Quote] = {}
        self._updates = 0

    def add(self, symbol: str, sink: Tellable) -> bool:
        """Subscribe ``sink``; True when ``symbol`` had no subscriber before."""
        with self._lock:
            sinks = self._sinks.setdefault(symbol, [])
            first = not sinks
            if not any(s is sink for s in sinks):
                sinks.append(sink)
            return first

    def remove(self, symbol: str, sink: Tellable) -> bool:
        """Unsubscribe ``sink``; True when ``symbol`` has no subscriber left."""
        with self._lock:
            sinks = [s for s in self._sinks.get(symbol, []) if s is not sink]
            if sinks:
                self._sinks[symbol] = sinks
                return False
            self._sinks.pop(symbol, None)
            self._quotes.pop(symbol, None)
            return True

    def symbols(self) -> list[str]:
        with self._lock:
            return sorted(self._sinks)

    def sinks(self, symbol: str) -> list[Tellable]:
        with self._lock:
            return list(self._sinks.get(symbol, ()))

    def update(self, quotes: Iterable[Quote]) -> list[tuple[Quote, list[Tellable]]]:
        """Store new quotes of subscribed symbols; return each with its subscribers."""
        delivered = []
        with self._lock:
            for quote in quotes:
                sinks = self._sinks.get(quote.symbol)
                if not sinks:
                    continue  # unsubscribed meanwhile
                self._quotes[quote.symbol] = quote
                self._updates += 1
                delivered.append((quote, list(sinks)))
        return delivered

    def quote(self, symbol: str) -> Quote | None:
        with self._lock:
            return self._quotes.get(symbol)

    def updates(self) -> int:
        """Quote updates handled since the start (for the snapshot and benchmarks)."""
        with self._lock:
            return self._updates
