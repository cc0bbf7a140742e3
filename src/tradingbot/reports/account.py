"""The account in the daily summary: the broker's positions with their marks, the equity
and its change, the broker's P&L of the day.

These are only known live, from the broker. When the daily summary is made for the
broker's present trading date, :func:`record_mark` asks the broker (a
:class:`BrokerAccount`) and stores what it said as the date's equity mark
(``equity_marks``); every report of that date, the mail first, then shows the stored
mark (:func:`account_section`), so a past date shows what its mail showed. Without a
mark (the broker was not reachable, or nothing was recorded for that date) the report
says so and shows our books' positions instead, marked as such.

No broker import at run time: ``trading-bot report`` reads stored marks only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import structlog

from tradingbot.scheduler.calendar import EXCHANGE_TZ, TradingCalendar
from tradingbot.storage import Database, EquityMark

if TYPE_CHECKING:
    from tradingbot.broker import AccountPnL, AccountValue, PortfolioItem

log = structlog.get_logger(__name__)

BROKER = "broker"
BOOKS = "books"
NOT_RECORDED = "the broker's positions, marks and equity were not recorded for this date"


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerAccount:
    """What the broker said of the account just now: the positions with their marks,
    the account values (``NetLiquidation``, ...) and its latest P&L report."""

    portfolio: Sequence[PortfolioItem]
    values: Sequence[AccountValue]
    pnl: AccountPnL | None


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def mark_from_broker(account: str, day: date, broker: BrokerAccount, now: datetime) -> EquityMark:
    """The equity mark of ``day`` from what the broker said at ``now``."""
    equity: float | None = None
    currency = "USD"
    for value in broker.values:
        if value.tag == "NetLiquidation":
            try:
                equity = float(value.value)
            except ValueError:
                equity = None
            currency = value.currency or currency
            break
    positions = [
        {
            "symbol": item.symbol,
            "quantity": item.quantity,
            "avg_cost": round(item.avg_cost, 4),
            "market_price": item.market_price,
            "market_value": _rounded(item.market_value),
            "unrealized_pnl": _rounded(item.unrealized_pnl),
            "currency": item.currency,
        }
        for item in sorted(broker.portfolio, key=lambda i: i.symbol)
        if item.quantity != 0
    ]
    pnl = broker.pnl
    return EquityMark(
        account=account,
        trading_date=day,
        recorded_at=now,
        equity=equity,
        currency=currency,
        daily_pnl=None if pnl is None else round(pnl.daily, 2),
        realized_pnl=None if pnl is None else _rounded(pnl.realized),
        unrealized_pnl=None if pnl is None else _rounded(pnl.unrealized),
        positions=positions,
    )


def record_mark(
    database: Database,
    calendar: TradingCalendar,
    account: str,
    day: date,
    fetch: Callable[[], BrokerAccount] | None,
    now: datetime,
) -> str | None:
    """Store the broker's account as the mark of ``day``, when ``day`` is the broker's
    present trading date (no session began on a later New York date) and none is stored
    yet; return why the report has none (``None``: stored, or not asked for).

    A broker that cannot answer is not an error: the summary goes out without it, and
    says why (``fetch`` raising is logged and becomes that reason).
    """
    if fetch is None or database.equity_marks.get(account, day) is not None:
        return None
    today = now.astimezone(EXCHANGE_TZ).date()
    if day > today or calendar.session_on_or_before(today) != day:
        return None  # the broker's positions now are not those of that date
    try:
        broker = fetch()
    except Exception as exc:  # noqa: BLE001 - the summary goes out without the broker
        error = f"{type(exc).__name__}: {exc}"
        log.warning("daily_summary_broker_unavailable", date=day.isoformat(), error=error)
        at = now.astimezone(EXCHANGE_TZ).strftime("%H:%M ET")
        return f"the broker was not reachable at {at} ({error})"
    database.equity_marks.add(mark_from_broker(account, day, broker, now))
    return None


def _differences(
    broker: Sequence[Mapping[str, Any]], books: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Symbols whose quantity at the broker is not the one of our books."""
    at_broker = {p["symbol"]: float(p["quantity"]) for p in broker}
    in_books = {p["symbol"]: float(p["quantity"]) for p in books}
    return [
        {"symbol": s, "broker": at_broker.get(s, 0.0), "books": in_books.get(s, 0.0)}
        for s in sorted(at_broker.keys() | in_books.keys())
        if abs(at_broker.get(s, 0.0) - in_books.get(s, 0.0)) > 1e-9
    ]


def account_section(
    *,
    mark: EquityMark | None,
    previous: EquityMark | None,
    books_positions: list[dict[str, Any]],
    books_unrealized: float | None,
    note: str | None = None,
) -> dict[str, Any]:
    """The summary's account fields: the positions (the broker's from ``mark``, else our
    books'), unrealized P&L, equity and its change since ``previous``, the broker's P&L
    of the day, and ``broker`` saying where they come from (``note``: why no mark)."""
    if mark is None:
        return {
            "positions": books_positions,
            "positions_source": BOOKS,
            "position_differences": [],
            "unrealized_pnl": books_unrealized,
            "equity": None,
            "equity_previous": None,
            "equity_change": None,
            "equity_change_pct": None,
            "broker_pnl": None,
            "broker": {"recorded": False, "as_of": None, "note": note or NOT_RECORDED},
        }
    opened = {p["symbol"]: p.get("opened_at") for p in books_positions}
    positions = [{**p, "opened_at": opened.get(p["symbol"])} for p in mark.positions]
    unrealized = [p.get("unrealized_pnl") for p in positions]
    total = None if None in unrealized else round(sum(u for u in unrealized if u is not None), 2)
    change = change_pct = None
    if mark.equity is not None and previous is not None and previous.equity is not None:
        change = round(mark.equity - previous.equity, 2)
        if previous.equity > 0:
            change_pct = round(change / previous.equity * 100, 2)
    broker_pnl = None
    if mark.daily_pnl is not None:
        broker_pnl = {
            "daily": mark.daily_pnl,
            "realized": mark.realized_pnl,
            "unrealized": mark.unrealized_pnl,
        }
    return {
        "positions": positions,
        "positions_source": BROKER,
        "position_differences": _differences(mark.positions, books_positions),
        "unrealized_pnl": total,
        "equity": mark.equity,
        "equity_previous": None
        if previous is None
        else {"date": previous.trading_date.isoformat(), "equity": previous.equity},
        "equity_change": change,
        "equity_change_pct": change_pct,
        "broker_pnl": broker_pnl,
        "broker": {"recorded": True, "as_of": mark.recorded_at.isoformat(), "note": None},
    }
