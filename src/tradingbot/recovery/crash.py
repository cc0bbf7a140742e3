"""Crash detection at start: which earlier runs died, recorded once, reported once.

A run is a crash when it ended without a clean stop (whatever its age: the quick
restart after a ``kill -9`` counts) and no live process holds the run lock — which the
caller guarantees by holding it. :func:`detect_crashes` records a ``recovery_events``
row per crashed run (status ``detected``, empty discrepancy list) and returns one
:class:`CrashReport` each; :func:`report_crash` writes the durable SYSTEM event at
ERROR. The recovery-report e-mail is sent from the report by the caller (the seam is
:class:`tradingbot.recovery.followup.CrashFollowUp`).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil

from tradingbot.events.model import SYSTEM, Event, Severity
from tradingbot.events.recorder import EventRecorder
from tradingbot.storage import Database, RecoveryEvent
from tradingbot.storage.recovery import DETECTED

SOURCE = "recovery"
PID_REUSE_SLACK_S = 1.0  # process start times are rounded; a reused pid starts later
UNREPORTED_SCAN = 50  # recent recovery events checked for a missing crash event
_EVENT_NAMESPACE = uuid.UUID("6c1f3e2a-8d4b-5f07-9a51-2b7e0c4d9f18")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrashReport:
    """One detected crash, as the operator reads it (event, e-mail, API).

    ``heartbeat_stale`` says the crashed run's last heartbeat was already older than
    ``TRADINGBOT_CRASH_TIMEOUT_S`` when it was detected (it was dead, or hung, for a
    while); a quick restart after ``kill -9`` has a fresh one.
    """

    recovery: RecoveryEvent
    crash_timeout_s: float

    @property
    def heartbeat_age_s(self) -> float:
        return max(0.0, (self.recovery.detected_at - self.recovery.last_heartbeat).total_seconds())

    @property
    def heartbeat_stale(self) -> bool:
        return self.heartbeat_age_s > self.crash_timeout_s

    @property
    def summary(self) -> str:
        """One line: which run died, where, when it last beat and how long we were down."""
        r = self.recovery
        return (
            f"crash detected: run {r.run_id} (pid {r.pid} on {r.host}, version {r.version}) "
            f"ended without a clean stop; last heartbeat {r.last_heartbeat.isoformat()}, "
            f"down {r.downtime_s:.1f} s"
        )

    def context(self) -> Mapping[str, Any]:
        """Plain data for the SYSTEM event and the report e-mail's template."""
        r = self.recovery
        return {
            "event": "crash_detected",
            "recovery_event_id": r.id,
            "crashed_run_id": r.run_id,
            "detected_by_run_id": r.detected_by_run_id,
            "account": r.account,
            "pid": r.pid,
            "host": r.host,
            "version": r.version,
            "started_at": r.started_at.isoformat(),
            "last_heartbeat": r.last_heartbeat.isoformat(),
            "detected_at": r.detected_at.isoformat(),
            "downtime_s": round(r.downtime_s, 3),
            "heartbeat_age_s": round(self.heartbeat_age_s, 3),
            "heartbeat_stale": self.heartbeat_stale,
            "crash_timeout_s": self.crash_timeout_s,
            "status": r.status,
        }


def process_is_gone(recovery: RecoveryEvent, *, host: str | None = None) -> bool:
    """Whether the crashed run's process is certainly not running any more.

    Holding the run lock does not prove it: a process whose lock was lost (a dropped
    PostgreSQL session, a deleted lock file) keeps running until its lock monitor notices.
    Only a process on this host can be checked: gone when its pid does not exist, or
    belongs to a process started after the crashed run did (the pid was reused).
    """
    if recovery.host != (host or socket.gethostname()):
        return False
    try:
        created = psutil.Process(recovery.pid).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # AccessDenied and the like: it exists
        return False
    return created > recovery.started_at.timestamp() + PID_REUSE_SLACK_S


def detect_crashes(
    database: Database,
    *,
    account: str,
    current_run_id: str,
    crash_timeout_s: float,
    now: datetime,
) -> list[CrashReport]:
    """Record and return every crashed run of ``account`` not reported before (oldest first).

    Also returned again: crashes still ``detected`` whose SYSTEM event is not stored
    (the start that found them died first). Call only while holding the run lock,
    after this run is recorded. Raises
    :class:`~tradingbot.storage.StorageError` when the database fails.
    """
    events = database.recovery.record_crashes(
        account=account, current_run_id=current_run_id, detected_at=now
    )
    new = {event.id for event in events}
    # Crashes an earlier start recorded but died before storing their event: again.
    unreported = [
        event
        for event in reversed(database.recovery.latest(UNREPORTED_SCAN, account=account))
        if event.status == DETECTED
        and event.id not in new
        and database.events.get(crash_event_id(event.id)) is None
    ]
    return [
        CrashReport(recovery=event, crash_timeout_s=crash_timeout_s)
        for event in [*unreported, *events]
    ]


def crash_event_id(recovery_event_id: str) -> uuid.UUID:
    """The SYSTEM event's id, derived from the recovery event: reporting twice stores once."""
    return uuid.uuid5(_EVENT_NAMESPACE, recovery_event_id)


def report_crash(recorder: EventRecorder, report: CrashReport, *, timeout_s: float = 10.0) -> Event:
    """Record the crash as a SYSTEM event at ERROR and wait until it is durable.

    Raises :class:`~tradingbot.events.recorder.EventNotDurable` when neither the
    database nor the spool confirmed it within ``timeout_s``.
    """
    return recorder.record_durable(
        SYSTEM,
        report.summary,
        severity=Severity.ERROR,
        source=SOURCE,
        context=dict(report.context()),
        event_id=crash_event_id(report.recovery.id),
        timeout_s=timeout_s,
    )
