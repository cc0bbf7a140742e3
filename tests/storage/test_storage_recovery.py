"""Recovery events: crashed runs recorded once per account, then updated by reconciliation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tradingbot.storage import Database, DuplicateRecord, RecordNotFound, RunRecord

T0 = datetime(2025, 3, 7, 14, 30, 0, tzinfo=UTC)


def start(database: Database, started_at: datetime, *, pid: int, account: str = "") -> RunRecord:
    """Start a run with a fresh id at ``started_at`` (its heartbeat is its start)."""
    return database.system_state.start_run(
        run_id=str(uuid.uuid4()),
        pid=pid,
        host="box-1",
        version="0.1.0",
        started_at=started_at,
        account=account,
    )


def test_crashed_runs_are_recorded_once_with_their_downtime(database: Database) -> None:
    """Runs without a clean stop become 'detected' rows with pid, host and downtime, once."""
    clean = start(database, T0, pid=1)
    database.system_state.record_clean_stop(clean.run_id, T0 + timedelta(minutes=5))
    crashed = start(database, T0 + timedelta(hours=1), pid=2)
    database.system_state.beat(crashed.run_id, T0 + timedelta(hours=1, minutes=10))
    current = start(database, T0 + timedelta(hours=1, minutes=12), pid=3)
    detected_at = T0 + timedelta(hours=1, minutes=12, seconds=1)

    found = database.recovery.record_crashes(
        account="", current_run_id=current.run_id, detected_at=detected_at
    )
    assert len(found) == 1
    event = found[0]
    assert event.run_id == crashed.run_id
    assert (event.pid, event.host, event.version) == (2, "box-1", "0.1.0")
    assert event.last_heartbeat == T0 + timedelta(hours=1, minutes=10)
    assert event.started_at == crashed.started_at
    assert event.downtime_s == pytest.approx(120.0)  # last beat -> next run's start
    assert event.detected_at == detected_at
    assert event.detected_by_run_id == current.run_id
    assert event.status == "detected"
    assert event.discrepancies == ()
    assert database.recovery.get(event.id) == event
    assert database.recovery.for_run(crashed.run_id) == event
    assert database.recovery.for_run(clean.run_id) is None

    later = start(database, T0 + timedelta(hours=3), pid=4)
    again = database.recovery.record_crashes(
        account="", current_run_id=later.run_id, detected_at=T0 + timedelta(hours=3)
    )
    assert [e.run_id for e in again] == [current.run_id]  # the new crash only


def test_every_unreported_crash_is_recorded_oldest_first(database: Database) -> None:
    """Two crashes in a row are both recorded, each with its own downtime."""
    first = start(database, T0, pid=1)
    second = start(database, T0 + timedelta(minutes=10), pid=2)
    current = start(database, T0 + timedelta(minutes=30), pid=3)
    found = database.recovery.record_crashes(
        account="", current_run_id=current.run_id, detected_at=T0 + timedelta(minutes=30)
    )
    assert [e.run_id for e in found] == [first.run_id, second.run_id]
    assert [e.downtime_s for e in found] == [pytest.approx(600.0), pytest.approx(1200.0)]


def test_crashes_are_per_account(database: Database) -> None:
    """A run of another account is not ours to report (its own process may be alive)."""
    other = start(database, T0, pid=1, account="DU222")
    mine = start(database, T0 + timedelta(minutes=1), pid=2, account="DU111")
    current = start(database, T0 + timedelta(minutes=2), pid=3, account="DU111")
    found = database.recovery.record_crashes(
        account="DU111", current_run_id=current.run_id, detected_at=T0 + timedelta(minutes=2)
    )
    assert [e.run_id for e in found] == [mine.run_id]
    assert found[0].account == "DU111"
    assert database.recovery.for_run(other.run_id) is None
    assert database.system_state.latest(account="DU222") == [other]


def test_update_sets_status_and_discrepancies(database: Database) -> None:
    """Reconciliation can move the row to 'reconciled' and store its discrepancy list."""
    crashed = start(database, T0, pid=1)
    event = database.recovery.record(
        run_id=crashed.run_id, detected_by_run_id=None, detected_at=T0 + timedelta(seconds=90)
    )
    assert event.downtime_s == pytest.approx(90.0)
    findings = [{"kind": "position", "symbol": "AAPL", "ours": 10, "broker": 0}]
    updated = database.recovery.update(
        event.id, at=T0 + timedelta(minutes=5), status="reconciled", discrepancies=findings
    )
    assert updated.status == "reconciled"
    assert updated.discrepancies == tuple(findings)
    assert updated.updated_at == T0 + timedelta(minutes=5)
    assert database.recovery.get(event.id) == updated
    assert database.recovery.latest() == [updated]
    with pytest.raises(ValueError, match="status must be one of"):
        database.recovery.update(event.id, at=T0, status="fixed")
    with pytest.raises(RecordNotFound):
        database.recovery.update(str(uuid.uuid4()), at=T0, status="accepted")


def test_a_crash_is_recorded_at_most_once(database: Database) -> None:
    """Recording the same crashed run twice is refused (its run id is unique)."""
    crashed = start(database, T0, pid=1)
    database.recovery.record(run_id=crashed.run_id, detected_by_run_id=None, detected_at=T0)
    with pytest.raises(DuplicateRecord, match=crashed.run_id):
        database.recovery.record(run_id=crashed.run_id, detected_by_run_id=None, detected_at=T0)
    with pytest.raises(RecordNotFound):
        database.recovery.record(run_id=str(uuid.uuid4()), detected_by_run_id=None, detected_at=T0)


def test_naive_detection_time_is_refused(database: Database) -> None:
    """A naive datetime is a ValueError, never stored in local time."""
    current = start(database, T0, pid=1)
    with pytest.raises(ValueError, match="naive"):
        database.recovery.record_crashes(
            account="", current_run_id=current.run_id, detected_at=datetime(2025, 1, 1)
        )


def test_runs_recorded_before_the_migration_belong_to_the_default_account(
    database_url: str,
) -> None:
    """After upgrading to 0004 old runs are account ''; only the latest old crash is reported."""
    from alembic import command

    from tradingbot.storage.engine import create_engine_for
    from tradingbot.storage.schema import alembic_config

    old_runs = [  # run_id suffix, pid, started, last heartbeat, clean stop
        ("1", 7, "2025-01-01 00:00:00", "2025-01-01 00:01:00", "false"),
        ("2", 8, "2025-01-01 01:00:00", "2025-01-01 01:05:00", "true"),
        ("3", 9, "2025-01-01 02:00:00", "2025-01-01 02:10:00", "false"),
    ]
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0003")
            for suffix, pid, started, beat, clean in old_runs:
                connection.exec_driver_sql(
                    "INSERT INTO system_state (run_id, pid, host, version, started_at,"
                    f" last_heartbeat, clean_stop) VALUES ('00000000-0000-4000-8000-00000000000"
                    f"{suffix}', {pid}, 'old-box', '0.0.9', '{started}', '{beat}', {clean})"
                )
    finally:
        engine.dispose()
    with Database.open(database_url) as database:
        assert database.upgrade()[0] == "0004"
        history = database.recovery.latest()
        assert [(e.pid, e.status, e.account) for e in history] == [(7, "accepted", "")]
        assert history[0].downtime_s == pytest.approx(3540.0)  # 00:01 -> the 01:00 start
        current = start(database, T0, pid=10)
        found = database.recovery.record_crashes(
            account="", current_run_id=current.run_id, detected_at=T0
        )
        assert [(e.pid, e.host, e.account, e.status) for e in found] == [
            (9, "old-box", "", "detected")
        ]
