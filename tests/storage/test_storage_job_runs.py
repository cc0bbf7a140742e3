"""The job_runs table on SQLite and PostgreSQL: one claim per job and date, ever."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from tradingbot.storage import Database

T0 = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)
DAY = date(2026, 3, 10)
A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"


def claim(database: Database, owner: str, *, retry: bool = False, at: datetime = T0):  # type: ignore[no-untyped-def]
    return database.job_runs.claim(
        job="daily_summary",
        run_key=DAY.isoformat(),
        trading_date=DAY,
        scheduled_at=T0,
        owner=owner,
        trigger="schedule",
        at=at,
        retry=retry,
    )


def test_a_slot_is_claimed_once_and_the_second_claim_is_refused(database: Database) -> None:
    """A job claimed for a date is not claimed again, by its owner after a restart or anyone."""
    first = claim(database, A)
    assert first is not None
    assert first.status == "running"
    assert first.attempts == 1
    assert claim(database, A) is None
    assert claim(database, B) is None


def test_two_processes_racing_for_a_slot_give_exactly_one_winner(database_url: str) -> None:
    """Two processes on one database claiming the same date at the same moment: one runs."""
    databases = [Database.open(database_url) for _ in range(4)]
    for db in databases:
        db.upgrade()
    barrier = threading.Barrier(len(databases))
    results: list[object] = []

    def race(db: Database, owner: str) -> None:
        barrier.wait()
        results.append(claim(db, owner))

    owners = [A, B, A.replace("1", "3"), B.replace("2", "4")]
    threads = [
        threading.Thread(target=race, args=pair) for pair in zip(databases, owners, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for db in databases:
        db.dispose()
    assert len(results) == 4
    assert sum(result is not None for result in results) == 1


def test_a_finished_run_records_outcome_and_duration(database: Database) -> None:
    """The run's end is stored: status, outcome text and how long it took."""
    claim(database, A)
    done = database.job_runs.finish(
        job="daily_summary",
        run_key="2026-03-10",
        owner=A,
        ok=True,
        at=T0 + timedelta(seconds=2.5),
        outcome="summary queued",
    )
    assert done is not None
    assert (done.status, done.outcome, done.duration_s) == ("ok", "summary queued", 2.5)
    assert database.job_runs.latest()["daily_summary"] == done


def test_only_a_failed_or_abandoned_slot_can_be_retried(database: Database) -> None:
    """An operator's retry reruns a failed date; a date that succeeded is never rerun."""
    claim(database, A)
    database.job_runs.finish(
        job="daily_summary", run_key="2026-03-10", owner=A, ok=False, at=T0, outcome="boom"
    )
    assert claim(database, B) is None  # the schedule never retries by itself
    again = claim(database, B, retry=True)
    assert again is not None
    assert (again.owner, again.attempts, again.status) == (B, 2, "running")
    database.job_runs.finish(
        job="daily_summary", run_key="2026-03-10", owner=B, ok=True, at=T0, outcome="ok"
    )
    assert claim(database, A, retry=True) is None


def test_a_claim_left_running_by_a_dead_process_is_marked_abandoned(database: Database) -> None:
    """After a crash mid-run the stale claim shows as abandoned, not as running forever."""
    claim(database, A, at=T0)
    assert (
        database.job_runs.abandon_stale(
            started_before=T0 + timedelta(hours=1), at=T0 + timedelta(hours=2), except_owner=B
        )
        == 1
    )
    record = database.job_runs.get("daily_summary", "2026-03-10")
    assert record is not None
    assert record.status == "abandoned"
    # Its late finish is ignored: the claim is no longer its owner's running run.
    assert (
        database.job_runs.finish(
            job="daily_summary", run_key="2026-03-10", owner=A, ok=True, at=T0, outcome="x"
        )
        is None
    )


def test_a_crashed_runs_fresh_claim_is_abandoned_by_owner_and_can_be_retried(
    database: Database,
) -> None:
    """A claim of a run found crashed is abandoned at once, however recent, and only that
    run's claims are: then the date can be retried instead of staying 'running'."""
    claim(database, A, at=T0)
    assert (
        database.job_runs.abandon_stale(
            started_before=T0 + timedelta(days=1), at=T0, except_owner=B, owner=B
        )
        == 0
    )
    assert (
        database.job_runs.abandon_stale(
            started_before=T0 + timedelta(days=1), at=T0, except_owner=B, owner=A
        )
        == 1
    )
    again = claim(database, B, retry=True)
    assert again is not None
    assert again.owner == B
