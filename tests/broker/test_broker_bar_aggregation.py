"""How 5-second real-time bars are folded into longer bars (the broker's aggregator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradingbot.broker.bars import Aggregator, Bar, BarSubscriptions

MINUTE = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)


def five(at: datetime, low: float, high: float, volume: float = 100.0) -> Bar:
    """A 5-second bar opening at ``low`` and closing at ``high``."""
    return Bar(
        symbol="AAPL",
        start=at,
        seconds=5,
        open=low,
        high=high,
        low=low,
        close=high,
        volume=volume,
        wap=(low + high) / 2,
    )


def seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


def test_a_minute_completes_with_its_last_five_second_bar() -> None:
    """The minute bar is emitted when the bar ending the minute arrives, with the open of the
    first bar, the close of the last, the extremes and the summed volume."""
    minutes = Aggregator("AAPL", 60)
    emitted = [minutes.add(five(MINUTE + seconds(s), 100 + s, 101 + s)) for s in range(0, 60, 5)]
    assert emitted[:-1] == [[]] * 11
    [bar] = emitted[-1]
    assert bar.start == MINUTE
    assert bar.seconds == 60
    assert (bar.open, bar.high, bar.low, bar.close) == (100, 156, 100, 156)
    assert bar.volume == 1200
    assert bar.wap == round(sum(100.5 + s for s in range(0, 60, 5)) / 12, 4)


def test_a_partial_first_minute_is_dropped() -> None:
    """Subscribing mid-minute drops that minute: the first bar told is a whole one."""
    minutes = Aggregator("AAPL", 60)
    assert minutes.add(five(MINUTE + seconds(30), 1, 2)) == []
    assert minutes.add(five(MINUTE + seconds(55), 1, 2)) == []
    done = [b for s in range(60, 120, 5) for b in minutes.add(five(MINUTE + seconds(s), 1, 2))]
    assert [b.start for b in done] == [MINUTE + seconds(60)]


def test_a_missing_last_bar_closes_the_minute_when_the_next_one_starts() -> None:
    """When the bar ending a minute never comes, the minute is emitted with the first bar of the
    next one, and late bars of an emitted minute change nothing."""
    minutes = Aggregator("AAPL", 60)
    assert minutes.add(five(MINUTE, 10, 11)) == []
    assert minutes.add(five(MINUTE + seconds(50), 9, 12)) == []
    [bar] = minutes.add(five(MINUTE + seconds(60), 20, 21))
    assert (bar.start, bar.low, bar.high, bar.close) == (MINUTE, 9, 12, 12)
    assert minutes.add(five(MINUTE + seconds(55), 1, 99)) == []


def test_subscriptions_are_shared_per_symbol_and_length() -> None:
    """The first subscriber of a symbol (any length) starts its stream, and only the last one out
    of every length stops it."""
    subs, one, two = BarSubscriptions(), object(), object()
    assert subs.add("AAPL", 60, one)  # type: ignore[arg-type]
    assert not subs.add("AAPL", 5, two)  # type: ignore[arg-type]
    assert subs.streams() == ["AAPL/5", "AAPL/60"]
    assert not subs.remove("AAPL", 60, one)  # type: ignore[arg-type]
    assert subs.remove("AAPL", 5, two)  # type: ignore[arg-type]
    assert subs.symbols() == []
