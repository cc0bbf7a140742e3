"""P&L over a period, by day, ISO week or month, from the recorded fills.

Each fill's realized P&L (see :mod:`tradingbot.reports.books`) counts in the period of
its New York trading date; a round trip counts where it closed. Fills before the period
still build the positions it starts with. Days are totalled first, then periods, so
a report computed from the snapshots' stored day totals is the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast

from tradingbot.reports import BY_CHOICES
from tradingbot.reports.books import Books
from tradingbot.reports.ledger import FILL_LATENESS, Totals, day_window, opening, replay
from tradingbot.storage import Database
from tradingbot.storage.trades import FillRow

By = Literal["day", "week", "month"]
MAX_SPAN_DAYS = 366 * 10


def check_period(first: date, last: date, by: str) -> By:
    """``ValueError`` naming the parameter for a bad period; the grouping otherwise."""
    if by not in BY_CHOICES:
        raise ValueError(f"by: expected one of day, week, month, got {by!r}")
    if last < first:
        raise ValueError(f"to ({last.isoformat()}) is before from ({first.isoformat()})")
    if (last - first).days > MAX_SPAN_DAYS:
        raise ValueError(f"from..to spans more than {MAX_SPAN_DAYS} days")
    return cast(By, by)


def period_of(day: date, by: By) -> tuple[str, date, date]:
    """(label, first day, last day) of the period holding ``day``."""
    if by == "day":
        return day.isoformat(), day, day
    if by == "week":
        monday = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}", monday, monday + timedelta(days=6)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.strftime("%Y-%m"), first, following - timedelta(days=1)


def build_pnl(
    fills: Iterable[FillRow], first: date, last: date, by: str, books: Books | None = None
) -> dict[str, Any]:
    """Realized P&L, commissions, fills and round trips per period of ``[first, last]``,
    from ``books`` (empty by default) and the fills after them, in time order."""
    check_period(first, last, by)
    return fold(replay(Books() if books is None else books, fills, first, last), first, last, by)


def fold(days: Mapping[date, Totals], first: date, last: date, by: str) -> dict[str, Any]:
    """The report of ``[first, last]`` from the totals of its days (see
    :func:`~tradingbot.reports.ledger.replay`)."""
    grouping = check_period(first, last, by)
    rows: dict[str, dict[str, Any]] = {}
    for day in sorted(days):
        if not first <= day <= last:
            continue
        realized, commissions, count, trips, wins = days[day]
        label, lo, hi = period_of(day, grouping)
        r = rows.get(label)
        if r is None:
            r = rows[label] = {
                "period": label,
                "from": max(lo, first).isoformat(),
                "to": min(hi, last).isoformat(),
                "realized_pnl": 0.0,
                "commissions": 0.0,
                "fills": 0,
                "round_trips": 0,
                "wins": 0,
            }
        r["realized_pnl"] += realized
        r["commissions"] += commissions
        r["fills"] += count
        r["round_trips"] += trips
        r["wins"] += wins
    out = []
    for label in sorted(rows):
        r = rows[label]
        r["realized_pnl"] = round(r["realized_pnl"], 2)
        r["commissions"] = round(r["commissions"], 2)
        r["win_rate"] = None if not r["round_trips"] else round(r["wins"] / r["round_trips"], 4)
        out.append(r)
    trips = sum(r["round_trips"] for r in out)
    wins = sum(r["wins"] for r in out)
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "by": grouping,
        "periods": out,
        "total": {
            "realized_pnl": round(sum(r["realized_pnl"] for r in out), 2),
            "commissions": round(sum(r["commissions"] for r in out), 2),
            "fills": sum(r["fills"] for r in out),
            "round_trips": trips,
            "wins": wins,
            "win_rate": None if not trips else round(wins / trips, 4),
        },
    }


def pnl_report(database: Database, first: date, last: date, by: str = "day") -> dict[str, Any]:
    """:func:`build_pnl` over the fills recorded in the database: the days before
    ``last`` from the stored snapshots' totals when they hold them (see
    :mod:`~tradingbot.reports.ledger`), else from the books at ``first``."""
    check_period(first, last, by)
    until = day_window(last)[1] + FILL_LATENESS
    if first < last and day_window(last)[0] <= datetime.now(UTC):
        start = opening(database, last, until, days_from=first)
        if start.days is not None:
            days = start.days | replay(start.books, start.fills, last, last)
            return fold(days, first, last, by)
    start = opening(database, first, until)
    return build_pnl(start.fills, first, last, by, start.books)
