"""Our books at the start of a trading date, from a stored snapshot instead of every fill.

A report needs the positions carried into its first day, which used to mean replaying
every fill ever recorded. The snapshot of day D (``books_snapshots``) holds the
positions at D's end (New York midnight: the *boundary*), built from the TRADE events
stored before the boundary, with their key (count and sum of ``seq``), and the day
totals (:func:`replay`) of the days since the snapshot it was built from (its *base*):

* it is *current* while that key is unchanged: a fill stored later with an older
  timestamp (a spool replayed after a database outage) changes the key, and the
  snapshot is rebuilt;
* a report uses it when no fill stored after the boundary belongs before it (a fill
  recorded more than a day late, e.g. imported by reconciliation); otherwise that
  report replays every fill, exactly as without snapshots;
* each snapshot is built from the latest current one plus the fills since (after
  checking that none of those belongs before it), so while the newest of a chain is
  current, the day totals of the whole chain are too.

The first report of a date stores the snapshot of the day before (about one day of
fills replayed for the daily summary). Results are identical to a full replay: the
snapshot holds exact floats and fills are replayed in the same order. See
``docs/reports.md``."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from typing import Any

import structlog

from tradingbot.reports.books import Books, Position
from tradingbot.scheduler.calendar import EXCHANGE_TZ
from tradingbot.storage import BooksSnapshot, Database, StorageError
from tradingbot.storage.trades import TIME, FillRow

log = structlog.get_logger(__name__)

# A fill is stored a little after its execution (and a reconnect reports the day's
# executions again): read the events stored up to this long after the window.
FILL_LATENESS = timedelta(days=1)


def day_window(day: date) -> tuple[datetime, datetime]:
    """The trading date's window in UTC: New York midnight to midnight."""
    start = datetime.combine(day, time(0), tzinfo=EXCHANGE_TZ)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=EXCHANGE_TZ)
    return start.astimezone(UTC), end.astimezone(UTC)


Totals = list[Any]
"""One day's ``[realized_pnl, commissions, fills, round_trips, wins]``."""


@dataclass(frozen=True, slots=True)
class Opening:
    """The books at the start of a date and the fills to replay after them: those
    stored before the report's ``until``, in time order; with ``days``, the totals of
    the days asked for before the date (``None``: not known, replay the fills)."""

    books: Books
    fills: list[FillRow]
    days: dict[date, Totals] | None = None


def replay(books: Books, fills: Iterable[FillRow], first: date, last: date) -> dict[date, Totals]:
    """Book ``fills`` (in time order) up to the end of ``last``; the totals of each
    New York trading date from ``first`` to ``last`` that has fills. Fills before
    ``first`` only move the books; a round trip counts on the date it closed."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    starts = [day_window(day)[0].timestamp() for day in days]  # a fill's day: a bisection
    start, end = (starts[0] if starts else math.inf), day_window(last)[1].timestamp()
    of_day: list[Totals | None] = [None] * len(days)
    add = books.add
    for fill in fills:
        at = fill[TIME]
        if at >= end:
            break
        booked = add(fill)
        if booked is None or at < start:
            continue
        index = bisect_right(starts, at) - 1
        totals = of_day[index]
        if totals is None:
            totals = of_day[index] = [0.0, 0.0, 0, 0, 0]
        totals[0] += booked[0]
        totals[1] += booked[1]
        totals[2] += 1
        trip = booked[7]
        if trip is not None:
            totals[3] += 1
            totals[4] += trip.pnl > 0
    return {days[index]: totals for index, totals in enumerate(of_day) if totals is not None}


def opening(
    database: Database, day: date, until: datetime, *, days_from: date | None = None
) -> Opening:
    """The books at the start of ``day`` and the fills after it stored before ``until``
    (every fill, from empty books, when no snapshot can serve); with ``days_from``,
    the totals of the days from then to the day before, when the snapshots hold them."""
    boundary = day_window(day)[0]
    if boundary > datetime.now(UTC):  # a date still to come: nothing final before it
        return Opening(Books(), database.trades.fills(until))
    snapshot = _current(database, day - timedelta(days=1), boundary)
    fills = _after(database, snapshot, until)
    if fills is None:
        log.info("books_snapshot_bypassed", day=snapshot.day.isoformat(), reason="late fill")
        return Opening(Books(), database.trades.fills(until))
    days = None if days_from is None else _chain_days(database, snapshot, days_from)
    return Opening(_books(snapshot), fills, days)


def _current(database: Database, day: date, boundary: datetime) -> BooksSnapshot:
    """The current snapshot of ``day``: the stored one, or one built (and stored) from
    the latest current snapshot before it, or from every fill."""
    key = database.trades.key(boundary)  # before reading fills: a fill racing in is seen
    stored = database.books_snapshots.latest(day)
    if stored is not None and stored.day == day and stored.key == key:
        return stored
    base, books, fills = None, Books(), None
    if stored is not None and database.trades.key(stored.boundary) == stored.key:
        fills = _after(database, stored, boundary)
        if fills is not None:
            base, books = stored, _books(stored)
    if fills is None:
        fills = database.trades.fills(boundary)
    first = base.day + timedelta(days=1) if base else _date_of(fills[0][TIME]) if fills else day
    days = replay(books, fills, min(first, day), day)
    # Recorded before the boundary, executed after it: reports replay these after it.
    tail = [
        row[-1] for row in fills[bisect_left(fills, boundary.timestamp(), key=itemgetter(TIME)) :]
    ]
    recorded = database.trades.recorded(tail) if tail else {}
    replay_from = min(recorded.values(), default=boundary.timestamp())
    snapshot = BooksSnapshot(
        day=day,
        boundary=boundary,
        fills=key[0],
        seq_sum=key[1],
        replay_from=min(datetime.fromtimestamp(replay_from, UTC), boundary),
        positions=[
            [p.symbol, p.quantity, p.avg_cost, p.opened_at, p.trip_pnl]
            for p in books.positions.values()
        ],
        base=None if base is None else base.day,
        days={moment.isoformat(): totals for moment, totals in days.items()},
        created_at=datetime.now(UTC),
    )
    try:
        database.books_snapshots.put(snapshot)
    except StorageError as exc:  # only an optimisation: the report goes on without it
        log.warning("books_snapshot_not_stored", day=day.isoformat(), error=str(exc))
    return snapshot


def _after(database: Database, snapshot: BooksSnapshot, until: datetime) -> list[FillRow] | None:
    """The fills after ``snapshot``'s boundary stored before ``until``, in time order;
    ``None`` when one stored after the boundary belongs before it (recorded late)."""
    end = snapshot.boundary.timestamp()
    early: list[FillRow] = []
    if snapshot.replay_from < snapshot.boundary:
        early = [
            row
            for row in database.trades.fills(snapshot.boundary, since=snapshot.replay_from)
            if row[TIME] >= end
        ]
    if until <= snapshot.boundary:
        return early
    later = database.trades.fills(until, since=snapshot.boundary)
    if any(row[TIME] < end for row in later):
        return None
    if not early:
        return later
    fills = early + later
    fills.sort(key=itemgetter(TIME))  # stable: early ones were recorded first
    return fills


def _chain_days(
    database: Database, snapshot: BooksSnapshot, since: date
) -> dict[date, Totals] | None:
    """The totals of the days from ``since`` to ``snapshot``'s, from it and the chain of
    snapshots it was built from (all consistent while it is current); ``None`` when
    the chain does not reach back that far."""
    chain = {s.day: s for s in database.books_snapshots.between(since, snapshot.day)}
    chain[snapshot.day] = snapshot
    days: dict[date, Totals] = {}
    current: BooksSnapshot | None = snapshot
    while current is not None:
        for text, totals in current.days.items():
            moment = date.fromisoformat(text)
            if moment >= since:
                days[moment] = totals
        if current.base is None or current.base < since:
            return days
        current = chain.get(current.base)
    return None


def _date_of(epoch_s: float) -> date:
    return datetime.fromtimestamp(epoch_s, EXCHANGE_TZ).date()


def _books(snapshot: BooksSnapshot) -> Books:
    books = Books()
    for symbol, quantity, avg_cost, opened_at, trip_pnl in snapshot.positions:
        books.positions[symbol] = Position(symbol, quantity, avg_cost, opened_at, trip_pnl)
    return books
