"""Process runs in ``system_state``: start, heartbeat, clean stop, previous run."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tradingbot.storage import (
    Database,
    DuplicateRecord,
    RecordNotFound,
    RunRecord,
    SystemStateRepository,
)

T0 = datetime(2025, 3, 7, 14, 30, 0, 123456, tzinfo=UTC)


def start(repo: SystemStateRepository, started_at: datetime, *, pid: int = 4242) -> RunRecord:
    """Start a run with a fresh id at ``started_at``."""
    return repo.start_run(
        run_id=str(uuid.uuid4()), pid=pid, host="box-1", version="0.1.0", started_at=started_at
    )


def test_run_lifecycle(database: Database) -> None:
    """A run is stored at start, its heartbeat advances, and a clean stop is recorded."""
    repo = database.system_state
    run = start(repo, T0)
    assert run.last_heartbeat == T0
    assert (run.stopped_at, run.clean_stop) == (None, False)
    assert repo.get(run.run_id) == run

    repo.beat(run.run_id, T0 + timedelta(seconds=30))
    beaten = repo.get(run.run_id)
    assert beaten is not None
    assert beaten.last_heartbeat == T0 + timedelta(seconds=30)
    assert (beaten.stopped_at, beaten.clean_stop) == (None, False)

    repo.record_clean_stop(run.run_id, T0 + timedelta(seconds=45))
    stopped = repo.get(run.run_id)
    assert stopped == dataclasses.replace(
        beaten, stopped_at=T0 + timedelta(seconds=45), clean_stop=True
    )


def test_previous_run_is_the_latest_one_started_before(database: Database) -> None:
    """previous_run returns the most recent earlier run, crashed or not, and None for the first."""
    repo = database.system_state
    middle = start(repo, T0 + timedelta(hours=1), pid=2)
    first = start(repo, T0, pid=1)
    last = start(repo, T0 + timedelta(hours=2), pid=3)
    repo.record_clean_stop(first.run_id, T0 + timedelta(minutes=30))

    assert repo.previous_run(last.run_id) == middle  # crashed: never stopped cleanly
    previous = repo.previous_run(middle.run_id)
    assert previous is not None
    assert (previous.run_id, previous.clean_stop) == (first.run_id, True)
    assert repo.previous_run(first.run_id) is None


def test_latest_lists_newest_first(database: Database) -> None:
    """latest returns at most ``limit`` runs, newest start first."""
    repo = database.system_state
    runs = [start(repo, T0 + timedelta(minutes=i), pid=i) for i in (3, 1, 4, 2, 0)]
    newest_first = sorted(runs, key=lambda r: r.started_at, reverse=True)
    assert repo.latest() == newest_first
    assert repo.latest(limit=2) == newest_first[:2]
    with pytest.raises(ValueError, match="limit"):
        repo.latest(limit=0)


def test_unknown_run_is_reported(database: Database) -> None:
    """Beating, stopping or asking before an unknown run raises RecordNotFound; get returns None."""
    repo = database.system_state
    missing = str(uuid.uuid4())
    assert repo.get(missing) is None
    with pytest.raises(RecordNotFound):
        repo.beat(missing, T0)
    with pytest.raises(RecordNotFound):
        repo.record_clean_stop(missing, T0)
    with pytest.raises(RecordNotFound):
        repo.previous_run(missing)


def test_duplicate_run_id_is_refused(database: Database) -> None:
    """Starting a run twice with the same id raises DuplicateRecord and keeps the first row."""
    repo = database.system_state
    run = start(repo, T0)
    with pytest.raises(DuplicateRecord, match=run.run_id):
        repo.start_run(
            run_id=run.run_id, pid=1, host="other", version="9", started_at=T0 + timedelta(days=1)
        )
    assert repo.get(run.run_id) == run


@pytest.mark.parametrize("run_id", ["not-a-uuid", str(uuid.uuid4()).upper(), ""])
def test_malformed_run_id_is_refused(database: Database, run_id: str) -> None:
    """A run id that is not a canonical lower-case UUID string raises ValueError."""
    with pytest.raises(ValueError, match="run_id"):
        database.system_state.start_run(run_id=run_id, pid=1, host="h", version="v", started_at=T0)
    assert database.system_state.latest() == []


def test_run_record_is_immutable(database: Database) -> None:
    """A RunRecord handed out by the repository cannot be modified."""
    run = start(database.system_state, T0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.clean_stop = True  # type: ignore[misc]


def test_concurrent_writers_do_not_fail(database: Database) -> None:
    """Heartbeats from several threads at once all land, without 'database is locked'."""
    repo = database.system_state
    runs = [start(repo, T0 + timedelta(seconds=i), pid=i) for i in range(6)]
    beats = 20
    barrier = threading.Barrier(len(runs), timeout=30)
    errors: list[BaseException] = []

    def beat(run: RunRecord) -> None:
        try:
            barrier.wait()
            for n in range(1, beats + 1):
                repo.beat(run.run_id, run.started_at + timedelta(seconds=n))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=beat, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    for run in runs:
        stored = repo.get(run.run_id)
        assert stored is not None
        assert stored.last_heartbeat == run.started_at + timedelta(seconds=beats)
