"""The ``job_runs`` table: the scheduler's durable claim on each job slot.

Inserting ``(job, run_key)`` *is* the claim: the unique key makes exactly one claimant
win, whether the others are this process after a restart or another process on the
same database. A claim is ``running`` until its owner finishes it (``ok`` or
``failed``); a claim left ``running`` by a process that died is marked ``abandoned``
(:meth:`JobRunRepository.abandon_stale`) and is not run again by itself: only an
operator's explicit retry reclaims a ``failed`` or ``abandoned`` slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tradingbot.storage.models import JobRunRow
from tradingbot.storage.timestamps import require_utc
from tradingbot.storage.transactions import Transactions

RUNNING = "running"
OK = "ok"
FAILED = "failed"
ABANDONED = "abandoned"
RETRYABLE = (FAILED, ABANDONED)
_T = cast(Table, JobRunRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRunRecord:
    """One claimed slot of a job and how its run went (``finished_at`` None: running)."""

    job: str
    run_key: str
    trading_date: date
    scheduled_at: datetime
    status: str
    trigger: str
    owner: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    outcome: str | None


class JobRunRepository:
    """Claims and results of job runs; every method is one short transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def claim(
        self,
        *,
        job: str,
        run_key: str,
        trading_date: date,
        scheduled_at: datetime,
        owner: str,
        trigger: str,
        at: datetime,
        retry: bool = False,
    ) -> JobRunRecord | None:
        """Claim the slot for ``owner``; ``None`` when it is already claimed.

        With ``retry`` a ``failed`` or ``abandoned`` slot is claimed again (attempts + 1);
        a ``running`` or ``ok`` one never is.
        """
        values = {
            "job": job,
            "run_key": run_key,
            "trading_date": trading_date,
            "scheduled_at": require_utc(scheduled_at, "scheduled_at"),
            "status": RUNNING,
            "trigger": trigger,
            "owner": owner,
            "attempts": 1,
            "started_at": require_utc(at, "at"),
            "finished_at": None,
            "duration_s": None,
            "outcome": None,
        }
        with self._tx.write_connection() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            inserted = connection.execute(
                dialect.insert(_T)
                .values(**values)
                .on_conflict_do_nothing(index_elements=[_T.c.job, _T.c.run_key])
                .returning(_T.c.id)
            ).first()
            if inserted is None:
                if not retry:
                    return None
                changed = connection.execute(
                    update(_T)
                    .where(_key(job, run_key), _T.c.status.in_(RETRYABLE))
                    .values(
                        status=RUNNING,
                        trigger=trigger,
                        owner=owner,
                        attempts=_T.c.attempts + 1,
                        started_at=values["started_at"],
                        finished_at=None,
                        duration_s=None,
                        outcome=None,
                    )
                )
                if changed.rowcount != 1:
                    return None
            row = connection.execute(select(_T).where(_key(job, run_key))).one()
            return _to_record(row)

    def finish(
        self, *, job: str, run_key: str, owner: str, ok: bool, at: datetime, outcome: str
    ) -> JobRunRecord | None:
        """Record the end of ``owner``'s run (``None``: the claim is no longer its own)."""
        with self._tx.write_connection() as connection:
            row = connection.execute(
                select(_T).where(_key(job, run_key), _T.c.owner == owner, _T.c.status == RUNNING)
            ).first()
            if row is None:
                return None
            finished = require_utc(at, "at")
            duration = max(
                0.0, (finished - require_utc(row.started_at, "started_at")).total_seconds()
            )
            connection.execute(
                update(_T)
                .where(_T.c.id == row.id)
                .values(
                    status=OK if ok else FAILED,
                    finished_at=finished,
                    duration_s=duration,
                    outcome=outcome,
                )
            )
            return _to_record(connection.execute(select(_T).where(_T.c.id == row.id)).one())

    def abandon_stale(
        self,
        *,
        started_before: datetime,
        at: datetime,
        except_owner: str,
        owner: str | None = None,
    ) -> int:
        """Mark ``running`` claims of other owners (only ``owner``'s, when given) started
        before the cut-off abandoned."""
        conditions = [
            _T.c.status == RUNNING,
            _T.c.owner != except_owner,
            _T.c.started_at < require_utc(started_before, "started_before"),
        ]
        if owner is not None:
            conditions.append(_T.c.owner == owner)
        with self._tx.write_connection() as connection:
            result = connection.execute(
                update(_T)
                .where(*conditions)
                .values(
                    status=ABANDONED,
                    finished_at=require_utc(at, "at"),
                    outcome="abandoned: the process running it stopped before it finished",
                )
            )
            return int(result.rowcount)

    def get(self, job: str, run_key: str) -> JobRunRecord | None:
        with self._tx.read_connection() as connection:
            row = connection.execute(select(_T).where(_key(job, run_key))).first()
        return None if row is None else _to_record(row)

    def latest(self) -> dict[str, JobRunRecord]:
        """Each job's most recently started run."""
        newest = (
            select(_T.c.job, func.max(_T.c.started_at).label("started_at"))
            .group_by(_T.c.job)
            .subquery()
        )
        with self._tx.read_connection() as connection:
            rows = connection.execute(
                select(_T).join(
                    newest,
                    and_(_T.c.job == newest.c.job, _T.c.started_at == newest.c.started_at),
                )
            ).all()
        return {row.job: _to_record(row) for row in rows}

    def recent(self, job: str | None = None, limit: int = 20) -> list[JobRunRecord]:
        """The latest runs (of one job), newest first."""
        query = select(_T).order_by(_T.c.started_at.desc(), _T.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(_T.c.job == job)
        with self._tx.read_connection() as connection:
            return [_to_record(row) for row in connection.execute(query).all()]


def _key(job: str, run_key: str) -> ColumnElement[bool]:
    return and_(_T.c.job == job, _T.c.run_key == run_key)


def _to_record(row: Any) -> JobRunRecord:
    return JobRunRecord(
        job=row.job,
        run_key=row.run_key,
        trading_date=row.trading_date,
        scheduled_at=require_utc(row.scheduled_at, "scheduled_at"),
        status=row.status,
        trigger=row.trigger,
        owner=row.owner,
        attempts=row.attempts,
        started_at=require_utc(row.started_at, "started_at"),
        finished_at=None if row.finished_at is None else require_utc(row.finished_at, "at"),
        duration_s=row.duration_s,
        outcome=row.outcome,
    )
