"""P&L over a period, by day, ISO week or month, from the recorded fills.

Each fill's realized P&L (see :mod:`tradingbot.reports.books`) counts in the period of
its New York trading date; a round trip counts where it closed. Fills before the period
still build the positions it starts with.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, Literal, cast

from tradingbot.reports import BY_CHOICES
from tradingbot.reports.books import Books, Fill
from tradingbot.reports.daily import day_window, fills_until
from tradingbot.scheduler.calendar import EXCHANGE_TZ
from tradingbot.storage import Database

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


def build_pnl(fills: Iterable[Fill], first: date, last: date, by: str) -> dict[str, Any]:
    """Realized P&L, commissions, fills and round trips per period of ``[first, last]``."""
    grouping = check_period(first, last, by)
    start, _ = day_window(first)
    _, end = day_window(last)
    books = Books()
    rows: dict[str, dict[str, Any]] = {}

    def row(day: date) -> dict[str, Any]:
        label, lo, hi = period_of(day, grouping)
        return rows.setdefault(
            label,
            {
                "period": label,
                "from": max(lo, first).isoformat(),
                "to": min(hi, last).isoformat(),
                "realized_pnl": 0.0,
                "commissions": 0.0,
                "fills": 0,
                "round_trips": 0,
                "wins": 0,
            },
        )

    for fill in sorted(fills, key=lambda f: f.time):
        if fill.time >= end:
            break
        trips_before = len(books.round_trips)
        booked = books.add(fill)
        if fill.time < start:
            continue
        r = row(fill.time.astimezone(EXCHANGE_TZ).date())
        r["realized_pnl"] += booked.realized_pnl
        r["commissions"] += fill.commission
        r["fills"] += 1
        for trip in books.round_trips[trips_before:]:
            r["round_trips"] += 1
            r["wins"] += int(trip.won)
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
    """:func:`build_pnl` over the fills recorded in the database."""
    check_period(first, last, by)
    _, end = day_window(last)
    return build_pnl(fills_until(database, end), first, last, by)
