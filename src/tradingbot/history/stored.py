"""Stored bars for a strategy's warm-up: the ``bars`` table read back as broker bars.

Strategies start from history the daily bar update stored (``1 min`` and ``1 day`` bars)
instead of asking the gateway each time; :func:`recent_bars` returns the same
:class:`~tradingbot.broker.Bar` a bar subscription delivers, and :func:`warmup_bars`
asks the gateway only for what came after the newest stored bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from tradingbot.broker import Bar
from tradingbot.broker.bars import bar_seconds
from tradingbot.storage import BarRecord, Database, StorageError

STORED_SIZES = frozenset({"1 min", "1 day"})  # what the daily bar update stores


def stored_bars(records: Sequence[BarRecord]) -> list[Bar]:
    """Stored records as the broker's :class:`Bar` (their length from ``bar_size``)."""
    return [
        Bar(
            symbol=r.symbol,
            start=r.start,
            seconds=bar_seconds(r.bar_size),
            open=r.open,
            high=r.high,
            low=r.low,
            close=r.close,
            volume=r.volume,
            wap=r.wap,
        )
        for r in records
    ]


def recent_bars(database: Database, symbol: str, n: int, bar_size: str = "1 min") -> list[Bar]:
    """The latest ``n`` stored bars of ``symbol`` of ``bar_size``, oldest first.

    ``bar_size`` is ``"1 min"`` or ``"1 day"`` (what the daily bar update stores); an
    unknown size is a ``ValueError``, a database that cannot answer a ``StorageError``.
    """
    bar_seconds(bar_size)
    return stored_bars(database.bars.recent(symbol, n, bar_size))


def warmup_bars(
    database: Database,
    symbol: str,
    count: int,
    bar_size: str,
    fetch: Callable[[int], list[Bar]],
    now: datetime,
) -> list[Bar]:
    """The last ``count`` completed bars of ``symbol``: the stored ones first, the gateway
    (``fetch(seconds)``: the bars of the last that many seconds) only for the span after
    the newest stored bar — or for all of it when none is stored or the database cannot
    answer. Oldest first; a bar still forming at ``now`` is left out."""
    seconds = bar_seconds(bar_size)
    try:
        stored = recent_bars(database, symbol, count, bar_size)
    except StorageError:
        stored = []
    missing = seconds * (count + 1)
    if stored:
        newest_end = stored[-1].start + timedelta(seconds=seconds)
        missing = min(missing, math.ceil((now - newest_end).total_seconds()))
    fetched = fetch(missing) if missing >= seconds else []
    after = stored[-1].start if stored else None
    bars = stored + [b for b in fetched if after is None or b.start > after]
    done = [b for b in bars if b.start + timedelta(seconds=b.seconds) <= now]
    return done[-count:]
