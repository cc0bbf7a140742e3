"""A deterministic, seeded price model: one random walk per symbol, recorded as it goes.

Every price change (a step or a pinned price) is recorded into live one-minute bars at
the model's clock, so historical data can serve exactly the prices that were streamed.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["LiveBar", "PriceModel", "Quote"]


@dataclass(frozen=True, slots=True)
class Quote:
    """One snapshot of a symbol's market: bid/ask/last with sizes."""

    bid: float
    ask: float
    last: float
    bid_size: int
    ask_size: int
    last_size: int
    volume: int


@dataclass(slots=True)
class LiveBar:
    """One minute of live prices: open, high, low, close and traded volume."""

    open: float
    high: float
    low: float
    close: float
    volume: int = 0

    def add(self, price: float, volume: int) -> None:
        """Fold one traded price into the bar."""
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += volume


@dataclass(slots=True)
class _Track:
    """A symbol's first price and when it was set, and its live bars by epoch minute."""

    anchor: datetime
    start: float
    bars: dict[int, LiveBar] = field(default_factory=dict)


class PriceModel:
    """Per-symbol random walks; the same seed and step count give the same prices.

    ``step_bps`` is the largest move of one step (basis points); ``clock`` stamps the
    live bars (the brokerage sets it to its own clock).
    """

    def __init__(self, seed: int = 0, *, step_bps: float = 5.0) -> None:
        self._seed = seed
        self.seed = seed
        self.step_bps = step_bps
        self._step = step_bps / 10_000.0
        self._prices: dict[str, float] = {}
        self._rngs: dict[str, random.Random] = {}
        self._volume: dict[str, int] = {}
        self._tracks: dict[str, _Track] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def track(self, symbol: str) -> tuple[datetime, float, dict[int, LiveBar]]:
        """(anchor time, first price, live bars by epoch minute) of ``symbol``."""
        self.price(symbol)
        t = self._tracks[symbol]
        return t.anchor, t.start, t.bars

    def _record(self, symbol: str, price: float, volume: int) -> None:
        now = self.clock()
        track = self._tracks.get(symbol)
        if track is None:
            track = self._tracks[symbol] = _Track(now, price)
        minute = int(now.timestamp()) // 60
        bar = track.bars.get(minute)
        if bar is None:
            track.bars[minute] = LiveBar(price, price, price, price, volume)
        else:
            bar.add(price, volume)

    def _rng(self, symbol: str) -> random.Random:
        rng = self._rngs.get(symbol)
        if rng is None:
            rng = random.Random(self._seed * 1_000_003 + zlib.crc32(symbol.encode()))
            self._rngs[symbol] = rng
        return rng

    def set_price(self, symbol: str, price: float) -> None:
        """Pin a symbol's current price (e.g. from a seed file or a test)."""
        self._prices[symbol] = round(price, 2)
        self._record(symbol, self._prices[symbol], 0)

    def price(self, symbol: str) -> float:
        """The current model price of ``symbol`` (a deterministic start if never set)."""
        current = self._prices.get(symbol)
        if current is None:
            current = round(20.0 + (zlib.crc32(symbol.encode()) % 48000) / 100.0, 2)
            self._prices[symbol] = current
            self._record(symbol, current, 0)
        return current

    def step(self, symbol: str) -> float:
        """Advance the walk of ``symbol`` by one step and return the new price."""
        rng = self._rng(symbol)
        current = self.price(symbol)
        moved = current * (1.0 + rng.uniform(-self._step, self._step))
        new = max(0.01, round(moved, 2))
        self._prices[symbol] = new
        traded = rng.randint(1, 20) * 100
        self._volume[symbol] = self._volume.get(symbol, 0) + traded
        self._record(symbol, new, traded)
        return new

    def quote(self, symbol: str) -> Quote:
        """Bid/ask one cent around the model price, with seeded sizes."""
        price = self.price(symbol)
        rng = self._rng(symbol)
        return Quote(
            bid=round(max(0.01, price - 0.01), 2),
            ask=round(price + 0.01, 2),
            last=price,
            bid_size=rng.randint(1, 10) * 100,
            ask_size=rng.randint(1, 10) * 100,
            last_size=rng.randint(1, 5) * 100,
            volume=self._volume.get(symbol, 0),
        )
