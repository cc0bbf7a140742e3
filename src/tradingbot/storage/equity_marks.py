"""The ``equity_marks`` table: the account as the broker reported it at each daily summary.

Net liquidation, the broker's P&L of the day and the open positions with their marks
are only known live; the daily summary stores them here (one row per account and
trading date) so that the next day's summary can show the change of equity, and a
report of a past date shows what the mail showed. The first mark of a date stays:
storing another one for the same date returns the stored one (what the figures *mean*
is the reports' business, :mod:`tradingbot.reports.account`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite

from tradingbot.storage.models import EquityMarkRow
from tradingbot.storage.timestamps import require_utc
from tradingbot.storage.transactions import Transactions

_T = cast(Table, EquityMarkRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class EquityMark:
    """The account ``account`` as the broker reported it at ``recorded_at`` for the
    summary of ``trading_date``: ``equity`` (net liquidation), the broker's P&L of the
    day, and ``positions`` (JSON rows chosen by the reports). ``None``: not reported."""

    account: str
    trading_date: date
    recorded_at: datetime
    equity: float | None
    currency: str
    daily_pnl: float | None
    realized_pnl: float | None
    unrealized_pnl: float | None
    positions: list[dict[str, Any]]


def _record(row: Any) -> EquityMark:
    return EquityMark(
        account=row.account,
        trading_date=row.trading_date,
        recorded_at=row.recorded_at,
        equity=row.equity,
        currency=row.currency,
        daily_pnl=row.daily_pnl,
        realized_pnl=row.realized_pnl,
        unrealized_pnl=row.unrealized_pnl,
        positions=list(row.positions or []),
    )


class EquityMarkRepository:
    """Stores and finds equity marks; every method is one short transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def add(self, mark: EquityMark) -> EquityMark:
        """Store ``mark`` unless its account and date have one; return the stored one
        (two summaries storing the same date at once both get the first)."""
        values = {
            "account": mark.account,
            "trading_date": mark.trading_date,
            "recorded_at": require_utc(mark.recorded_at, "recorded_at"),
            "equity": mark.equity,
            "currency": mark.currency,
            "daily_pnl": mark.daily_pnl,
            "realized_pnl": mark.realized_pnl,
            "unrealized_pnl": mark.unrealized_pnl,
            "positions": mark.positions,
        }
        with self._tx.write_connection() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(_T).values(**values)
            connection.execute(insert.on_conflict_do_nothing())
            row = connection.execute(self._one(mark.account, mark.trading_date)).first()
        assert row is not None  # just inserted, or there already
        return _record(row)

    def get(self, account: str, day: date) -> EquityMark | None:
        """The mark of ``account`` for ``day``, or ``None``."""
        with self._tx.read_connection() as connection:
            row = connection.execute(self._one(account, day)).first()
        return None if row is None else _record(row)

    def latest_before(self, account: str, day: date) -> EquityMark | None:
        """The latest mark of ``account`` before ``day`` that has an equity, or ``None``."""
        statement = (
            select(_T)
            .where(_T.c.account == account, _T.c.trading_date < day, _T.c.equity.is_not(None))
            .order_by(_T.c.trading_date.desc())
            .limit(1)
        )
        with self._tx.read_connection() as connection:
            row = connection.execute(statement).first()
        return None if row is None else _record(row)

    @staticmethod
    def _one(account: str, day: date) -> Any:
        return select(_T).where(_T.c.account == account, _T.c.trading_date == day)
