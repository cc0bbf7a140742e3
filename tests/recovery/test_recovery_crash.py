"""Crash detection at start: new crashes, and crashes whose event an earlier start never stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tradingbot.events.model import SYSTEM, Event, Severity
from tradingbot.recovery import detect_crashes
from tradingbot.recovery.crash import crash_event_id
from tradingbot.storage import Database, RunRecord

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
