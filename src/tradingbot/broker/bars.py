"""Bars: the :class:`Bar` callers receive, who subscribed to which bar stream, and how
the gateway's 5-second real-time bars are folded into longer bars.

A :class:`BarSubscriptions` outlives broker actor incarnations (it lives in the shared
:class:`~tradingbot.broker.market.MarketData`), so a bar subscription survives a lost
connection like a quote subscription. Subscriptions are keyed by ``(symbol, seconds)``;
the gateway is asked for one real-time bar stream per symbol, shared by every length.

:class:`Aggregator` turns 5-second bars into bars of ``seconds`` aligned to the clock
(a one-minute bar starts at :00 of its minute): a bar is complete when the 5-second bar
that ends its span arrives, or when a bar of a later span arrives (a missing last bar).
The first span after a (re)start is dropped unless its first bar starts at the span's
start: a strategy never receives a minute bar built from half a minute.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from tradingbot.tellable import Tellable

REALTIME_BAR_S = 5  # the gateway's real-time bar length (IB serves no other)

# IB's historical bar sizes (secs are served by IB, not by the simulator), in seconds.
BAR_SIZES: dict[str, int] = {
    "1 secs": 1,
    "5 secs": 5,
    "10 secs": 10,
    "15 secs": 15,
    "30 secs": 30,
    "1 min": 60,
    "2 mins": 120,
    "3 mins": 180,
    "5 mins": 300,
    "10 mins": 600,
    "15 mins": 900,
    "20 mins": 1200,
    "30 mins": 1800,
    "1 hour": 3600,
    "2 hours": 7200,
    "3 hours": 10800,
    "4 hours": 14400,
    "8 hours": 28800,
    "1 day": 86400,
}
DURATION = re.compile(r"[1-9][0-9]{0,5} [SDWMY]")
WHAT_TO_SHOW = ("TRADES", "MIDPOINT", "BID", "ASK")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One completed OHLCV bar of ``symbol`` covering ``[start, start + seconds)``.

    ``start`` is timezone-aware UTC; a daily bar (``seconds`` 86400) starts at 00:00 UTC
    of its session's date. ``wap`` is the gateway's average price, None when it sent
    none. Bars without volume (``MIDPOINT``, the simulator's real-time bars) have 0.
    """

    symbol: str
    start: datetime
    seconds: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float | None = None


def bar_seconds(bar_size: str) -> int:
    """The length of an IB bar size (``"1 min"``, ``"1 day"``); ValueError naming the choices."""
    seconds = BAR_SIZES.get(bar_size)
    if seconds is None:
        choices = ", ".join(repr(s) for s in BAR_SIZES)
        raise ValueError(f"bar_size: expected one of {choices}; got {bar_size!r}")
    return seconds


def check_duration(duration: str) -> str:
    """An IB duration (``"1 D"``, ``"3600 S"``, ``"2 W"``, ``"6 M"``, ``"1 Y"``) or ValueError."""
    if not DURATION.fullmatch(duration):
        raise ValueError(
            f"duration: a positive integer, a space and one of S D W M Y "
            f"(e.g. '1 D', '3600 S'); got {duration!r}"
        )
    return duration


def check_stream_seconds(seconds: object) -> int:
    """A streamed bar length: a multiple of 5 that divides an hour (5, 10, 15, 30, 60, ...)."""
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or seconds <= 0
        or seconds % REALTIME_BAR_S
        or 3600 % seconds
    ):
        raise ValueError(
            f"seconds: a multiple of {REALTIME_BAR_S} that divides 3600 "
            f"(5, 10, 15, 30, 60, 300, ... 3600); got {seconds!r}"
        )
    return seconds


class BarSubscriptions:
    """Thread-safe bar subscribers by ``(symbol, seconds)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: dict[tuple[str, int], list[Tellable]] = {}

    def add(self, symbol: str, seconds: int, sink: Tellable) -> bool:
        """Subscribe ``sink``; True when ``symbol`` had no bar subscriber of any length."""
        with self._lock:
            first = not any(s == symbol for s, _ in self._sinks)
            sinks = self._sinks.setdefault((symbol, seconds), [])
            if not any(s is sink for s in sinks):
                sinks.append(sink)
            return first

    def remove(self, symbol: str, seconds: int, sink: Tellable) -> bool:
        """Unsubscribe ``sink``; True when ``symbol`` has no bar subscriber left."""
        with self._lock:
            key = (symbol, seconds)
            sinks = [s for s in self._sinks.get(key, []) if s is not sink]
            if sinks:
                self._sinks[key] = sinks
            else:
                self._sinks.pop(key, None)
            return not any(s == symbol for s, _ in self._sinks)

    def symbols(self) -> list[str]:
        """Symbols with at least one bar subscriber."""
        with self._lock:
            return sorted({s for s, _ in self._sinks})

    def lengths(self, symbol: str) -> list[int]:
        """The bar lengths (seconds) subscribed for ``symbol``."""
        with self._lock:
            return sorted(n for s, n in self._sinks if s == symbol)

    def sinks(self, symbol: str, seconds: int) -> list[Tellable]:
        with self._lock:
            return list(self._sinks.get((symbol, seconds), ()))

    def streams(self) -> list[str]:
        """``SYMBOL/seconds`` of every subscription (for the actor's snapshot)."""
        with self._lock:
            return [f"{s}/{n}" for s, n in sorted(self._sinks)]


class Aggregator:
    """Folds one symbol's 5-second bars into bars of ``seconds`` (see the module)."""

    def __init__(self, symbol: str, seconds: int) -> None:
        self.symbol = symbol
        self.seconds = seconds
        self._span: int | None = None  # epoch second where the span being built starts
        self._parts: list[Bar] = []
        self._whole = False  # the span's bars start at its start
        self._closed: int | None = None  # the last span closed (emitted or dropped)

    def add(self, bar: Bar) -> list[Bar]:
        """Fold in one 5-second bar; return the bars it completed (0, 1 or 2)."""
        t = int(bar.start.timestamp())
        span = t - t % self.seconds
        if self._closed is not None and span <= self._closed:
            return []  # a late bar of a span already closed
        done: list[Bar] = []
        if self._span is not None and span != self._span:
            done += self._close()
        if self._span is None:
            self._span = span
            self._whole = t == span or self._closed is not None
        self._parts.append(bar)
        if t + bar.seconds >= span + self.seconds:
            done += self._close()
        return done

    def _close(self) -> list[Bar]:
        parts, span, whole = self._parts, self._span, self._whole
        self._parts, self._span, self._closed = [], None, span
        if not whole or not parts or span is None:
            return []
        volume = sum(p.volume for p in parts)
        waps = [p.wap for p in parts if p.wap is not None]
        if volume > 0 and len(waps) == len(parts):
            wap: float | None = sum(p.wap * p.volume for p in parts if p.wap) / volume
        else:
            wap = sum(waps) / len(waps) if waps else None
        return [
            Bar(
                symbol=self.symbol,
                start=datetime.fromtimestamp(span, UTC),
                seconds=self.seconds,
                open=parts[0].open,
                high=max(p.high for p in parts),
                low=min(p.low for p in parts),
                close=parts[-1].close,
                volume=volume,
                wap=None if wap is None else round(wap, 4),
            )
        ]
