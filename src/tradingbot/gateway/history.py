"""Historical bars consistent with the streamed prices.

Each symbol's history is one-minute prices over the calendar's sessions. Before the
symbol's anchor (the moment the simulator first priced it) the minutes are synthetic:
a seeded random walk generated *backwards* from the anchor price, one session at a time
(each session's open is the previous session's close), so history ends exactly where the
live walk starts. From the anchor on, the minutes are the live bars the price model
recorded from the prices it streamed (a minute with no change repeats the last close).
Daily bars are the sessions' minute bars aggregated, so a day's high and low contain
every price traded that day and the last bar's close is the current price.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from .calendar import NEW_YORK, Session, SessionCalendar
from .prices import LiveBar, PriceModel

__all__ = ["HISTORY_DAYS", "Bar", "PricePath"]

HISTORY_DAYS = 2 * 366  # synthetic history depth before the anchor


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar starting at ``start`` (UTC)."""

    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int

    @property
    def wap(self) -> float:
        """The typical price, IB's "average" column."""
        return round((self.high + self.low + self.close) / 3, 4)


@dataclass(frozen=True, slots=True)
class _Minutes:
    """A session's synthetic minutes: epoch minutes, closes and volumes."""

    first_minute: int
    opens: np.ndarray
    closes: np.ndarray
    volumes: np.ndarray


class PricePath:
    """Synthetic history behind each symbol's live walk (deterministic for a seed)."""

    def __init__(
        self, prices: PriceModel, calendar: SessionCalendar, *, daily_vol: float = 0.02
    ) -> None:
        self.prices = prices
        self.calendar = calendar
        self.daily_vol = daily_vol
        self._ends: dict[tuple[str, date], float] = {}  # price at a session's synthetic end
        self._minutes: dict[tuple[str, date], _Minutes] = {}
        self._days: dict[tuple[str, date], Bar | None] = {}

    # -- sessions ----------------------------------------------------------------------

    def head(self, symbol: str) -> datetime:
        """The first instant with history (the open of the oldest synthetic session)."""
        anchor, _, _ = self.prices.track(symbol)
        day = anchor.astimezone(NEW_YORK).date()
        sessions = self.calendar.sessions(day - timedelta(days=HISTORY_DAYS), day)
        return sessions[0].open

    def _synthetic_span(self, symbol: str, s: Session) -> tuple[int, int]:
        """Epoch minutes [first, end) of the synthetic part of session ``s``."""
        anchor, _, _ = self.prices.track(symbol)
        first = int(s.open.timestamp()) // 60
        end = min(int(s.close.timestamp()) // 60, int(anchor.timestamp()) // 60)
        return first, max(first, end)

    def _returns(self, symbol: str, s: Session, n: int) -> np.ndarray:
        rng = np.random.default_rng(
            [self.prices.seed & 0xFFFFFFFF, zlib.crc32(symbol.encode()), s.day.toordinal()]
        )
        session_minutes = max(1, int((s.close - s.open).total_seconds()) // 60)
        sigma = self.daily_vol / math.sqrt(session_minutes)
        returns: np.ndarray = rng.normal(0.0, sigma, session_minutes)[:n]
        return returns

    def _end_price(self, symbol: str, s: Session) -> float:
        """The price at the end of session ``s``'s synthetic part, walking back from the
        anchor (each session's open is the previous session's end)."""
        key = (symbol, s.day)
        if key in self._ends:
            return self._ends[key]
        anchor, price, _ = self.prices.track(symbol)
        anchor_day = anchor.astimezone(NEW_YORK).date()
        chain = [x for x in self.calendar.sessions(s.day, anchor_day) if x.open < anchor]
        for x in reversed(chain):
            cached = self._ends.get((symbol, x.day))
            if cached is not None:
                price = cached
            self._ends[(symbol, x.day)] = price
            if x.day == s.day:
                break
            first, end = self._synthetic_span(symbol, x)
            price = price / math.exp(float(self._returns(symbol, x, end - first).sum()))
        return self._ends.get(key, price)

    def _synthetic(self, symbol: str, s: Session) -> _Minutes:
        key = (symbol, s.day)
        cached = self._minutes.get(key)
        if cached is not None:
            return cached
        first, end = self._synthetic_span(symbol, s)
        r = self._returns(symbol, s, end - first)
        if not len(r):
            empty = np.zeros(0)
            return _Minutes(first, empty, empty, empty)
        tail = np.concatenate((np.cumsum(r[::-1])[::-1][1:], [0.0])) if len(r) else r
        closes = np.round(self._end_price(symbol, s) * np.exp(-tail), 2)
        opens = np.round(np.concatenate(([closes[0] / math.exp(r[0])], closes[:-1])), 2)
        rng = np.random.default_rng([zlib.crc32(symbol.encode()), s.day.toordinal(), 7])
        volumes = rng.integers(1, 40, len(r)) * 100
        minutes = _Minutes(first, opens, closes, volumes)
        if len(self._minutes) > 20_000:
            self._minutes.clear()
        self._minutes[key] = minutes
        return minutes

    # -- minute bars -------------------------------------------------------------------

    def minute_bars(self, symbol: str, s: Session, start: datetime, end: datetime) -> list[Bar]:
        """One-minute bars of session ``s`` that start in ``[start, end)``."""
        lo = max(int(s.open.timestamp()), int(start.timestamp()))
        hi = min(int(s.close.timestamp()), int(end.timestamp()))
        if lo >= hi:
            return []
        lo_min, hi_min = (lo + 59) // 60, (hi + 59) // 60
        bars: list[Bar] = []
        syn = self._synthetic(symbol, s)
        first, syn_end = syn.first_minute, syn.first_minute + len(syn.closes)
        for m in range(max(lo_min, first), min(hi_min, syn_end)):
            i = m - first
            o, c = float(syn.opens[i]), float(syn.closes[i])
            bars.append(Bar(_at(m), o, max(o, c), min(o, c), c, int(syn.volumes[i])))
        anchor, _, live = self.prices.track(symbol)
        now_min = int(self.prices.clock().timestamp()) // 60
        live_from = max(lo_min, syn_end, int(anchor.timestamp()) // 60)
        last = bars[-1].close if bars else self._price_before(symbol, live, live_from)
        for m in range(live_from, min(hi_min, now_min + 1)):
            bar = live.get(m)
            if bar is None:
                bars.append(Bar(_at(m), last, last, last, last, 0))
                continue
            bars.append(_from_live(m, bar, last))
            last = bar.close
        return bars

    def _price_before(self, symbol: str, live: dict[int, LiveBar], minute: int) -> float:
        earlier = [m for m in live if m < minute]
        if earlier:
            return live[max(earlier)].close
        _, start, _ = self.prices.track(symbol)
        return start

    def day_bar(self, symbol: str, s: Session) -> Bar | None:
        """The session's daily bar (None before the history's head or after now)."""
        anchor, _, _ = self.prices.track(symbol)
        key = (symbol, s.day)
        if s.close <= anchor and key in self._days:
            return self._days[key]
        day_start = datetime.combine(s.day, datetime.min.time(), UTC)
        if s.close <= anchor:  # all synthetic: aggregate the arrays directly
            syn = self._synthetic(symbol, s)
            if not len(syn.closes):
                return None
            bar: Bar | None = Bar(
                day_start,
                float(syn.opens[0]),
                float(max(syn.opens.max(), syn.closes.max())),
                float(min(syn.opens.min(), syn.closes.min())),
                float(syn.closes[-1]),
                int(syn.volumes.sum()),
            )
            self._days[key] = bar
            return bar
        bar = _aggregate(day_start, self.minute_bars(symbol, s, s.open, s.close))
        if s.close <= anchor:
            self._days[key] = bar
        return bar

    def bars(self, symbol: str, start: datetime, end: datetime, bar_minutes: int) -> list[Bar]:
        """Bars of ``bar_minutes`` (1440 = daily) starting in ``[start, end)``."""
        start = max(start, self.head(symbol))
        sessions = self.calendar.sessions(
            start.astimezone(NEW_YORK).date(), end.astimezone(NEW_YORK).date()
        )
        out: list[Bar] = []
        for s in sessions:
            if s.close <= start or s.open >= end:
                continue
            if bar_minutes >= 1440:
                day = self.day_bar(symbol, s)
                if day is not None:
                    out.append(day)
                continue
            minutes = self.minute_bars(symbol, s, start, end)
            buckets: dict[int, list[Bar]] = {}
            for b in minutes:
                local = b.start.astimezone(NEW_YORK)
                of_day = local.hour * 60 + local.minute
                buckets.setdefault(of_day // bar_minutes, []).append(b)
            for key in sorted(buckets):
                group = buckets[key]
                local0 = group[0].start.astimezone(NEW_YORK)
                bucket_start = local0.replace(
                    hour=key * bar_minutes // 60, minute=key * bar_minutes % 60
                )
                bucket_start = max(bucket_start, s.open.astimezone(NEW_YORK))
                bar = _aggregate(bucket_start.astimezone(UTC), group)
                if bar is not None:
                    out.append(bar)
        return out


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def _from_live(minute: int, bar: LiveBar, previous: float) -> Bar:
    # A live minute opens where the previous minute closed, so bars chain without gaps.
    return Bar(
        _at(minute),
        previous,
        max(previous, bar.high),
        min(previous, bar.low),
        bar.close,
        bar.volume,
    )


def _aggregate(start: datetime, bars: list[Bar]) -> Bar | None:
    if not bars:
        return None
    return Bar(
        start,
        bars[0].open,
        max(b.high for b in bars),
        min(b.low for b in bars),
        bars[-1].close,
        sum(b.volume for b in bars),
    )
