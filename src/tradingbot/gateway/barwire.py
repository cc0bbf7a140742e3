"""Bars on the wire: the fields of historicalData (17) and historicalDataUpdate (90).

A year of daily bars for 50 symbols must go out faster than ib_async can decode it, so
the bars of one answer are encoded as arrays, not one Python string per field: each
numeric column becomes a block of ASCII digits (integer arithmetic on cents, 1/10,000
dollars for the average, shares), blocks and separators sit side by side in one byte
matrix, and a mask drops the leading zeros; the kept bytes, row by row, are the fields.
Daily bars that can no longer change (whole synthetic sessions) are encoded once per
symbol and kept with each bar's byte offset, so a repeated request copies a slice.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from .calendar import NEW_YORK
from .history import Bar, Bars, PricePath
from .protocol import Field

__all__ = ["bar_date", "bars_payload", "daily_payload", "update_fields"]

_DOT, _NUL = ord("."), 0


class _Rows:
    """Fields of ``n`` rows as side-by-side byte blocks with masks of the bytes kept."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.blocks: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []

    def literal(self, text: bytes) -> None:
        """The same bytes in every row."""
        if not self.n:
            return
        self.blocks.append(np.broadcast_to(np.frombuffer(text, np.uint8), (self.n, len(text))))
        self.masks.append(np.ones((self.n, len(text)), dtype=bool))

    def number(self, values: np.ndarray, frac: int = 0, digits: int = 1, end: bool = True) -> None:
        """Non-negative integers as decimals: at least ``digits`` integer digits (zero
        padded), a point before the last ``frac`` digits when ``frac`` > 0, each field
        followed by its NUL when ``end``. ``values`` of shape (n, k) are k fields a row."""
        if not self.n:
            return
        flat = values.reshape(-1)  # row by row: field after field
        top = int(flat.max()) if flat.size else 0
        if top < 2**31:
            flat = flat.astype(np.int32)  # numpy divides 32-bit integers twice as fast
        width = max(digits + frac, len(str(top)))
        point = width - frac  # digits before the point
        size = width + (1 if frac else 0) + (1 if end else 0)
        # Built position by position (contiguous rows), turned into rows at the end.
        chars = np.zeros((size, flat.size), dtype=np.uint8)  # NUL where nothing goes
        keep = np.ones((size, flat.size), dtype=bool)
        rest = flat
        for i in range(width - 1, -1, -1):  # scalar divisors: numpy's fast integer path
            shorter = rest // 10
            chars[i + (1 if frac and i >= point else 0)] = rest - shorter * 10 + 48
            rest = shorter
        if frac:
            chars[point] = _DOT
        lead = chars[:point] != 48  # leading zeros go, but ``digits`` digits stay
        lead[point - digits :] = True
        keep[:point] = np.arange(point)[:, None] >= np.argmax(lead, axis=0)
        self.blocks.append(chars.T.reshape(self.n, -1))
        self.masks.append(keep.T.reshape(self.n, -1))

    def end_field(self) -> None:
        """The NUL after a field."""
        self.literal(bytes([_NUL]))

    def payload(self) -> bytes:
        """The kept bytes, row after row."""
        if not self.n:
            return b""
        matrix = np.concatenate(self.blocks, axis=1)
        kept: bytes = matrix[np.concatenate(self.masks, axis=1)].tobytes()
        return kept

    def row_ends(self) -> np.ndarray:
        """Where each row's bytes end in ``payload()``."""
        if not self.n:
            return np.zeros(0, dtype=np.int64)
        ends: np.ndarray = np.cumsum(np.concatenate(self.masks, axis=1).sum(axis=1))
        return ends


@dataclass(frozen=True, slots=True)
class _Encoded:
    """A symbol's final daily bars, encoded: their starts, byte offsets and bytes."""

    starts: np.ndarray
    offsets: np.ndarray  # len(starts) + 1: where each bar's fields begin, then the end
    payload: bytes


_FINAL: weakref.WeakKeyDictionary[PricePath, dict[tuple[str, bool, bool], _Encoded]] = (
    weakref.WeakKeyDictionary()
)


def _ymd(days: np.ndarray) -> np.ndarray:
    """``yyyymmdd`` integers of epoch day numbers."""
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    years = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months).astype(np.int64) + 1
    ymd: np.ndarray = years * 10_000 + month * 100 + day
    return ymd


def _ny_offsets(starts: np.ndarray) -> np.ndarray:
    """New York's UTC offset (seconds) at each instant; DST changes on whole hours."""
    hours, where = np.unique(starts // 3600, return_inverse=True)
    offsets = []
    for hour in hours.tolist():
        offset = datetime.fromtimestamp(hour * 3600, UTC).astimezone(NEW_YORK).utcoffset()
        offsets.append(int(offset.total_seconds()) if offset is not None else 0)
    shifted: np.ndarray = np.array(offsets, dtype=np.int64)[where.reshape(-1)]
    return shifted


_DAILY_DATES: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # the same for every symbol


def _date_field(rows: _Rows, starts: np.ndarray, minutes: int, format_date: int) -> None:
    if minutes >= 1440:
        key = starts.tobytes()
        made = _DAILY_DATES.get(key)
        if made is None:
            dates = _Rows(rows.n)
            dates.number(_ymd(starts // 86400), digits=8)
            if len(_DAILY_DATES) > 64:
                _DAILY_DATES.clear()
            made = _DAILY_DATES[key] = (dates.blocks[0], dates.masks[0])
        rows.blocks.append(made[0])
        rows.masks.append(made[1])
    elif format_date == 2:
        rows.number(starts)
    else:
        local = starts + _ny_offsets(starts)
        seconds = local % 86400
        rows.number(_ymd(local // 86400), digits=8, end=False)
        rows.literal(b" ")
        rows.number(seconds // 3600, digits=2, end=False)
        rows.literal(b":")
        rows.number(seconds // 60 % 60, digits=2, end=False)
        rows.literal(b":")
        rows.number(seconds % 60, digits=2, end=False)
        rows.literal(b" US/Eastern\0")


def daily_payload(
    history: PricePath, symbol: str, bars: Bars, *, midpoint: bool, rth: bool
) -> bytes:
    """``bars_payload`` of daily bars, the final ones copied from the symbol's encoding."""
    if not bars.final:
        return bars_payload(bars, 1440, 1, midpoint=midpoint)
    cache = _FINAL.setdefault(history, {})
    key = (symbol, rth, midpoint)
    head = bars.start[: bars.final]
    enc = cache.get(key)
    at = int(np.searchsorted(enc.starts, head[0])) if enc is not None else 0
    if enc is None or not np.array_equal(enc.starts[at : at + bars.final], head):
        every = history.final_days(symbol, rth)
        rows = _encode(every, 1440, 1, midpoint=midpoint)
        offsets = np.concatenate(([0], rows.row_ends()))
        enc = cache[key] = _Encoded(every.start, offsets, rows.payload())
        at = int(np.searchsorted(enc.starts, head[0]))
    cached = enc.payload[int(enc.offsets[at]) : int(enc.offsets[at + bars.final])]
    tail = Bars(*(getattr(bars, c)[bars.final :] for c in _COLUMNS))
    return cached + bars_payload(tail, 1440, 1, midpoint=midpoint)


_COLUMNS = ("start", "open", "high", "low", "close", "volume")


def bars_payload(bars: Bars, minutes: int, format_date: int, *, midpoint: bool) -> bytes:
    """The fields of ``bars``, each followed by its NUL, as they go into the message:
    date, open, high, low, close, volume, average, count (``-1`` volume and count for
    MIDPOINT bars); prices in cents, the average to 1/10,000."""
    if len(bars) <= _FEW:  # the arrays' fixed cost is not worth it for a few bars
        return "".join(
            _text(bars.bar(i), minutes, format_date, midpoint) for i in range(len(bars))
        ).encode()
    return _encode(bars, minutes, format_date, midpoint=midpoint).payload()


_FEW = 8


def _text(bar: Bar, minutes: int, format_date: int, midpoint: bool) -> str:
    """One bar's fields, each followed by its NUL, as ``_encode`` writes them."""
    o, h, lo, c = (round(p * 100) for p in (bar.open, bar.high, bar.low, bar.close))
    wap = ((h + lo + c) * 100 + 1) // 3
    volume, count = ("-1", "-1") if midpoint else (bar.volume, max(1, bar.volume // 100))
    date = bar_date(int(bar.start.timestamp()), minutes, format_date)
    prices = "".join(f"{p // 100}.{p % 100:02d}\0" for p in (o, h, lo, c))
    return f"{date}\0{prices}{volume}\0{wap // 10000}.{wap % 10000:04d}\0{count}\0"


def _encode(bars: Bars, minutes: int, format_date: int, *, midpoint: bool) -> _Rows:
    rows = _Rows(len(bars))
    _date_field(rows, bars.start, minutes, format_date)
    prices = np.stack((bars.open, bars.high, bars.low, bars.close), axis=1)
    cents = np.rint(prices * 100).astype(np.int64)
    rows.number(cents, frac=2)
    wap = (cents[:, 1:].sum(axis=1) * 100 + 1) // 3  # to the nearest 1/10,000 dollar
    if midpoint:
        rows.literal(b"-1\0")
        rows.number(wap, frac=4)
        rows.literal(b"-1\0")
    else:
        rows.number(bars.volume)
        volume, kept = rows.blocks[-1], rows.masks[-1]
        rows.number(wap, frac=4)
        if rows.n and bars.volume.min() >= 100 and not (bars.volume % 100).any():
            # The count is the volume in lots: its text without the last two digits.
            count = kept.copy()
            count[:, -3:-1] = False
            rows.blocks.append(volume)
            rows.masks.append(count)
        else:
            rows.number(np.maximum(1, bars.volume // 100))
    return rows


def bar_date(start: int, minutes: int, format_date: int) -> str:
    """One bar's date field: ``yyyymmdd`` for daily bars; intraday ``yyyymmdd hh:mm:ss
    US/Eastern`` (New York time) or epoch seconds with ``formatDate=2``."""
    t = datetime.fromtimestamp(start, UTC)
    if minutes >= 1440:
        return t.strftime("%Y%m%d")
    if format_date == 2:
        return str(start)
    return t.astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S US/Eastern")


def update_fields(req_id: int, bar: Bar, minutes: int, format_date: int) -> list[Field]:
    """historicalDataUpdate (90) for the bar still being formed."""
    return [
        90,
        req_id,
        max(1, bar.volume // 100),
        bar_date(int(bar.start.timestamp()), minutes, format_date),
        bar.open,
        bar.close,
        bar.high,
        bar.low,
        bar.wap,
        bar.volume,
    ]
