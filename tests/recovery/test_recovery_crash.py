"""Crash detection at start: new crashes, and crashes whose event an earlier start never stored."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import psutil

from tradingbot.events.model import SYSTEM, Event, Severity
from tradingbot.recovery import detect_crashes, process_is_gone
from tradingbot.recovery.crash import crash_event_id
from tradingbot.storage import Database, RecoveryEvent, RunRecord

T0 = datetime(2025, 3, 7, 14, 30, 0, tzinfo=UTC)
TIMEOUT_S = 300.0


def _start(database: Database, at: datetime, pid: int) -> RunRecord:
    return database.system_state.start_run(
        run_id=str(uuid.uuid4()), pid=pid, host="box-1", version="0.1.0", started_at=at
    )


def test_a_quick_restart_is_a_crash_with_a_fresh_heartbeat(database: Database) -> None:
    """A run without a clean stop is a crash even seconds later; its heartbeat is not stale."""
    crashed = _start(database, T0, pid=11)
    current = _start(database, T0 + timedelta(seconds=3), pid=12)
    reports = detect_crashes(
        database,
        account="",
        current_run_id=current.run_id,
        crash_timeout_s=TIMEOUT_S,
        now=T0 + timedelta(seconds=4),
    )
    assert [r.recovery.run_id for r in reports] == [crashed.run_id]
    report = reports[0]
    assert report.heartbeat_age_s == 4.0
    assert report.heartbeat_stale is False
    assert "pid 11 on box-1" in report.summary
    assert report.context()["downtime_s"] == 3.0


def test_a_long_dead_run_is_reported_with_a_stale_heartbeat(database: Database) -> None:
    """A crash found hours later says its heartbeat was already stale."""
    _start(database, T0, pid=11)
    current = _start(database, T0 + timedelta(hours=2), pid=12)
    (report,) = detect_crashes(
        database,
        account="",
        current_run_id=current.run_id,
        crash_timeout_s=TIMEOUT_S,
        now=T0 + timedelta(hours=2),
    )
    assert report.heartbeat_stale is True
    assert report.context()["heartbeat_stale"] is True


def test_a_crash_whose_event_was_never_stored_is_reported_again(database: Database) -> None:
    """A crash recorded by a start that died before storing its event is reported next time."""
    crashed = _start(database, T0, pid=11)
    dying = _start(database, T0 + timedelta(seconds=5), pid=12)
    recorded = database.recovery.record_crashes(
        account="", current_run_id=dying.run_id, detected_at=T0 + timedelta(seconds=5)
    )
    assert [e.run_id for e in recorded] == [crashed.run_id]

    current = _start(database, T0 + timedelta(seconds=9), pid=13)
    reports = detect_crashes(
        database,
        account="",
        current_run_id=current.run_id,
        crash_timeout_s=TIMEOUT_S,
        now=T0 + timedelta(seconds=9),
    )
    assert [r.recovery.run_id for r in reports] == [crashed.run_id, dying.run_id]
    assert reports[0].recovery.id == recorded[0].id  # the same row, not a second one

    # Once the event is stored (its id derives from the recovery event), it is done.
    for report in reports:
        database.events.insert_many(
            [
                Event(
                    type=SYSTEM,
                    message=report.summary,
                    severity=Severity.ERROR,
                    source="recovery",
                    id=crash_event_id(report.recovery.id),
                )
            ]
        )
    later = _start(database, T0 + timedelta(seconds=20), pid=14)
    database.system_state.record_clean_stop(current.run_id, T0 + timedelta(seconds=19))
    assert (
        detect_crashes(
            database,
            account="",
            current_run_id=later.run_id,
            crash_timeout_s=TIMEOUT_S,
            now=T0 + timedelta(seconds=20),
        )
        == []
    )


def _crashed(pid: int, *, started_at: datetime, host: str | None = None) -> RecoveryEvent:
    return RecoveryEvent(
        id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        detected_by_run_id=None,
        detected_at=started_at + timedelta(hours=1),
        account="DU1",
        pid=pid,
        host=host or socket.gethostname(),
        version="0.1.0",
        started_at=started_at,
        last_heartbeat=started_at,
        downtime_s=1.0,
        status="detected",
        discrepancies=(),
        updated_at=started_at,
    )


def test_a_crashed_run_whose_pid_is_gone_is_known_dead() -> None:
    """A crashed run whose process no longer exists is known dead, so recovery need not wait for its
    lock to expire."""
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(finished.stdout)
    assert process_is_gone(_crashed(pid, started_at=datetime.now(UTC) - timedelta(minutes=1)))


def test_a_crashed_run_whose_process_still_runs_here_is_not_known_dead() -> None:
    """It lost its lock but runs on: its pid belongs to a process started before the run."""
    me = psutil.Process()
    started = datetime.fromtimestamp(me.create_time(), UTC) + timedelta(seconds=5)
    assert not process_is_gone(_crashed(me.pid, started_at=started))


def test_a_reused_pid_does_not_keep_a_crashed_run_alive() -> None:
    """The pid exists, but its process started after the crashed run did: someone else's."""
    me = psutil.Process()
    long_before = datetime.fromtimestamp(me.create_time(), UTC) - timedelta(days=3)
    assert process_is_gone(_crashed(me.pid, started_at=long_before))


def test_a_crashed_run_on_another_host_is_never_known_dead() -> None:
    """Its process cannot be checked from here: its claims are left to expire."""
    crashed = _crashed(2**22 + 1, started_at=T0, host="some-other-box")
    assert not process_is_gone(crashed)
