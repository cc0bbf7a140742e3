"""The ``recovery_events`` table: one row per crashed run, from detection to resolution.

At start, with the run lock held, :meth:`RecoveryRepository.record_crashes` finds every
earlier run of the same account that ended without a clean stop and has no row yet,
and records one ``detected`` row for each in the same transaction (the crashed run id
is unique, so a crash is reported once, even by two racing callers). Reconciliation
later moves a row to ``reconciled`` or ``accepted`` and fills its discrepancy list with
:meth:`RecoveryRepository.update`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from tradingbot.storage.errors import DuplicateRecord, RecordNotFound
from tradingbot.storage.models import RECOVERY_STATUSES, RecoveryEventRow, SystemState
from tradingbot.storage.timestamps import require_utc
from tradingbot.storage.transactions import Transactions

DETECTED = "detected"
RECONCILED = "reconciled"
ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryEvent:
    """A crashed run as detected: who it was, when it last beat, how long we were down.

    ``run_id``, ``pid``, ``host``, ``version``, ``started_at`` and ``last_heartbeat``
    describe the crashed run; ``detected_by_run_id`` is the run that found it.
    ``downtime_s`` runs from the crashed run's last heartbeat to the start of the next
    run. ``discrepancies`` is filled by reconciliation (empty until then).
    """

    id: str
    run_id: str
    detected_by_run_id: str | None
    detected_at: datetime
    account: str
    pid: int
    host: str
    version: str
    started_at: datetime
    last_heartbeat: datetime
    downtime_s: float
    status: str
    discrepancies: tuple[Mapping[str, Any], ...]
    updated_at: datetime


class RecoveryRepository:
    """Reads and writes recovery events; every method is one short transaction.

    Methods raise :class:`~tradingbot.storage.StorageUnavailable` when the database
    cannot be reached and ``ValueError`` for a naive datetime or an unknown status.
    """

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def record_crashes(
        self, *, account: str, current_run_id: str, detected_at: datetime
    ) -> list[RecoveryEvent]:
        """Record every unreported crashed run of ``account`` (oldest first) and return them.

        A crashed run is one without a clean stop, other than ``current_run_id``, with no
        recovery event yet. Call it only while holding the run lock: a run of a live
        process would otherwise be taken for a crash.
        """
        at = require_utc(detected_at, "detected_at")
        with self._tx.write() as session:
            reported = select(RecoveryEventRow.run_id)
            runs = session.scalars(
                select(SystemState)
                .where(
                    SystemState.account == account,
                    SystemState.run_id != current_run_id,
                    SystemState.clean_stop.is_(False),
                    SystemState.run_id.not_in(reported),
                )
                .order_by(SystemState.started_at, SystemState.run_id)
            ).all()
            rows = []
            for run in runs:
                ended = session.scalar(
                    select(func.min(SystemState.started_at)).where(
                        SystemState.account == account,
                        SystemState.started_at > run.started_at,
                    )
                )
                back = at if ended is None else min(ended, at)
                row = RecoveryEventRow(
                    id=str(uuid.uuid4()),
                    run_id=run.run_id,
                    detected_by_run_id=current_run_id,
                    detected_at=at,
                    account=account,
                    pid=run.pid,
                    host=run.host,
                    version=run.version,
                    started_at=run.started_at,
                    last_heartbeat=run.last_heartbeat,
                    downtime_s=max(0.0, (back - run.last_heartbeat).total_seconds()),
                    status=DETECTED,
                    discrepancies=[],
                    updated_at=at,
                )
                session.add(row)
                rows.append(row)
            session.flush()
            return [_to_event(row) for row in rows]

    def record(
        self, *, run_id: str, detected_by_run_id: str | None, detected_at: datetime
    ) -> RecoveryEvent:
        """Record one crashed run by id; ``DuplicateRecord`` if it is already reported."""
        at = require_utc(detected_at, "detected_at")
        try:
            with self._tx.write() as session:
                run = session.get(SystemState, run_id)
                if run is None:
                    raise RecordNotFound(f"no run {run_id} in system_state")
                row = RecoveryEventRow(
                    id=str(uuid.uuid4()),
                    run_id=run.run_id,
                    detected_by_run_id=detected_by_run_id,
                    detected_at=at,
                    account=run.account,
                    pid=run.pid,
                    host=run.host,
                    version=run.version,
                    started_at=run.started_at,
                    last_heartbeat=run.last_heartbeat,
                    downtime_s=max(0.0, (at - run.last_heartbeat).total_seconds()),
                    status=DETECTED,
                    discrepancies=[],
                    updated_at=at,
                )
                session.add(row)
                session.flush()
                return _to_event(row)
        except DuplicateRecord as error:
            raise DuplicateRecord(f"run {run_id} already has a recovery event") from error

    def update(
        self,
        event_id: str,
        *,
        at: datetime,
        status: str | None = None,
        discrepancies: Sequence[Mapping[str, Any]] | None = None,
    ) -> RecoveryEvent:
        """Set the status and/or the discrepancy list; ``RecordNotFound`` for an unknown id."""
        when = require_utc(at, "at")
        if status is not None and status not in RECOVERY_STATUSES:
            allowed = ", ".join(RECOVERY_STATUSES)
            raise ValueError(f"status must be one of {allowed}, got {status!r}")
        with self._tx.write() as session:
            row = session.get(RecoveryEventRow, event_id)
            if row is None:
                raise RecordNotFound(f"no recovery event {event_id}")
            if status is not None:
                row.status = status
            if discrepancies is not None:
                row.discrepancies = [dict(item) for item in discrepancies]
            row.updated_at = when
            session.flush()
            return _to_event(row)

    def get(self, event_id: str) -> RecoveryEvent | None:
        """The recovery event with this id, or ``None``."""
        with self._tx.read() as session:
            row = session.get(RecoveryEventRow, event_id)
            return None if row is None else _to_event(row)

    def for_run(self, run_id: str) -> RecoveryEvent | None:
        """The recovery event of the crashed run ``run_id``, or ``None`` (not a known crash)."""
        with self._tx.read() as session:
            row = session.scalars(
                select(RecoveryEventRow).where(RecoveryEventRow.run_id == run_id)
            ).first()
            return None if row is None else _to_event(row)

    def latest(self, limit: int = 10, *, account: str | None = None) -> list[RecoveryEvent]:
        """The ``limit`` most recently detected events (of ``account`` if given), newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = select(RecoveryEventRow)
        if account is not None:
            query = query.where(RecoveryEventRow.account == account)
        with self._tx.read() as session:
            rows = session.scalars(
                query.order_by(
                    RecoveryEventRow.detected_at.desc(), RecoveryEventRow.id.desc()
                ).limit(limit)
            ).all()
            return [_to_event(row) for row in rows]


def _to_event(row: RecoveryEventRow) -> RecoveryEvent:
    return RecoveryEvent(
        id=row.id,
        run_id=row.run_id,
        detected_by_run_id=row.detected_by_run_id,
        detected_at=row.detected_at,
        account=row.account,
        pid=row.pid,
        host=row.host,
        version=row.version,
        started_at=row.started_at,
        last_heartbeat=row.last_heartbeat,
        downtime_s=row.downtime_s,
        status=row.status,
        discrepancies=tuple(dict(item) for item in row.discrepancies),
        updated_at=row.updated_at,
    )
