"""The ``system_state`` table: one row per process run, for crash detection.

A run is started when the process starts, beaten by the heartbeat actor while it is
alive and closed by a clean shutdown. A previous run without a clean stop whose last
heartbeat is old is a crash; recovery uses :meth:`SystemStateRepository.previous_run`
to find it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from tradingbot.storage.errors import DuplicateRecord, RecordNotFound
from tradingbot.storage.models import SystemState
from tradingbot.storage.timestamps import require_utc
from tradingbot.storage.transactions import Transactions


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One process run as stored. Timestamps are timezone-aware UTC."""

    run_id: str
    pid: int
    host: str
    version: str
    started_at: datetime
    last_heartbeat: datetime
    stopped_at: datetime | None
    clean_stop: bool
    account: str = ""


class SystemStateRepository:
    """Reads and writes process runs; every method is one short transaction.

    Methods raise :class:`~tradingbot.storage.StorageUnavailable` when the database
    cannot be reached and ``ValueError`` for a naive datetime or a malformed run id.
    They are safe to call from any thread.
    """

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def start_run(
        self,
        *,
        run_id: str,
        pid: int,
        host: str,
        version: str,
        started_at: datetime,
        account: str = "",
    ) -> RunRecord:
        """Record a new run (its first heartbeat is its start); ``DuplicateRecord`` if known.

        ``account`` is the IB account the run trades ("" when not configured).
        """
        _check_run_id(run_id)
        started = require_utc(started_at, "started_at")
        record = RunRecord(
            run_id=run_id,
            pid=pid,
            host=host,
            version=version,
            started_at=started,
            last_heartbeat=started,
            stopped_at=None,
            clean_stop=False,
            account=account,
        )
        try:
            with self._tx.write() as session:
                session.add(
                    SystemState(
                        run_id=run_id,
                        pid=pid,
                        host=host,
                        version=version,
                        started_at=started,
                        last_heartbeat=started,
                        stopped_at=None,
                        clean_stop=False,
                        account=account,
                    )
                )
        except DuplicateRecord as error:
            raise DuplicateRecord(f"run {run_id} is already recorded") from error
        return record

    def beat(self, run_id: str, at: datetime) -> None:
        """Set the run's last heartbeat to ``at``; ``RecordNotFound`` for an unknown run."""
        when = require_utc(at, "at")
        with self._tx.write() as session:
            result = session.connection().execute(
                update(SystemState).where(SystemState.run_id == run_id).values(last_heartbeat=when)
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"no run {run_id} in system_state")

    def record_clean_stop(self, run_id: str, at: datetime) -> None:
        """Mark the run as stopped cleanly at ``at``; ``RecordNotFound`` for an unknown run."""
        when = require_utc(at, "at")
        with self._tx.write() as session:
            result = session.connection().execute(
                update(SystemState)
                .where(SystemState.run_id == run_id)
                .values(stopped_at=when, clean_stop=True)
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"no run {run_id} in system_state")

    def get(self, run_id: str) -> RunRecord | None:
        """The run with this id, or ``None``."""
        with self._tx.read() as session:
            row = session.get(SystemState, run_id)
            return None if row is None else _to_record(row)

    def previous_run(self, run_id: str) -> RunRecord | None:
        """The most recent run started before ``run_id`` (``None`` if it is the first).

        Raise ``RecordNotFound`` if ``run_id`` itself is unknown.
        """
        with self._tx.read() as session:
            current = session.get(SystemState, run_id)
            if current is None:
                raise RecordNotFound(f"no run {run_id} in system_state")
            row = session.scalars(
                select(SystemState)
                .where(SystemState.started_at < current.started_at)
                .order_by(SystemState.started_at.desc(), SystemState.run_id.desc())
                .limit(1)
            ).first()
            return None if row is None else _to_record(row)

    def latest(self, limit: int = 10, *, account: str | None = None) -> list[RunRecord]:
        """The ``limit`` most recently started runs (of ``account`` if given), newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = select(SystemState)
        if account is not None:
            query = query.where(SystemState.account == account)
        with self._tx.read() as session:
            rows = session.scalars(
                query.order_by(SystemState.started_at.desc(), SystemState.run_id.desc()).limit(
                    limit
                )
            ).all()
            return [_to_record(row) for row in rows]


def _check_run_id(run_id: str) -> None:
    try:
        canonical = str(uuid.UUID(run_id))
    except (ValueError, TypeError, AttributeError):
        canonical = None
    if canonical != run_id:
        raise ValueError(
            f"run_id must be a lower-case UUID string like {uuid.uuid4()}, got {run_id!r}"
        )


def _to_record(row: SystemState) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        pid=row.pid,
        host=row.host,
        version=row.version,
        started_at=row.started_at,
        last_heartbeat=row.last_heartbeat,
        stopped_at=row.stopped_at,
        clean_stop=row.clean_stop,
        account=row.account,
    )
