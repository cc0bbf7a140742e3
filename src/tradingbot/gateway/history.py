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
        self._blocks: dict[tuple[str, int, int], np.ndarray] = {}
        self._heads: dict[str, datetime] = {}

    # -- sessions ----------------------------------------------------------------------

    def head(self, symbol: str) -> datetime:
        """The first instant with history (the open of the oldest synthetic session)."""
        cached = self._heads.get(symbol)
        if cached is not None:
            return cached
        anchor, _, _ = self.prices.track(symbol)
        day = anchor.astimezone(NEW_YORK).date()
        sessions = self.calendar.sessions(day - timedelta(days=HISTORY_DAYS), day)
        self._heads[symbol] = sessions[0].open
        return sessions[0].open

    def _synthetic_span(self, symbol: str, s: Session) -> tuple[int, int]:
        """Epoch minutes [first, end) of the synthetic part of session ``s``."""
        anchor, _, _ = self.prices.track(symbol)
        first = int(s.open.timestamp()) // 60
        end = min(int(s.close.timestamp()) // 60, int(anchor.timestamp()) // 60)
        return first, max(first, end)

    def _normals(self, symbol: str, day: date) -> np.ndarray:
        """Standard normal draws for one day (up to 1440 minutes), drawn a month at a time
        from a generator seeded by (seed, symbol, month): one generator per month keeps a
        year of history cheap and every day's draws fixed for a seed."""
        key = (symbol, day.year, day.month)
        block = self._blocks.get(key)
        if block is None:
            rng = np.random.default_rng(
                [self.prices.seed & 0xFFFFFFFF, zlib.crc32(symbol.encode()), day.year, day.month]
            )
            block = rng.standard_normal((31, 1440))
            if len(self._blocks) > 2_000:
                self._blocks.clear()
            self._blocks[key] = block
        row: np.ndarray = block[day.day - 1]
        return row

    def _returns(self, symbol: str, s: Session, n: int) -> np.ndarray:
        session_minutes = max(1, min(1440, int((s.close - s.open).total_seconds()) // 60))
        sigma = self.daily_vol / math.sqrt(session_minutes)
        returns: np.ndarray = self._normals(symbol, s.day)[:n] * sigma
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
        cs = np.cumsum(r)
        tail = cs[-1] - cs  # the returns still to come after each minute
        closes = np.round(self._end_price(symbol, s) * np.exp(-tail), 2)
        opens = np.round(np.concatenate((closes[:1] / np.exp(r[:1]), closes[:-1])), 2)
        # Busier minutes move more: volume grows with the size of the move.
        volumes = (np.abs(self._normals(symbol, s.day)[: len(r)]) * 15 + 1).astype(int) * 100
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
        # The session of the anchor (or later): its synthetic part aggregated as arrays,
        # then the live minutes.
        syn = self._synthetic(symbol, s)
        parts: list[Bar] = []
        if len(syn.closes):
            parts.append(
                Bar(
                    day_start,
                    float(syn.opens[0]),
                    float(max(syn.opens.max(), syn.closes.max())),
                    float(min(syn.opens.min(), syn.closes.min())),
                    float(syn.closes[-1]),
                    int(syn.volumes.sum()),
                )
            )
        live_from = _at(syn.first_minute + len(syn.closes))
        parts += self.minute_bars(symbol, s, max(s.open, live_from), s.close)
        return _aggregate(day_start, parts)

    def _prefill_days(self, symbol: str, sessions: list[Session]) -> None:
        """Daily bars of whole synthetic sessions, computed a matrix at a time (the same
        arithmetic as ``_synthetic``, row-wise, so they match the minute bars)."""
        anchor, _, _ = self.prices.track(symbol)
        todo = [s for s in sessions if s.close <= anchor and (symbol, s.day) not in self._days]
        if not todo:
            return
        self._end_price(symbol, todo[0])  # fills the chain of session end prices
        by_length: dict[int, list[Session]] = {}
        for s in todo:
            first, end = self._synthetic_span(symbol, s)
            by_length.setdefault(end - first, []).append(s)
        for n, group in by_length.items():
            if n == 0:
                for s in group:
                    self._days[(symbol, s.day)] = None
                continue
            normals = np.stack([self._normals(symbol, s.day)[:n] for s in group])
            r = normals * (self.daily_vol / math.sqrt(max(1, min(1440, n))))
            sigma_n = [
                max(1, min(1440, int((s.close - s.open).total_seconds()) // 60)) for s in group
            ]
            if len(set(sigma_n)) > 1 or sigma_n[0] != n:
                r = normals * np.array([self.daily_vol / math.sqrt(m) for m in sigma_n])[:, None]
            ends = np.array([self._end_price(symbol, s) for s in group])
            cs = np.cumsum(r, axis=1)
            closes = np.round(ends[:, None] * np.exp(-(cs[:, -1:] - cs)), 2)
            opening = np.round(closes[:, 0] / np.exp(r[:, 0]), 2)  # each session's open
            volumes = (np.abs(normals) * 15 + 1).astype(int).sum(axis=1) * 100
            highs = np.maximum(opening, closes.max(axis=1))
            lows = np.minimum(opening, closes.min(axis=1))
            for i, s in enumerate(group):
                self._days[(symbol, s.day)] = Bar(
                    datetime.combine(s.day, datetime.min.time(), UTC),
                    float(opening[i]),
                    float(highs[i]),
                    float(lows[i]),
                    float(closes[i, -1]),
                    int(volumes[i]),
                )

    def _intraday(
        self, symbol: str, s: Session, start: datetime, end: datetime, bar_minutes: int
    ) -> list[Bar]:
        """Session ``s``'s bars of ``bar_minutes`` starting in ``[start, end)``, aligned to
        the New York clock: the synthetic minutes bucketed as arrays, then the live ones."""
        lo = max(int(s.open.timestamp()), int(start.timestamp()))
        hi = min(int(s.close.timestamp()), int(end.timestamp()))
        if lo >= hi:
            return []
        lo_min, hi_min = (lo + 59) // 60, (hi + 59) // 60
        midnight = int(datetime.combine(s.day, datetime.min.time(), NEW_YORK).timestamp()) // 60
        open_min = int(s.open.timestamp()) // 60

        def start_of(key: int) -> datetime:
            return _at(max(midnight + key * bar_minutes, open_min))

        out: dict[int, Bar] = {}
        syn = self._synthetic(symbol, s)
        syn_end = syn.first_minute + len(syn.closes)
        a, b = max(lo_min, syn.first_minute), min(hi_min, syn_end)
        if a < b:
            i0, i1 = a - syn.first_minute, b - syn.first_minute
            o, c, v = syn.opens[i0:i1], syn.closes[i0:i1], syn.volumes[i0:i1]
            keys = (np.arange(a, b) - midnight) // bar_minutes
            firsts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
            lasts = np.concatenate((firsts[1:], [len(keys)])) - 1
            highs = np.maximum.reduceat(np.maximum(o, c), firsts)
            lows = np.minimum.reduceat(np.minimum(o, c), firsts)
            volumes = np.add.reduceat(v, firsts)
            for j, first in enumerate(firsts):
                key = int(keys[first])
                out[key] = Bar(
                    start_of(key),
                    float(o[first]),
                    float(highs[j]),
                    float(lows[j]),
                    float(c[lasts[j]]),
                    int(volumes[j]),
                )
        live_lo = max(datetime.fromtimestamp(lo, UTC), _at(syn_end))
        for bar in self.minute_bars(symbol, s, live_lo, datetime.fromtimestamp(hi, UTC)):
            key = (int(bar.start.timestamp()) // 60 - midnight) // bar_minutes
            prev = out.get(key)
            merged = _aggregate(start_of(key), [bar] if prev is None else [prev, bar])
            assert merged is not None
            out[key] = merged
        return list(out.values())

    def bars(self, symbol: str, start: datetime, end: datetime, bar_minutes: int) -> list[Bar]:
        """Bars of ``bar_minutes`` (1440 = daily) starting in ``[start, end)``."""
        start = max(start, self.head(symbol))
        sessions = self.calendar.sessions(
            start.astimezone(NEW_YORK).date(), end.astimezone(NEW_YORK).date()
        )
        if bar_minutes >= 1440:
            self._prefill_days(symbol, sessions)
        out: list[Bar] = []
        for s in sessions:
            if s.close <= start or s.open >= end:
                continue
            if bar_minutes >= 1440:
                day = self.day_bar(symbol, s)
                if day is not None:
                    out.append(day)
                continue
            out += self._intraday(symbol, s, start, end, bar_minutes)
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
