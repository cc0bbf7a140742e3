"""A deterministic, seeded price model: one bounded random walk per symbol."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

__all__ = ["PriceModel", "Quote"]


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


class PriceModel:
    """Per-symbol random walks; the same seed and step count give the same prices."""

    def __init__(self, seed: int = 0, *, step_bps: float = 5.0) -> None:
        self._seed = seed
        self._step = step_bps / 10_000.0
        self._prices: dict[str, float] = {}
        self._rngs: dict[str, random.Random] = {}
        self._volume: dict[str, int] = {}

    def _rng(self, symbol: str) -> random.Random:
        rng = self._rngs.get(symbol)
        if rng is None:
            rng = random.Random(self._seed * 1_000_003 + zlib.crc32(symbol.encode()))
            self._rngs[symbol] = rng
        return rng

    def set_price(self, symbol: str, price: float) -> None:
        """Pin a symbol's current price (e.g. from a seed file or a test)."""
        self._prices[symbol] = round(price, 2)

    def price(self, symbol: str) -> float:
        """The current model price of ``symbol`` (a deterministic start if never set)."""
        current = self._prices.get(symbol)
        if current is None:
            current = round(20.0 + (zlib.crc32(symbol.encode()) % 48000) / 100.0, 2)
            self._prices[symbol] = current
        return current

    def step(self, symbol: str) -> float:
        """Advance the walk of ``symbol`` by one step and return the new price."""
        rng = self._rng(symbol)
        current = self.price(symbol)
        moved = current * (1.0 + rng.uniform(-self._step, self._step))
        new = max(0.01, round(moved, 2))
        self._prices[symbol] = new
        self._volume[symbol] = self._volume.get(symbol, 0) + rng.randint(1, 20) * 100
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
