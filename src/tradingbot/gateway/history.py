"""Historical bars consistent with the streamed prices, drawn daily first.

Before a symbol's anchor (the moment the simulator first priced it) history is
synthetic and the same for a seed: one row per session, two years deep, computed as
arrays on the symbol's first request. A session's regular-hours log return is drawn
from (seed, symbol, date); the chain runs backwards from the anchor price
(each session opens where the previous one closed, the last synthetic close is the
anchor price); its high and low are drawn from the range of a Brownian bridge with that
return. Extended hours (exchange calendars only) are quieter loops that leave the
regular session's open (pre-market) or close (after-hours) and come back to it, so
regular-hours bars are the same with or without them. One-minute prices are made from
these rows only when a request needs them (``intraday.py``) and aggregate exactly to
the daily bars. From the anchor on, the minutes are the live bars the price model
recorded (a minute with no change repeats the last close); a bar that includes live
minutes is aggregated from them, so the last bar's close is the current price and a
day's high and low contain every price traded that day.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from .calendar import NEW_YORK, Session, SessionCalendar
from .intraday import Minutes, SegmentBar, fit_minutes
from .prices import LiveBar, PriceModel

__all__ = ["EXT_VOL_SHARE", "HISTORY_DAYS", "Bar", "Bars", "PricePath"]

HISTORY_DAYS = 2 * 366  # synthetic history depth before the anchor
EXT_VOL_SHARE = 0.5  # extended hours move half as much as regular hours of equal length
PRE, RTH, POST = 0, 1, 2  # a session's segments, in time order
_MINUTE_CACHE = 1_000  # synthetic segments kept (each at most 1,440 minutes, ~35 KB)
_FIRST_ROWS = 400  # sessions computed at a symbol's first request (over a year)
_DAY_DRAWS = 10  # uniforms per date: 4 for normals (return, volumes), 6 for highs and lows
_SEGMENT_VOL = np.array([[EXT_VOL_SHARE], [1.0], [EXT_VOL_SHARE]])
_LOTS_PER_MINUTE = np.array([[1.5], [12.0], [1.5]])  # on top of one lot a minute


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
class Bars:
    """Bars as columns, oldest first: start (epoch seconds), prices and volume (shares).
    The first ``final`` bars are whole synthetic sessions: they never change."""

    start: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    final: int = 0

    def __len__(self) -> int:
        return len(self.start)

    def bar(self, i: int) -> Bar:
        """Bar ``i`` as a ``Bar`` (negative counts from the end)."""
        return Bar(
            datetime.fromtimestamp(int(self.start[i]), UTC),
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            int(self.volume[i]),
        )

    @staticmethod
    def join(parts: list[Bars]) -> Bars:
        """``parts`` one after the other (final as far as the first part is)."""
        if not parts:
            return _EMPTY
        if len(parts) == 1:
            return parts[0]
        return Bars(
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.open for p in parts]),
            np.concatenate([p.high for p in parts]),
            np.concatenate([p.low for p in parts]),
            np.concatenate([p.close for p in parts]),
            np.concatenate([p.volume for p in parts]),
            parts[0].final if parts[0].final == len(parts[0]) else 0,
        )


_NO_PRICES = np.zeros(0)
_EMPTY = Bars(
    np.zeros(0, dtype=np.int64),
    _NO_PRICES,
    _NO_PRICES,
    _NO_PRICES,
    _NO_PRICES,
    np.zeros(0, dtype=np.int64),
)


@dataclass(frozen=True, slots=True)
class _Grid:
    """Sessions of a date range with their instants as columns (shared by symbols)."""

    sessions: list[Session]
    index: dict[date, int]
    bounds: np.ndarray  # (J, 4) epoch minutes: extended open, open, close, extended close
    day_start: np.ndarray  # epoch seconds of each session's date, 00:00 UTC (daily bars)
    length: np.ndarray  # regular-hours minutes, 1..1440
    epoch_day: np.ndarray  # days since 1970-01-01


@dataclass(frozen=True, slots=True)
class _Table:
    """A symbol's synthetic history: per segment (pre, regular, after) and session row,
    its minutes before the anchor and the bar they add up to."""

    grid: _Grid
    rows: int  # sessions with any synthetic minute (grid rows 0..rows-1)
    offset: int  # the oldest grid row computed: columns hold rows offset..rows-1
    anchor_min: int
    n: np.ndarray  # (3, rows - offset) synthetic minutes
    open: np.ndarray  # (3, rows) prices, rounded to cents
    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    lots: np.ndarray  # (3, rows) volume in lots of 100
    sigma: np.ndarray  # (3, rows) standard deviation of the segment's log return

    def segment(self, seg: int, row: int) -> SegmentBar:
        """What segment ``seg`` of grid row ``row`` adds up to."""
        j = row - self.offset
        return SegmentBar(
            int(self.n[seg, j]),
            float(self.open[seg, j]),
            float(self.close[seg, j]),
            float(self.high[seg, j]),
            float(self.low[seg, j]),
            int(self.lots[seg, j]),
            float(self.sigma[seg, j]),
        )


class PricePath:
    """Synthetic history behind each symbol's live walk (deterministic for a seed)."""

    def __init__(
        self, prices: PriceModel, calendar: SessionCalendar, *, daily_vol: float = 0.02
    ) -> None:
        self.prices = prices
        self.calendar = calendar
        self.daily_vol = daily_vol
        self._grids: dict[tuple[date, date], _Grid] = {}
        self._tables: dict[str, _Table] = {}
        self._minutes: dict[tuple[str, date, int], Minutes] = {}

    # -- the daily table ---------------------------------------------------------------

    def _grid(self, first: date, last: date) -> _Grid:
        cached = self._grids.get((first, last))
        if cached is not None:
            return cached
        sessions = self.calendar.sessions(first, last)
        bounds = np.array([_edges(s) for s in sessions], dtype=np.int64).reshape(-1, 4)
        day_start = np.array(
            [int(datetime.combine(s.day, time(), UTC).timestamp()) for s in sessions],
            dtype=np.int64,
        )
        grid = _Grid(
            sessions=sessions,
            index={s.day: i for i, s in enumerate(sessions)},
            bounds=bounds,
            day_start=day_start,
            length=np.clip(bounds[:, 2] - bounds[:, 1], 1, 1440),
            epoch_day=day_start // 86400,
        )
        if len(self._grids) > 8:
            self._grids.clear()
        self._grids[(first, last)] = grid
        return grid

    def _draws(self, symbol: str, grid: _Grid, first: int, end: int) -> np.ndarray:
        """Ten uniforms per session of grid rows ``first..end-1``, fixed per (seed,
        symbol, date): one PCG64 stream per symbol, ten numbers per calendar day since
        1970, jumped to the first date at once (a date's numbers never depend on the
        anchor or on how deep the table goes)."""
        days = grid.epoch_day[first:end]
        if not len(days):
            return np.zeros((0, _DAY_DRAWS))
        bits = np.random.PCG64([self.prices.seed & 0xFFFFFFFF, zlib.crc32(symbol.encode())])
        bits.advance(int(days[0]) * _DAY_DRAWS)
        block = np.random.Generator(bits).random((int(days[-1] - days[0]) + 1, _DAY_DRAWS))
        drawn: np.ndarray = block[days - days[0]]
        return drawn

    def _table(self, symbol: str, row: int | None = None) -> _Table:
        """The symbol's table, with its columns computed back to grid row ``row`` at
        least (the first computation goes back ``_FIRST_ROWS`` sessions; an older row
        recomputes all: the newer rows come out the same, the chain runs backwards)."""
        cached = self._tables.get(symbol)
        if cached is not None and (row is None or row >= cached.offset):
            return cached
        anchor, price, _ = self.prices.track(symbol)
        a = int(anchor.timestamp()) // 60
        day = anchor.astimezone(NEW_YORK).date()
        grid = self._grid(day - timedelta(days=HISTORY_DAYS), day)
        end = int(np.searchsorted(grid.bounds[:, 0], a, side="left"))
        offset = max(0, end - _FIRST_ROWS)
        if row is not None and row < offset:
            offset = 0
        b = grid.bounds[offset:end]
        rows = end - offset
        n = np.clip(np.minimum(b[:, 1:], a) - b[:, :-1], 0, None).T  # (3, rows)
        u = self._draws(symbol, grid, offset, end).T  # (10, rows)
        radius = np.sqrt(-2.0 * np.log1p(-u[0:2]))  # Box-Muller: four normals
        z = np.concatenate(
            (radius * np.cos(2 * np.pi * u[2:4]), radius * np.sin(2 * np.pi * u[2:4]))
        )
        sigma = self.daily_vol * np.sqrt(n / grid.length[offset:end]) * _SEGMENT_VOL
        ret = sigma[RTH] * z[0]
        starts = price * np.exp(-np.cumsum(ret[::-1])[::-1])  # backwards from the anchor
        o = np.round(starts, 2)
        c = np.round(np.append(starts[1:], price), 2)
        opens, closes = np.stack((o, o, c)), np.stack((o, c, c))
        drift = np.zeros((3, rows))
        drift[RTH] = ret
        # A Brownian bridge's maximum and minimum at the drawn quantiles.
        spread = np.sqrt(drift * drift - 2.0 * sigma * sigma * np.log1p(-u[4:10].reshape(2, 3, -1)))
        base = np.stack((o, starts, c))
        highs = np.maximum(np.round(base * np.exp((drift + spread[0]) / 2), 2), opens)
        lows = np.minimum(np.round(base * np.exp((drift - spread[1]) / 2), 2), opens)
        highs, lows = np.maximum(highs, closes), np.minimum(lows, closes)
        few = n < 3  # too few minutes for a range: open and close are the extremes
        highs[few] = np.maximum(opens, closes)[few]
        lows[few] = np.minimum(opens, closes)[few]
        lots = n + np.round(n * _LOTS_PER_MINUTE * np.exp(0.25 * z[1:])).astype(np.int64)
        table = _Table(grid, end, offset, a, n, opens, closes, highs, lows, lots, sigma)
        self._tables[symbol] = table
        return table

    def head(self, symbol: str, rth: bool = True) -> datetime:
        """The first instant with history (the open of the oldest synthetic session)."""
        return self._table(symbol).grid.sessions[0].bounds(rth)[0]

    # -- minutes -----------------------------------------------------------------------

    def _synthetic(self, symbol: str, table: _Table, j: int, seg: int) -> Minutes:
        s = table.grid.sessions[j]
        key = (symbol, s.day, seg)
        cached = self._minutes.get(key)
        if cached is not None:
            return cached
        rng = np.random.default_rng(
            [self.prices.seed & 0xFFFFFFFF, zlib.crc32(symbol.encode()), s.day.toordinal(), seg]
        )
        minutes = fit_minutes(rng, int(table.grid.bounds[j, seg]), table.segment(seg, j))
        if len(self._minutes) >= _MINUTE_CACHE:
            self._minutes.clear()
        self._minutes[key] = minutes
        return minutes

    def _session_minutes(self, symbol: str, s: Session, rth: bool, lo: int, hi: int) -> Bars:
        """One-minute bars of session ``s`` starting in epoch minutes ``[lo, hi)``: the
        synthetic minutes, then the live ones up to now."""
        table, j = self._session_row(symbol, s)
        live, now = self._live_now(symbol)
        parts: list[Bars] = []
        last: float | None = None
        for seg, first, end, n in _segments(table, j, s, rth):
            a, b = max(first, lo), min(end, hi)
            if a >= b:
                continue
            syn_end = first + n
            if a < syn_end:
                m = self._synthetic(symbol, table, j, seg)
                i, k = a - first, min(b, syn_end) - first
                o, c = m.opens[i:k], m.closes[i:k]
                starts = np.arange(a, a + k - i, dtype=np.int64) * 60
                parts.append(Bars(starts, o, np.maximum(o, c), np.minimum(o, c), c, m.volumes[i:k]))
                last = float(c[-1])
            live_from, live_to = max(a, syn_end), min(b, now + 1)
            if live_from < live_to:
                last = self._add_live(symbol, live, live_from, live_to, last, parts)
        return Bars.join(parts)

    def _session_row(self, symbol: str, s: Session) -> tuple[_Table, int]:
        """The symbol's table computed back to session ``s``, and the session's row in it."""
        table = self._table(symbol)
        j = table.grid.index.get(s.day, table.rows)
        if j < table.offset:
            table = self._table(symbol, j)
        return table, j

    def _live_now(self, symbol: str) -> tuple[dict[int, LiveBar], int]:
        """The symbol's live one-minute bars by epoch minute, and the epoch minute now."""
        _, _, live = self.prices.track(symbol)
        return live, int(self.prices.clock().timestamp()) // 60

    def _add_live(
        self,
        symbol: str,
        live: dict[int, LiveBar],
        lo: int,
        hi: int,
        last: float | None,
        parts: list[Bars],
    ) -> float:
        """Append the live minutes ``[lo, hi)`` to ``parts`` (a gap repeats ``last``, or the
        price before ``lo``); return the last close."""
        if last is None:
            last = self._price_before(symbol, live, lo)
        parts.append(_live(live, lo, hi, last))
        return float(parts[-1].close[-1])

    def _price_before(self, symbol: str, live: dict[int, LiveBar], minute: int) -> float:
        earlier = [m for m in live if m < minute]
        if earlier:
            return live[max(earlier)].close
        _, start, _ = self.prices.track(symbol)
        return start

    # -- bars --------------------------------------------------------------------------

    def day_bar(self, symbol: str, s: Session, rth: bool = True) -> Bar | None:
        """The session's daily bar (None before the history's head or after now)."""
        first, last = s.bounds(rth)
        bars = self.bars(symbol, first, last, 1440, rth)
        return bars.bar(-1) if len(bars) else None

    def bars(
        self, symbol: str, start: datetime, end: datetime, bar_minutes: int, rth: bool = True
    ) -> Bars:
        """Bars of ``bar_minutes`` (1440 = daily) starting in ``[start, end)``: regular
        hours only (``rth``) or with the extended hours."""
        start = max(start, self.head(symbol, rth))
        if bar_minutes >= 1440:
            return self._daily(symbol, start, end, rth)
        sessions = self.calendar.sessions(
            start.astimezone(NEW_YORK).date(), end.astimezone(NEW_YORK).date()
        )
        lo, hi = (int(start.timestamp()) + 59) // 60, (int(end.timestamp()) + 59) // 60
        parts = []
        for s in sessions:
            first, last = (int(t.timestamp()) // 60 for t in s.bounds(rth))
            if first >= hi or last <= lo:
                continue
            minutes = self._session_minutes(symbol, s, rth, max(first, lo), min(last, hi))
            if len(minutes):
                parts.append(_bucket(minutes, s, first, bar_minutes))
        return Bars.join(parts)

    def _daily(self, symbol: str, start: datetime, end: datetime, rth: bool) -> Bars:
        """Daily bars of the sessions overlapping ``[start, end)``: whole synthetic
        sessions straight from the table's columns, the others from their minutes."""
        table = self._table(symbol)
        grid = table.grid
        first_col, last_col = (1, 2) if rth else (0, 3)
        lo, hi = start.timestamp() / 60, end.timestamp() / 60
        i0 = int(np.searchsorted(grid.bounds[:, last_col], lo, side="right"))
        table = self._table(symbol, i0)
        i1 = int(np.searchsorted(grid.bounds[:, first_col], hi, side="left"))
        done = int(np.searchsorted(grid.bounds[: table.rows, last_col], table.anchor_min, "right"))
        parts = []
        if i0 < min(i1, done):
            parts.append(_rows(table, i0, min(i1, done), rth))
        rest = grid.sessions[max(i0, done) : i1]
        if end.astimezone(NEW_YORK).date() > grid.sessions[-1].day:
            later = self.calendar.sessions(
                grid.sessions[-1].day + timedelta(days=1), end.astimezone(NEW_YORK).date()
            )
            rest += [s for s in later if s.bounds(rth)[0] < end and s.bounds(rth)[1] > start]
        for s in rest:
            day = self._session_day(symbol, s, rth)
            if day is not None:
                parts.append(day)
        return Bars.join(parts)

    def _session_day(self, symbol: str, s: Session, rth: bool) -> Bars | None:
        """The daily bar of a session that is not wholly synthetic: its synthetic
        segments as the table has them (what their minutes add up to) and its live
        minutes up to now (None before it starts)."""
        table, j = self._session_row(symbol, s)
        live, now = self._live_now(symbol)
        parts: list[Bars] = []
        last: float | None = None
        for seg, first, end, n in _segments(table, j, s, rth):
            if n:
                bar = table.segment(seg, j)
                parts.append(_one(first * 60, bar.open, bar.high, bar.low, bar.close, bar.lots))
                last = bar.close
            if first + n < min(end, now + 1):
                last = self._add_live(symbol, live, first + n, min(end, now + 1), last, parts)
        if not parts:
            return None
        return _aggregate(Bars.join(parts), int(datetime.combine(s.day, time(), UTC).timestamp()))

    def final_days(self, symbol: str, rth: bool = True) -> Bars:
        """Every daily bar of the symbol that can no longer change (the whole synthetic
        sessions computed so far), oldest first."""
        table = self._table(symbol)
        last_col = 2 if rth else 3
        done = np.searchsorted(table.grid.bounds[: table.rows, last_col], table.anchor_min, "right")
        return _rows(table, table.offset, max(table.offset, int(done)), rth)


def _rows(table: _Table, first: int, end: int, rth: bool) -> Bars:
    """Daily bars of the table's grid rows ``first..end-1`` (whole synthetic sessions)."""
    idx = slice(first - table.offset, end - table.offset)
    segs = [RTH] if rth else [PRE, RTH, POST]
    return Bars(
        table.grid.day_start[first:end],
        table.open[segs[0], idx],
        table.high[segs, idx].max(axis=0),
        table.low[segs, idx].min(axis=0),
        table.close[segs[-1], idx],
        table.lots[segs, idx].sum(axis=0) * 100,
        end - first,
    )


def _edges(s: Session) -> list[int]:
    """Epoch minutes of a session's extended open, open, close and extended close."""
    ext_open, ext_close = s.bounds(False)
    return [int(t.timestamp()) // 60 for t in (ext_open, s.open, s.close, ext_close)]


def _segments(table: _Table, j: int, s: Session, rth: bool) -> Iterator[tuple[int, int, int, int]]:
    """Each segment of session ``s`` (row ``j``; regular hours only with ``rth``) as
    (segment, first epoch minute, end epoch minute, its synthetic minutes from the first)."""
    edges = _edges(s)
    for seg in (RTH,) if rth else (PRE, RTH, POST):
        n = int(table.n[seg, j - table.offset]) if j < table.rows else 0
        yield seg, edges[seg], edges[seg + 1], n


def _live(live: dict[int, LiveBar], lo: int, hi: int, previous: float) -> Bars:
    """The live minutes ``[lo, hi)``: a minute opens where the previous one closed (so
    bars chain without gaps); a minute nobody traded in repeats the last close."""
    rows = []
    last = previous
    for m in range(lo, hi):
        bar = live.get(m)
        if bar is None:
            rows.append((last, last, last, last, 0))
            continue
        rows.append((last, max(last, bar.high), min(last, bar.low), bar.close, bar.volume))
        last = bar.close
    o, h, low, c, v = zip(*rows, strict=True)
    return Bars(
        np.arange(lo, hi, dtype=np.int64) * 60,
        np.array(o),
        np.array(h),
        np.array(low),
        np.array(c),
        np.array(v, dtype=np.int64),
    )


def _one(start: int, o: float, h: float, lo: float, c: float, lots: int) -> Bars:
    """A single bar of ``lots`` x 100 shares starting at ``start`` (epoch seconds)."""
    return Bars(
        np.array([start], dtype=np.int64),
        np.array([o]),
        np.array([h]),
        np.array([lo]),
        np.array([c]),
        np.array([lots * 100], dtype=np.int64),
    )


def _aggregate(minutes: Bars, start: int) -> Bars:
    """One bar starting at ``start`` (epoch seconds) made of all of ``minutes``."""
    return Bars(
        np.array([start], dtype=np.int64),
        minutes.open[:1],
        np.array([minutes.high.max()]),
        np.array([minutes.low.min()]),
        minutes.close[-1:],
        np.array([minutes.volume.sum()], dtype=np.int64),
    )


def _bucket(minutes: Bars, s: Session, first: int, bar_minutes: int) -> Bars:
    """``minutes`` of session ``s`` as bars of ``bar_minutes``, aligned to the New York
    clock; the session's first bar starts at its first minute (e.g. 09:30)."""
    if bar_minutes == 1:
        return minutes
    midnight = int(datetime.combine(s.day, time(), NEW_YORK).timestamp()) // 60
    keys = (minutes.start // 60 - midnight) // bar_minutes
    firsts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    lasts = np.concatenate((firsts[1:], [len(keys)])) - 1
    starts = np.maximum(midnight + keys[firsts] * bar_minutes, first) * 60
    return Bars(
        starts.astype(np.int64),
        minutes.open[firsts],
        np.maximum.reduceat(minutes.high, firsts),
        np.minimum.reduceat(minutes.low, firsts),
        minutes.close[lasts],
        np.add.reduceat(minutes.volume, firsts),
    )
