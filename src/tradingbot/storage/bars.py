"""The ``bars`` table: OHLCV bars by symbol, bar size and start, for strategies' warm-up.

The daily bar update writes the session's bars after the close; strategies read their
history here at start instead of asking the gateway each time. Writing is an upsert on
``(symbol, bar_size, start)``: storing the same day twice (a retried job, ``run JOB
DATE``) leaves one row per bar holding the latest values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from tradingbot.storage.models import BarRow
from tradingbot.storage.timestamps import require_utc
from tradingbot.storage.transactions import Transactions

_T = cast(Table, BarRow.__table__)
_KEY = (_T.c.symbol, _T.c.bar_size, _T.c.start)
_VALUES = ("open", "high", "low", "close", "volume", "wap", "stored_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class BarRecord:
    """One stored bar; ``bar_size`` is IB's name of its length (``1 min``, ``1 day``)."""

    symbol: str
    bar_size: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float | None = None


class BarRepository:
    """Writes and reads bars; every method is one short transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def upsert(self, bars: Iterable[BarRecord], *, at: datetime | None = None) -> int:
        """Store ``bars`` (a bar already stored is overwritten); return how many were given.

        One transaction: either every bar is stored or none.
        """
        stored_at = require_utc(at, "at") if at is not None else datetime.now(UTC)
        rows = [_row(bar, stored_at) for bar in bars]
        if not rows:
            return 0
        with self._tx.write_connection() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(_T)
            upsert = insert.on_conflict_do_update(
                index_elements=list(_KEY),
                set_={name: insert.excluded[name] for name in _VALUES},
            )
            connection.execute(upsert, rows)  # one cached statement, executemany
        return len(rows)

    def recent(self, symbol: str, n: int, bar_size: str = "1 min") -> list[BarRecord]:
        """The latest ``n`` stored bars of ``symbol`` of ``bar_size``, oldest first."""
        if n <= 0:
            return []
        with self._tx.read_connection() as connection:
            rows = connection.execute(
                select(_T)
                .where(_T.c.symbol == symbol, _T.c.bar_size == bar_size)
                .order_by(_T.c.start.desc())
                .limit(n)
            ).all()
        return [_to_record(row) for row in reversed(rows)]

    def between(
        self, symbol: str, bar_size: str, start: datetime, end: datetime
    ) -> list[BarRecord]:
        """Stored bars of ``symbol`` of ``bar_size`` starting in ``[start, end)``, oldest first."""
        lo, hi = require_utc(start, "start"), require_utc(end, "end")
        with self._tx.read_connection() as connection:
            rows = connection.execute(
                select(_T)
                .where(
                    _T.c.symbol == symbol,
                    _T.c.bar_size == bar_size,
                    _T.c.start >= lo,
                    _T.c.start < hi,
                )
                .order_by(_T.c.start)
            ).all()
        return [_to_record(row) for row in rows]

    def count(self, symbol: str | None = None) -> int:
        """How many bars are stored (of ``symbol`` when given)."""
        query = select(func.count()).select_from(_T)
        if symbol is not None:
            query = query.where(_T.c.symbol == symbol)
        with self._tx.read_connection() as connection:
            return int(connection.execute(query).scalar_one())


def _row(bar: BarRecord, stored_at: datetime) -> dict[str, Any]:
    return {
        "symbol": bar.symbol,
        "bar_size": bar.bar_size,
        "start": require_utc(bar.start, "start"),
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "wap": bar.wap,
        "stored_at": stored_at,
    }


def _to_record(row: Any) -> BarRecord:
    return BarRecord(
        symbol=row.symbol,
        bar_size=row.bar_size,
        start=row.start,
        open=row.open,
        high=row.high,
        low=row.low,
        close=row.close,
        volume=row.volume,
        wap=row.wap,
    )
