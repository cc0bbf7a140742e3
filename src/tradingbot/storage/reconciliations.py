"""The ``reconciliations`` table: every comparison of our books with the broker's.

Each reconciliation stores the broker's positions it saw (``as_of``), what differed and
its outcome. The latest ``clean`` or ``accepted`` reconciliation of an account is the
*baseline*: the next one expects the baseline's positions plus the fills recorded since.
An operator's acceptance moves a ``discrepancies`` row to ``accepted``, which makes the
broker's view of that moment the new baseline.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tradingbot.storage.errors import RecordNotFound
from tradingbot.storage.models import RECONCILIATION_STATUSES, ReconciliationRow
from tradingbot.storage.timestamps import require_utc
from tradingbot.storage.transactions import Transactions

CLEAN = "clean"
DISCREPANCIES = "discrepancies"
FAILED = "failed"
ACCEPTED = "accepted"
BASELINE_STATUSES = (CLEAN, ACCEPTED)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationRecord:
    """One reconciliation as stored; ``positions`` maps symbol -> (quantity, avg_cost)."""

    id: str
    run_id: str
    account: str
    trigger: str
    started_at: datetime
    as_of: datetime
    status: str
    positions: Mapping[str, tuple[float, float]]
    boundary_exec_ids: frozenset[str]
    accepted_orders: frozenset[int]
    discrepancies: tuple[Mapping[str, Any], ...]
    error: str | None
    duration_s: float
    accepted_by: str | None


class ReconciliationRepository:
    """Reads and writes reconciliations; every method is one short transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def record(
        self,
        *,
        run_id: str,
        account: str,
        trigger: str,
        started_at: datetime,
        as_of: datetime,
        status: str,
        positions: Mapping[str, tuple[float, float]],
        discrepancies: Sequence[Mapping[str, Any]],
        duration_s: float,
        boundary_exec_ids: Iterable[str] = (),
        accepted_orders: Iterable[int] = (),
        error: str | None = None,
    ) -> ReconciliationRecord:
        """Store one reconciliation and return it."""
        _check_status(status)
        row = ReconciliationRow(
            id=str(uuid.uuid4()),
            run_id=run_id,
            account=account,
            trigger=trigger,
            started_at=require_utc(started_at, "started_at"),
            as_of=require_utc(as_of, "as_of"),
            status=status,
            positions={symbol: [qty, cost] for symbol, (qty, cost) in positions.items()},
            boundary_exec_ids=sorted(boundary_exec_ids),
            accepted_orders=sorted(accepted_orders),
            discrepancies=[dict(item) for item in discrepancies],
            error=error,
            duration_s=duration_s,
            accepted_by=None,
        )
        with self._tx.write() as session:
            session.add(row)
            session.flush()
            return _to_record(row)

    def accept(
        self, reconciliation_id: str, *, by: str, orders: Iterable[int] = ()
    ) -> ReconciliationRecord:
        """Accept a reconciliation's discrepancies: its broker view becomes the baseline,
        and the open ``orders`` (permIds) are not reported again while they stay open."""
        with self._tx.write() as session:
            row = session.get(ReconciliationRow, reconciliation_id)
            if row is None:
                raise RecordNotFound(f"no reconciliation {reconciliation_id}")
            if row.status != DISCREPANCIES:
                raise ValueError(f"reconciliation {reconciliation_id} is {row.status}, not open")
            row.status = ACCEPTED
            row.accepted_by = by
            row.accepted_orders = sorted({*row.accepted_orders, *orders})
            session.flush()
            return _to_record(row)

    def baseline(self, account: str) -> ReconciliationRecord | None:
        """The latest clean or accepted reconciliation of ``account``, or ``None``."""
        with self._tx.read() as session:
            row = session.scalars(
                select(ReconciliationRow)
                .where(
                    ReconciliationRow.account == account,
                    ReconciliationRow.status.in_(BASELINE_STATUSES),
                )
                .order_by(ReconciliationRow.as_of.desc())
                .limit(1)
            ).first()
            return None if row is None else _to_record(row)

    def latest(self, account: str, limit: int = 10) -> list[ReconciliationRecord]:
        """The latest reconciliations of ``account``, newest first."""
        with self._tx.read() as session:
            rows = session.scalars(
                select(ReconciliationRow)
                .where(ReconciliationRow.account == account)
                .order_by(ReconciliationRow.started_at.desc())
                .limit(limit)
            ).all()
            return [_to_record(row) for row in rows]

    def get(self, reconciliation_id: str) -> ReconciliationRecord | None:
        with self._tx.read() as session:
            row = session.get(ReconciliationRow, reconciliation_id)
            return None if row is None else _to_record(row)


def _check_status(status: str) -> None:
    if status not in RECONCILIATION_STATUSES:
        allowed = ", ".join(RECONCILIATION_STATUSES)
        raise ValueError(f"status must be one of {allowed}, got {status!r}")


def _to_record(row: ReconciliationRow) -> ReconciliationRecord:
    return ReconciliationRecord(
        id=row.id,
        run_id=row.run_id,
        account=row.account,
        trigger=row.trigger,
        started_at=row.started_at,
        as_of=row.as_of,
        status=row.status,
        positions={
            str(symbol): (float(value[0]), float(value[1]))
            for symbol, value in dict(row.positions).items()
        },
        boundary_exec_ids=frozenset(str(x) for x in row.boundary_exec_ids),
        accepted_orders=frozenset(int(x) for x in row.accepted_orders),
        discrepancies=tuple(dict(item) for item in row.discrepancies),
        error=row.error,
        duration_s=row.duration_s,
        accepted_by=row.accepted_by,
    )
