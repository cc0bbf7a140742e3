"""A strategy's warm-up reads the stored bars and asks the gateway only for what is newer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradingbot.broker import Bar
from tradingbot.history.stored import warmup_bars
from tradingbot.storage import BarRecord, Database

NOW = datetime(2026, 3, 11, 14, 40, 30, tzinfo=UTC)


def minute(at: datetime, close: float) -> Bar:
    return Bar(
        symbol="AAPL",
        start=at,
        seconds=60,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=100.0,
    )


def test_stored_bars_are_used_and_only_the_newer_span_is_fetched(database: Database) -> None:
    """With yesterday's minutes stored, warm-up asks the gateway only for the time since
    the newest stored bar, and returns stored then fetched bars, oldest first, without the
    bar still forming."""
    stored_until = NOW - timedelta(minutes=10, seconds=30)  # the newest stored bar's start
    database.bars.upsert(
        BarRecord(
            symbol="AAPL",
            bar_size="1 min",
            start=stored_until - timedelta(minutes=n),
            open=1.0,
            high=1.0,
            low=1.0,
            close=float(100 - n),
            volume=10.0,
        )
        for n in range(30)
    )
    asked: list[int] = []

    def fetch(span: int) -> list[Bar]:
        asked.append(span)
        first = NOW - timedelta(seconds=span)
        starts = [first + timedelta(minutes=m) for m in range(span // 60 + 1)]
        return [minute(start.replace(second=0), 200.0 + i) for i, start in enumerate(starts)]

    bars = warmup_bars(database, "AAPL", 20, "1 min", fetch, NOW)
    assert asked == [570]  # the 9.5 minutes since the newest stored bar ended, not 21
    assert len(bars) == 20
    assert [b.start for b in bars] == sorted(b.start for b in bars)
    assert bars[0].close < 200.0  # the oldest come from the table
    assert bars[-1].close >= 200.0  # the newest from the gateway
    assert all(b.start + timedelta(seconds=60) <= NOW for b in bars)
    assert len({b.start for b in bars}) == 20  # no bar twice where the two sources meet


def test_without_stored_bars_the_gateway_gives_them_all(database: Database) -> None:
    """Nothing stored (a first run before any bar update): the whole span is fetched."""
    asked: list[int] = []

    def fetch(span: int) -> list[Bar]:
        asked.append(span)
        return [minute(NOW.replace(second=0) - timedelta(minutes=m), 1.0) for m in range(5, -1, -1)]

    bars = warmup_bars(database, "AAPL", 5, "1 min", fetch, NOW)
    assert asked == [360]
    assert len(bars) == 5
    assert bars[-1].start == NOW.replace(second=0) - timedelta(minutes=1)
