"""The bars table: an idempotent upsert by (symbol, bar size, start), read back in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tradingbot.storage import BarRecord, Database

OPEN = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)


def minute(i: int, close: float = 100.0, symbol: str = "AAPL") -> BarRecord:
    return BarRecord(
        symbol=symbol,
        bar_size="1 min",
        start=OPEN + timedelta(minutes=i),
        open=close - 1,
        high=close + 1,
        low=close - 2,
        close=close,
        volume=100.0 * (i + 1),
        wap=close - 0.5,
    )


def test_stored_bars_read_back_oldest_first_in_utc(database: Database) -> None:
    """Bars stored in any order read back oldest first, with UTC starts and every value kept."""
    bars = [minute(i, 100.0 + i) for i in (2, 0, 1)]
    assert database.bars.upsert(bars) == 3
    read = database.bars.recent("AAPL", 10)
    assert [b.start for b in read] == [OPEN + timedelta(minutes=i) for i in range(3)]
    assert read[0] == minute(0, 100.0)
    assert all(b.start.tzinfo is UTC for b in read)


def test_storing_a_day_twice_keeps_one_row_per_bar_with_the_latest_values(
    database: Database,
) -> None:
    """A rerun of the bar update overwrites the bars it stored before: one row per bar, holding
    the latest values."""
    database.bars.upsert([minute(i) for i in range(5)])
    database.bars.upsert([minute(i, 200.0) for i in range(3, 8)])
    assert database.bars.count("AAPL") == 8
    read = database.bars.recent("AAPL", 8)
    assert [b.close for b in read] == [100.0] * 3 + [200.0] * 5


def test_recent_returns_the_latest_n_of_one_symbol_and_size(database: Database) -> None:
    """The latest n bars of one symbol and size, oldest first; other symbols and sizes are not
    mixed in."""
    database.bars.upsert([minute(i) for i in range(10)])
    database.bars.upsert([minute(i, symbol="MSFT") for i in range(20)])
    daily = BarRecord(
        symbol="AAPL", bar_size="1 day", start=OPEN, open=1, high=2, low=0.5, close=1.5, volume=9
    )
    database.bars.upsert([daily])
    latest = database.bars.recent("AAPL", 3)
    assert [b.start for b in latest] == [OPEN + timedelta(minutes=i) for i in (7, 8, 9)]
    assert database.bars.recent("AAPL", 5, "1 day") == [daily]
    assert database.bars.recent("AAPL", 0) == []
    assert database.bars.recent("IBM", 5) == []


def test_between_selects_a_window_given_in_any_time_zone(database: Database) -> None:
    """Bars starting in a window given in New York time are those of the same UTC instants."""
    database.bars.upsert([minute(i) for i in range(10)])
    eastern = timezone(timedelta(hours=-5))
    window = database.bars.between(
        "AAPL",
        "1 min",
        (OPEN + timedelta(minutes=2)).astimezone(eastern),
        (OPEN + timedelta(minutes=5)).astimezone(eastern),
    )
    assert [b.start for b in window] == [OPEN + timedelta(minutes=i) for i in (2, 3, 4)]


def test_a_thousand_bars_are_stored_in_one_call(database: Database) -> None:
    """A long backfill (more bars than one statement holds) is stored completely."""
    assert database.bars.upsert([minute(i) for i in range(1200)]) == 1200
    assert database.bars.count() == 1200


def test_a_naive_start_is_refused(database: Database) -> None:
    """A bar without a time zone is refused with a message naming the field, nothing stored."""
    naive = BarRecord(
        symbol="AAPL",
        bar_size="1 min",
        start=datetime(2026, 12, 4, 14, 30),
        open=1,
        high=1,
        low=1,
        close=1,
        volume=0,
    )
    with pytest.raises(ValueError, match="start: naive datetime"):
        database.bars.upsert([minute(0), naive])
    assert database.bars.count() == 0
