"""Fills read for reports, their key, and stored books snapshots, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from tradingbot.events.model import TRADE, Event
from tradingbot.storage import BooksSnapshot, Database

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def trade(recorded: datetime, exec_time: Any, symbol: str = "MSFT") -> Event:
    context: dict[str, Any] = {"symbol": symbol, "side": "BOT", "quantity": 1, "price": 10.0}
    if exec_time is not None:
        context["exec_time"] = exec_time
    return Event(type=TRADE, message="fill", context=context, timestamp=recorded)


def test_fills_come_in_execution_time_order_with_the_recording_time_as_fallback(
    database: Database,
) -> None:
    """A fill is placed by the broker's execution time, or by when it was recorded
    when it has none (or a nonsense one); ties keep the recording order."""
    late_exec = (T0 - timedelta(hours=2)).timestamp()
    database.events.insert_many(
        [
            trade(T0, None, "A"),  # no execution time: recorded at T0
            trade(T0 + timedelta(minutes=1), late_exec, "B"),  # executed before A
            trade(T0 + timedelta(minutes=2), "yesterday", "C"),  # not a time: recorded
            trade(T0 + timedelta(minutes=3), late_exec, "D"),  # same time as B
        ]
    )
    rows = database.trades.fills(T0 + timedelta(hours=1))
    assert [row[1] for row in rows] == ["B", "D", "A", "C"]
    assert rows[0][0] == late_exec
    assert rows[2][0] == T0.timestamp()
    assert rows[3][0] == (T0 + timedelta(minutes=2)).timestamp()
    since = database.trades.fills(T0 + timedelta(hours=1), since=T0 + timedelta(minutes=1))
    assert [row[1] for row in since] == ["B", "D", "C"]


def test_the_key_of_the_fills_changes_when_one_is_stored_with_an_older_timestamp(
    database: Database,
) -> None:
    """The count and seq sum of the fills before a time change when a fill with an
    older timestamp is stored later, and not when a newer one is."""
    database.events.insert_many([trade(T0, None)])
    boundary = T0 + timedelta(hours=1)
    key = database.trades.key(boundary)
    assert key[0] == 1
    database.events.insert_many([trade(boundary + timedelta(minutes=5), None)])
    assert database.trades.key(boundary) == key
    database.events.insert_many([trade(T0 - timedelta(days=1), None)])
    assert database.trades.key(boundary)[0] == 2


def test_a_snapshot_is_stored_replaced_and_found_by_day(database: Database) -> None:
    """Storing a day's books twice keeps the last; the latest up to a date, and those of
    a range of dates, are found."""
    boundary = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)

    def snapshot(day: date, fills: int) -> BooksSnapshot:
        return BooksSnapshot(
            day=day,
            boundary=boundary,
            fills=fills,
            seq_sum=fills * 3,
            replay_from=boundary,
            positions=[["MSFT", 60.0, 400.01, 1773150000.0, 0.0]],
            base=day - timedelta(days=1),
            days={day.isoformat(): [12.5, 2.0, 2, 1, 1]},
            created_at=T0,
        )

    assert database.books_snapshots.latest(date(2026, 3, 9)) is None
    database.books_snapshots.put(snapshot(date(2026, 3, 9), 1))
    database.books_snapshots.put(snapshot(date(2026, 3, 9), 2))
    database.books_snapshots.put(snapshot(date(2026, 3, 11), 5))
    found = database.books_snapshots.latest(date(2026, 3, 10))
    assert found == snapshot(date(2026, 3, 9), 2)
    assert found.key == (2, 6)
    assert [
        s.day for s in database.books_snapshots.between(date(2026, 3, 9), date(2026, 3, 11))
    ] == [
        date(2026, 3, 9),
        date(2026, 3, 11),
    ]
