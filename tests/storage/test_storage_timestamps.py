"""Timestamps are timezone-aware UTC in the database and back in Python, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy

from tradingbot.storage import Database
from tradingbot.storage.engine import create_engine_for
from tradingbot.storage.models import SystemState
from tradingbot.storage.transactions import Transactions

NEW_YORK = ZoneInfo("America/New_York")


def test_timestamps_round_trip_as_aware_utc(database: Database) -> None:
    """A New York time goes in; the same instant comes back, aware, in UTC, to the microsecond."""
    repo = database.system_state
    started = datetime(2025, 7, 1, 9, 30, 0, 654321, tzinfo=NEW_YORK)  # EDT, UTC-4
    beat = datetime(2025, 7, 1, 13, 31, 0, 1, tzinfo=timezone(timedelta(hours=-3)))
    run = repo.start_run(run_id=str(uuid.uuid4()), pid=1, host="h", version="v", started_at=started)
    repo.beat(run.run_id, beat)
    repo.record_clean_stop(run.run_id, beat)

    stored = repo.get(run.run_id)
    assert stored is not None
    for value, expected in (
        (stored.started_at, started),
        (stored.last_heartbeat, beat),
        (stored.stopped_at, beat),
    ):
        assert value is not None
        assert value.tzinfo is UTC
        assert value == expected
    assert stored.started_at == datetime(2025, 7, 1, 13, 30, 0, 654321, tzinfo=UTC)
    assert run.started_at.tzinfo is UTC


def test_database_holds_utc(database: Database, database_url: str) -> None:
    """The stored value is UTC: timestamptz on PostgreSQL, UTC wall time text on SQLite."""
    started = datetime(2025, 1, 15, 9, 30, tzinfo=NEW_YORK)  # EST, UTC-5
    run = database.system_state.start_run(
        run_id=str(uuid.uuid4()), pid=1, host="h", version="v", started_at=started
    )
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            if database.dialect == "postgresql":
                types = connection.execute(
                    sqlalchemy.text(
                        "SELECT column_name, data_type FROM information_schema.columns"
                        " WHERE table_name = 'system_state' AND column_name IN"
                        " ('started_at', 'last_heartbeat', 'stopped_at')"
                    )
                ).all()
                assert {data_type for _, data_type in types} == {"timestamp with time zone"}
                assert len(types) == 3
                raw = connection.execute(
                    sqlalchemy.text(
                        "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
                        " FROM system_state WHERE run_id = :id"
                    ),
                    {"id": run.run_id},
                ).scalar_one()
            else:
                raw = connection.execute(
                    sqlalchemy.text("SELECT started_at FROM system_state WHERE run_id = :id"),
                    {"id": run.run_id},
                ).scalar_one()
    finally:
        engine.dispose()
    assert str(raw).startswith("2025-01-15 14:30:00")


def test_naive_datetimes_are_rejected(database: Database) -> None:
    """A datetime without a time zone raises ValueError and nothing is written."""
    repo = database.system_state
    naive = datetime(2025, 1, 15, 9, 30)
    with pytest.raises(ValueError, match="naive"):
        repo.start_run(run_id=str(uuid.uuid4()), pid=1, host="h", version="v", started_at=naive)
    run = repo.start_run(
        run_id=str(uuid.uuid4()), pid=1, host="h", version="v", started_at=naive.replace(tzinfo=UTC)
    )
    with pytest.raises(ValueError, match="naive"):
        repo.beat(run.run_id, naive)
    with pytest.raises(ValueError, match="naive"):
        repo.record_clean_stop(run.run_id, naive)
    assert repo.latest() == [run]


def test_column_type_rejects_naive_datetimes(database: Database, database_url: str) -> None:
    """Even a direct ORM write of a naive datetime raises ValueError (not a driver error)."""
    tx = Transactions(create_engine_for(database_url), database_url)
    try:
        with pytest.raises(ValueError, match="naive"), tx.write() as session:
            session.add(
                SystemState(
                    run_id=str(uuid.uuid4()),
                    pid=1,
                    host="h",
                    version="v",
                    started_at=datetime(2025, 1, 15, 9, 30),
                    last_heartbeat=datetime(2025, 1, 15, 9, 30, tzinfo=UTC),
                )
            )
    finally:
        tx.engine.dispose()
    assert database.system_state.latest() == []
