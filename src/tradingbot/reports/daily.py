"""The daily summary: one trading date's trades, P&L, positions, counts and watchlist.

:func:`build_daily` is a pure function of the fills and events it is given (tests feed
it a hand-computed fixture); :func:`daily_report` gathers them from the database. The
result is plain JSON data: the ``daily_summary`` e-mail template's context, the body
of ``GET /api/reports/daily`` and ``trading-bot report daily --json``. Definitions
(trading date, realized P&L, win rate, watchlist rule) are in ``docs/reports.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tradingbot.events.model import SIGNAL, SYSTEM, Severity
from tradingbot.reports.books import Books, Fill
from tradingbot.scheduler.calendar import EXCHANGE_TZ, TradingCalendar
from tradingbot.storage import Database, EventQuery

# A fill is stored a little after its execution (and a reconnect reports the day's
# executions again): read the events stored up to this long after the window.
FILL_LATENESS = timedelta(days=1)
WATCHLIST_SESSIONS = 5  # the signals of the last five sessions count
WATCHLIST_SIZE = 10
WATCHLIST_DECAY = 0.5  # each session back weighs half as much as the one after it
MAX_INCIDENTS = 50
MIN_DATE = date(2000, 1, 1)  # reports cover dates from here to a year ahead


def max_date() -> date:
    """The latest date a report may ask for (a year ahead: the calendar's reach)."""
    return datetime.now(UTC).date() + timedelta(days=365)


def day_window(day: date) -> tuple[datetime, datetime]:
    """The trading date's window in UTC: New York midnight to midnight."""
    start = datetime.combine(day, time(0), tzinfo=EXCHANGE_TZ)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=EXCHANGE_TZ)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A recorded SIGNAL event: the symbol a strategy liked, and how strongly."""

    time: datetime
    symbol: str
    strength: float = 1.0

    @classmethod
    def from_event(cls, context: Mapping[str, Any], ts: datetime) -> Signal | None:
        symbol = context.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            return None
        raw = context.get("strength", 1.0)
        strength = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 1.0
        return cls(time=ts, symbol=symbol, strength=abs(strength))


def watchlist(
    signals: Iterable[Signal], day: date, calendar: TradingCalendar
) -> list[dict[str, Any]]:
    """Tomorrow's watchlist: the symbols with the strongest recent signals.

    Over the last :data:`WATCHLIST_SESSIONS` sessions up to ``day``, a symbol scores the
    sum of its signals' ``|strength|`` (1 when absent), each weighted by
    ``WATCHLIST_DECAY ** sessions_ago``; the top :data:`WATCHLIST_SIZE` by score, ties
    by more signals, then alphabetically.
    """
    last = calendar.session_on_or_before(day)
    sessions = [last]
    while len(sessions) < WATCHLIST_SESSIONS:
        previous = calendar.session_on_or_before(sessions[-1] - timedelta(days=1))
        sessions.append(previous)
    ago = {session: index for index, session in enumerate(sessions)}
    scores: dict[str, float] = {}
    counts: dict[str, int] = {}
    for signal in signals:
        local = signal.time.astimezone(EXCHANGE_TZ).date()
        session = calendar.session_on_or_before(local)  # a weekend signal: Friday's
        if session not in ago or local > day:
            continue
        weight = WATCHLIST_DECAY ** ago[session]
        scores[signal.symbol] = scores.get(signal.symbol, 0.0) + signal.strength * weight
        counts[signal.symbol] = counts.get(signal.symbol, 0) + 1
    ranked = sorted(scores, key=lambda s: (-scores[s], -counts[s], s))[:WATCHLIST_SIZE]
    return [{"symbol": s, "score": round(scores[s], 4), "signals": counts[s]} for s in ranked]


def build_daily(
    day: date,
    fills: Iterable[Fill],
    *,
    calendar: TradingCalendar,
    signals: Iterable[Signal] = (),
    event_counts: Mapping[str, int] | None = None,
    alerts: int = 0,
    incidents: Sequence[Mapping[str, Any]] = (),
    marks: Mapping[str, float] | None = None,
    equity: float | None = None,
    account: str = "",
    currency: str = "USD",
) -> dict[str, Any]:
    """The summary of trading date ``day`` from every fill up to its end (older fills
    give the positions carried into the day)."""
    start, end = day_window(day)
    books = Books()
    today = []
    for fill in sorted(fills, key=lambda f: f.time):
        if fill.time >= end:
            break
        booked = books.add(fill)
        if fill.time >= start:
            today.append(booked)
    trips = [t for t in books.round_trips if start <= t.closed_at < end]
    wins = sum(1 for t in trips if t.won)
    marks = marks or {}
    positions = []
    unrealized_total: float | None = 0.0 if books.positions else None
    for symbol in sorted(books.positions):
        pos = books.positions[symbol]
        mark = marks.get(symbol)
        unrealized = None if mark is None else round((mark - pos.avg_cost) * pos.quantity, 2)
        if unrealized is None:
            unrealized_total = None
        elif unrealized_total is not None:
            unrealized_total += unrealized
        positions.append(
            {
                "symbol": symbol,
                "quantity": pos.quantity,
                "avg_cost": round(pos.avg_cost, 4),
                "opened_at": None if pos.opened_at is None else pos.opened_at.isoformat(),
                "market_price": mark,
                "unrealized_pnl": unrealized,
            }
        )
    counts = dict(event_counts or {})
    session = calendar.is_session(day)
    return {
        "date": day.isoformat(),
        "account": account,
        "currency": currency,
        "session": session,
        "early_close": session and calendar.is_early_close(day),
        "realized_pnl": round(sum(b.realized_pnl for b in today), 2),
        "commissions": round(sum(b.fill.commission for b in today), 2),
        "unrealized_pnl": None if unrealized_total is None else round(unrealized_total, 2),
        "equity": equity,  # the broker's net liquidation when asked live, else unknown
        "trades": [
            {
                "time": b.fill.time.isoformat(),
                "symbol": b.fill.symbol,
                "side": b.fill.side,
                "quantity": b.fill.quantity,
                "price": b.fill.price,
                "commission": b.fill.commission,
                "realized_pnl": round(b.realized_pnl, 2),
                "closing": b.closing,
                "position_after": b.position_after,
                "order_ref": b.fill.order_ref,
                "exec_id": b.fill.exec_id,
            }
            for b in today
        ],
        "round_trips": {
            "closed": len(trips),
            "wins": wins,
            "losses": len(trips) - wins,
            "win_rate": None if not trips else round(wins / len(trips), 4),
            "pnl": round(sum(t.pnl for t in trips), 2),
        },
        "positions": positions,
        "counts": {
            "signals": counts.get(SIGNAL, 0),
            "orders": counts.get("ORDER", 0),
            "rejections": counts.get("RISK", 0),
            "alerts": alerts,
        },
        "events": counts,
        "incidents": list(incidents),
        "watchlist": watchlist(signals, day, calendar),
    }


def fills_until(database: Database, end: datetime) -> list[Fill]:
    """Every recorded fill before ``end`` (TRADE events are never pruned)."""
    fills = []
    for row in database.trades.fills(end + FILL_LATENESS):
        fill = Fill.from_row(row)
        if fill is not None and fill.time < end:
            fills.append(fill)
    return fills


def daily_report(
    database: Database,
    day: date,
    calendar: TradingCalendar,
    *,
    marks: Mapping[str, float] | None = None,
    equity: float | None = None,
    account: str = "",
) -> dict[str, Any]:
    """The summary of ``day`` from the database (see :func:`build_daily`)."""
    start, end = day_window(day)
    summary = database.events.summary(start, end)
    since = day_window(day - timedelta(days=WATCHLIST_SESSIONS * 2 + 10))[0]
    signals = [
        signal
        for _, context, ts in database.events.contexts(SIGNAL, since)
        if ts < end and (signal := Signal.from_event(context, ts)) is not None
    ]
    alerts = sum(
        count for name, count in summary.by_severity.items() if Severity[name] >= Severity.WARNING
    )
    page = database.events.query(
        EventQuery(
            types=(SYSTEM,),
            min_severity=Severity.WARNING,
            since=start,
            until=end,
            limit=MAX_INCIDENTS,
        )
    )
    incidents = [
        {
            "time": event.timestamp.isoformat(),
            "severity": event.severity.name,
            "message": event.message,
            "source": event.source,
        }
        for event in reversed(page.events)
    ]
    return build_daily(
        day,
        fills_until(database, end),
        calendar=calendar,
        signals=signals,
        event_counts=summary.by_type,
        alerts=alerts,
        incidents=incidents,
        marks=marks,
        equity=equity,
        account=account,
    )
