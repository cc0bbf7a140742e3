"""The daily summary: one trading date's trades, P&L, positions, counts and watchlist.

:func:`build_daily` is a pure function of the fills and events it is given (tests feed
it a hand-computed fixture); :func:`daily_report` gathers them from the database. The
result is plain JSON data: the ``daily_summary`` e-mail template's context, the body
of ``GET /api/reports/daily`` and ``trading-bot report daily --json``. The account's
figures from the broker (positions with marks, equity, its change) come from the
date's stored equity mark (:mod:`.account`). Definitions (trading date, realized P&L,
win rate, watchlist rule) are in ``docs/reports.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tradingbot.events.model import SIGNAL, SYSTEM, Severity
from tradingbot.reports.account import account_section
from tradingbot.reports.books import Booked, Books, instant
from tradingbot.reports.ledger import FILL_LATENESS, day_window, opening
from tradingbot.scheduler.calendar import EXCHANGE_TZ, TradingCalendar
from tradingbot.storage import Database, EquityMark, EventQuery
from tradingbot.storage.trades import TIME, FillRow

WATCHLIST_SESSIONS = 5  # the signals of the last five sessions count
WATCHLIST_SIZE = 10
WATCHLIST_DECAY = 0.5  # each session back weighs half as much as the one after it
MAX_INCIDENTS = 50
MIN_DATE = date(2000, 1, 1)  # reports cover dates from here to a year ahead


def max_date() -> date:
    """The latest date a report may ask for (a year ahead: the calendar's reach)."""
    return datetime.now(UTC).date() + timedelta(days=365)


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
    fills: Iterable[FillRow],
    *,
    calendar: TradingCalendar,
    signals: Iterable[Signal] = (),
    event_counts: Mapping[str, int] | None = None,
    alerts: int = 0,
    incidents: Sequence[Mapping[str, Any]] = (),
    marks: Mapping[str, float] | None = None,
    account: str = "",
    currency: str = "USD",
    books: Books | None = None,
    mark: EquityMark | None = None,
    previous: EquityMark | None = None,
    broker_note: str | None = None,
) -> dict[str, Any]:
    """The summary of trading date ``day`` from ``books`` (empty by default) and the
    fills after them, in time order, up to the day's end (older fills give the
    positions carried into the day). ``mark`` is the broker's account stored for the
    day (``previous``: the latest one before, for the equity's change); without it the
    positions are our books' (valued at ``marks`` when given) and ``broker_note`` says
    why."""
    start_dt, end_dt = day_window(day)
    start, end = start_dt.timestamp(), end_dt.timestamp()
    books = Books() if books is None else books
    today: list[tuple[FillRow, Booked]] = []
    for row in fills:
        if row[TIME] >= end:
            break
        booked = books.add(row)
        if booked is not None and row[TIME] >= start:
            today.append((row, booked))
    trips = [t for t in books.round_trips if start <= t.closed_at < end]
    wins = sum(1 for t in trips if t.won)
    marks = marks or {}
    positions = []
    unrealized_total: float | None = 0.0 if books.positions else None
    for symbol in sorted(books.positions):
        pos = books.positions[symbol]
        price = marks.get(symbol)
        unrealized = None if price is None else round((price - pos.avg_cost) * pos.quantity, 2)
        if unrealized is None:
            unrealized_total = None
        elif unrealized_total is not None:
            unrealized_total += unrealized
        positions.append(
            {
                "symbol": symbol,
                "quantity": pos.quantity,
                "avg_cost": round(pos.avg_cost, 4),
                "opened_at": instant(pos.opened_at).isoformat(),
                "market_price": price,
                "unrealized_pnl": unrealized,
            }
        )
    counts = dict(event_counts or {})
    session = calendar.is_session(day)
    section = account_section(
        mark=mark,
        previous=previous,
        books_positions=positions,
        books_unrealized=None if unrealized_total is None else round(unrealized_total, 2),
        note=broker_note,
    )
    return {
        "date": day.isoformat(),
        "account": account,
        "currency": currency if mark is None else mark.currency,
        "session": session,
        "early_close": session and calendar.is_early_close(day),
        "realized_pnl": round(sum(b[0] for _, b in today), 2),
        "commissions": round(sum(b[1] for _, b in today), 2),
        "trades": [_trade(row, booked) for row, booked in today],
        "round_trips": {
            "closed": len(trips),
            "wins": wins,
            "losses": len(trips) - wins,
            "win_rate": None if not trips else round(wins / len(trips), 4),
            "pnl": round(sum(t.pnl for t in trips), 2),
        },
        **section,
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


def _trade(row: FillRow, booked: Booked) -> dict[str, Any]:
    """One of the day's fills as the summary lists it."""
    realized, commission, closing, after, side, quantity, price, _ = booked
    return {
        "time": instant(row[TIME]).isoformat(),
        "symbol": row[1],
        "side": side,
        "quantity": quantity,
        "price": price,
        "commission": commission,
        "realized_pnl": round(realized, 2),
        "closing": closing,
        "position_after": after,
        "order_ref": str(row[8] or ""),
        "exec_id": str(row[7] or ""),
    }


def daily_report(
    database: Database,
    day: date,
    calendar: TradingCalendar,
    *,
    marks: Mapping[str, float] | None = None,
    account: str = "",
    broker_note: str | None = None,
) -> dict[str, Any]:
    """The summary of ``day`` from the database (see :func:`build_daily`), with the
    account's equity mark stored for ``day``, if any (:func:`.account.record_mark`)."""
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
    books = opening(database, day, end + FILL_LATENESS)
    return build_daily(
        day,
        books.fills,
        books=books.books,
        calendar=calendar,
        signals=signals,
        event_counts=summary.by_type,
        alerts=alerts,
        incidents=incidents,
        marks=marks,
        account=account,
        mark=database.equity_marks.get(account, day),
        previous=database.equity_marks.latest_before(account, day),
        broker_note=broker_note,
    )
