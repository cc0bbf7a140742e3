"""Reports start from the stored books of the day before, and give what a replay of
every fill gives, even when a fill is recorded late; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from tradingbot.events.model import TRADE, Event
from tradingbot.reports.daily import build_daily, daily_report
from tradingbot.reports.ledger import FILL_LATENESS, day_window
from tradingbot.reports.pnl import build_pnl, pnl_report
from tradingbot.scheduler import EXCHANGE_TZ, nyse
from tradingbot.storage import Database

DAY = date(2026, 3, 10)
BEFORE = DAY - timedelta(days=1)


def et(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=EXCHANGE_TZ)


def fill(
    at: datetime,
    side: str,
    qty: float,
    symbol: str,
    price: float,
    *,
    recorded: datetime | None = None,
    realized: float | None = None,
    exec_time: bool = True,
) -> Event:
    context: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "quantity": qty,
        "price": price,
        "commission": 1.0,
        "realized_pnl": realized,
        "exec_id": f"{symbol}-{at.isoformat()}-{side}-{qty}",
    }
    if exec_time:
        context["exec_time"] = at.timestamp()
    return Event(
        type=TRADE,
        message=f"{side} {qty} {symbol}",
        context=context,
        timestamp=(recorded or at).astimezone(UTC),
    )


@pytest.fixture
def history(database: Database) -> Database:
    """MSFT bought the day before (100 @ 400, avg 400.01), partly sold on the day."""
    database.events.insert_many(
        [
            fill(et(BEFORE, 15), "BOT", 100, "MSFT", 400.0),
            fill(et(DAY, 13), "SLD", 40, "MSFT", 410.0),
        ]
    )
    return database


def test_the_first_report_stores_the_books_of_the_day_before_and_the_next_uses_them(
    history: Database,
) -> None:
    """The day's first summary leaves the positions at the previous midnight in the
    database; a second summary of the day, served from them, is the same."""
    first = daily_report(history, DAY, nyse())
    snapshot = history.books_snapshots.latest(BEFORE)
    assert snapshot is not None
    assert snapshot.day == BEFORE
    assert [p[:2] for p in snapshot.positions] == [["MSFT", 100.0]]
    assert snapshot.positions[0][2] == pytest.approx(400.01)
    assert daily_report(history, DAY, nyse()) == first
    assert first["positions"][0]["quantity"] == 60
    assert first["positions"][0]["avg_cost"] == pytest.approx(400.01)


def test_a_fill_recorded_late_for_an_earlier_day_still_counts(history: Database) -> None:
    """A fill executed the day before but recorded only on the day (after the stored
    books' midnight) still moves the position carried into the day."""
    daily_report(history, DAY, nyse())
    history.events.insert_many(
        [fill(et(BEFORE, 15, 30), "BOT", 10, "MSFT", 390.0, recorded=et(DAY, 12))]
    )
    report = daily_report(history, DAY, nyse())
    msft = report["positions"][0]
    assert msft["quantity"] == 70  # 100 + 10 - 40
    assert msft["avg_cost"] == pytest.approx((40001 + 3901) / 110, abs=1e-4)


def test_a_fill_stored_later_with_an_older_timestamp_rebuilds_the_stored_books(
    history: Database,
) -> None:
    """A fill replayed from the spool after an outage (an old timestamp, stored after
    the books were) makes them stale: the summary counts it and the books are rebuilt."""
    daily_report(history, DAY, nyse())
    before = history.books_snapshots.latest(BEFORE)
    assert before is not None
    history.events.insert_many([fill(et(BEFORE, 11), "BOT", 20, "MSFT", 395.0)])
    report = daily_report(history, DAY, nyse())
    assert report["positions"][0]["quantity"] == 80  # 100 + 20 - 40
    after = history.books_snapshots.latest(BEFORE)
    assert after is not None
    assert after.fills == before.fills + 1
    assert after.positions[0][1] == 120


def _random_fills(seed: int, days: list[date]) -> list[Event]:
    """Fills of three symbols over ``days``: buys and sells through zero, some without
    the broker's P&L or an execution time, some recorded hours after execution (two
    of them after the next midnight)."""
    rng = random.Random(seed)
    events = []
    for number, day in enumerate(days):
        for index in range(12):
            at = et(day, rng.randrange(9, 16), rng.randrange(60))
            late = index == 0 and number in (7, 10)  # recorded after the next midnight
            delay = timedelta(hours=20 if late else rng.choice([0, 0, 0, 3]))
            events.append(
                fill(
                    at,
                    rng.choice(["BOT", "SLD"]),
                    float(rng.choice([10, 20, 30])),
                    rng.choice(["AAPL", "MSFT", "TSLA"]),
                    round(100 + rng.uniform(-5, 5), 2),
                    recorded=at + delay,
                    realized=rng.choice([None, round(rng.uniform(-50, 50), 2)]),
                    exec_time=rng.random() > 0.1,
                )
            )
    return events


def _assert_same_as_full_replay(database: Database, days: list[date]) -> None:
    calendar = nyse()
    for day in [*days[3:], days[5]]:
        until = day_window(day)[1] + FILL_LATENESS
        full = build_daily(day, database.trades.fills(until), calendar=calendar)
        report = daily_report(database, day, calendar)
        for key in ("realized_pnl", "commissions", "trades", "round_trips", "positions"):
            assert report[key] == full[key], (day, key)
    periods = [
        (days[4], days[-1], "day"),
        (days[6], days[-2], "week"),
        (days[0], days[-1], "month"),
    ]
    for first, last, by in periods:
        until = day_window(last)[1] + FILL_LATENESS
        full = build_pnl(database.trades.fills(until), first, last, by)
        assert pnl_report(database, first, last, by) == full
        assert pnl_report(database, first, last, by) == full


def test_reports_from_stored_books_equal_a_replay_of_every_fill(database: Database) -> None:
    """Daily summaries and P&L reports over two weeks of mixed fills, served from stored
    books and day totals or not, equal the ones computed from every fill from empty
    books; still after a fill is stored with an old timestamp and one is recorded late."""
    days = [date(2026, 3, 2) + timedelta(days=n) for n in range(14)]
    database.events.insert_many(_random_fills(11, days))
    _assert_same_as_full_replay(database, days)
    database.events.insert_many(
        [
            fill(et(days[5], 10), "SLD", 30, "AAPL", 101.0),  # replayed from the spool
            fill(et(days[8], 11), "BOT", 20, "TSLA", 99.0, recorded=et(days[12], 9)),
        ]
    )
    _assert_same_as_full_replay(database, days)
