"""Opening a run: the run lock, the schema, this run's record, the crashed runs before it.

In this order, and why: the run lock first, so a live process's run is never taken for a
crash (:class:`~tradingbot.recovery.runlock.AlreadyRunning` leaves before anything is
written); then the schema (a newer version may have added tables); then this run's record;
then the earlier runs that ended without a clean stop, found as crashes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from tradingbot import __version__
from tradingbot.recovery.crash import CrashReport, detect_crashes
from tradingbot.recovery.runlock import RunLock, acquire_run_lock
from tradingbot.storage import Database, RunRecord

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RunStart:
    """What opening a run produced (the caller releases ``lock`` at its stop)."""

    lock: RunLock
    record: RunRecord
    crashes: list[CrashReport]


def open_run(
    database: Database,
    *,
    account: str,
    run_id: str,
    started_at: datetime,
    crash_timeout_s: float,
) -> RunStart:
    """Take the run lock, migrate, record this run and find the crashed runs before it."""
    pid, host = os.getpid(), socket.gethostname()
    lock = acquire_run_lock(database, account, pid=pid, host=host, run_id=run_id)
    try:
        applied = database.upgrade()
        if applied:
            log.info("database_migrated", revisions=applied, url=database.redacted_url)
        record = database.system_state.start_run(
            run_id=run_id,
            pid=pid,
            host=host,
            version=__version__,
            started_at=started_at,
            account=account,
        )
        crashes = detect_crashes(
            database,
            account=account,
            current_run_id=run_id,
            crash_timeout_s=crash_timeout_s,
            now=datetime.now(UTC),
        )
    except BaseException:
        lock.release()
        raise
    return RunStart(lock=lock, record=record, crashes=crashes)
