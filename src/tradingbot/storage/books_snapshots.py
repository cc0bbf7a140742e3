"""The ``books_snapshots`` table: our books at the end of a trading date.

Reports rebuild positions from every fill ever recorded; a snapshot lets them start
from the end of a recent day instead. What the positions *mean* is the reports'
business (:mod:`tradingbot.reports.ledger`); this module stores them with the key that
says whether they are still current: the count and the sum of ``seq`` of the TRADE
events stored before ``boundary`` (:meth:`TradeRepository.key
<tradingbot.storage.trades.TradeRepository.key>`). TRADE events are never deleted or
changed, so an unchanged key means the same fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite

from tradingbot.storage.models import BooksSnapshotRow
from tradingbot.storage.timestamps import require_utc
from tradingbot.storage.transactions import Transactions

_T = cast(Table, BooksSnapshotRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BooksSnapshot:
    """Positions at the end of ``day`` (``positions``: JSON rows chosen by the
    reports), built from the TRADE events stored before ``boundary`` whose key was
    ``(fills, seq_sum)``; fills from ``replay_from`` on may still follow the day.
    ``days`` holds the reports' totals of each day after ``base`` (the snapshot this
    one was built from; ``None``: from every fill) up to ``day``, by ISO date."""

    day: date
    boundary: datetime
    fills: int
    seq_sum: int
    replay_from: datetime
    positions: list[Any]
    base: date | None
    days: dict[str, Any]
    created_at: datetime

    @property
    def key(self) -> tuple[int, int]:
        return self.fills, self.seq_sum


def _record(row: Any) -> BooksSnapshot:
    return BooksSnapshot(
        day=row.day,
        boundary=row.boundary,
        fills=int(row.fills),
        seq_sum=int(row.seq_sum),
        replay_from=row.replay_from,
        positions=list(row.positions or []),
        base=row.base,
        days=dict(row.days or {}),
        created_at=row.created_at,
    )


class BooksSnapshotRepository:
    """Stores and finds snapshots; every method is one short transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def latest(self, on_or_before: date) -> BooksSnapshot | None:
        """The snapshot of the latest day up to ``on_or_before``, or ``None``."""
        statement = select(_T).where(_T.c.day <= on_or_before).order_by(_T.c.day.desc()).limit(1)
        with self._tx.read_connection() as connection:
            row = connection.execute(statement).first()
        return None if row is None else _record(row)

    def between(self, first: date, last: date) -> list[BooksSnapshot]:
        """The snapshots of the days from ``first`` to ``last``, oldest first."""
        statement = select(_T).where(_T.c.day >= first, _T.c.day <= last).order_by(_T.c.day)
        with self._tx.read_connection() as connection:
            rows = connection.execute(statement).all()
        return [_record(row) for row in rows]

    def put(self, snapshot: BooksSnapshot) -> None:
        """Store ``snapshot``, replacing the one of the same day (an upsert: two reports
        storing the same day at once both succeed)."""
        values = {
            "day": snapshot.day,
            "boundary": require_utc(snapshot.boundary, "boundary"),
            "fills": snapshot.fills,
            "seq_sum": snapshot.seq_sum,
            "replay_from": require_utc(snapshot.replay_from, "replay_from"),
            "positions": snapshot.positions,
            "base": snapshot.base,
            "days": snapshot.days,
            "created_at": require_utc(snapshot.created_at, "created_at"),
        }
        changed = {name: value for name, value in values.items() if name != "day"}
        with self._tx.write_connection() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            upsert = dialect.insert(_T).values(**values)
            connection.execute(
                upsert.on_conflict_do_update(index_elements=[_T.c.day], set_=changed)
            )
