"""The scheduler actor with an injected wall clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from support.clocks import WallClock
from support.waiting import wait_until
from tradingbot.scheduler import EXCHANGE_TZ, AfterClose, Job, Slot, nyse
from tradingbot.scheduler.actor import RunJob, RunResult, SchedulerActor, SchedulerSettings
from tradingbot.scheduler.health import scheduler_check
from tradingbot.scheduler.status import SchedulerCollector, SchedulerStatus
from tradingbot.storage import Database
from tradingbot.supervision import SupervisedActor, SupervisionTree, supervisor, worker

DAY = date(2026, 3, 10)  # a Tuesday session, after the March DST switch


def et(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=EXCHANGE_TZ)


@dataclass(frozen=True, slots=True)
class Work:
    key: str


class Target(SupervisedActor):
    """Does the work a job asks for; fails while ``failing`` is set."""

    def __init__(self, seen: list[str], failing: threading.Event) -> None:
        super().__init__()
        self._seen = seen
        self._failing = failing

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Work):
            self._seen.append(message.key)
            if self._failing.is_set():
                raise RuntimeError("the mail server said no")
            return f"summary for {message.key} queued"
        return super().on_receive(message)


def summary_job(grace: timedelta = timedelta(hours=2)) -> Job:
    return Job(
        name="daily_summary",
        rule=AfterClose(timedelta(minutes=30)),
        actor="target",
        message=lambda slot: Work(slot.key),
        grace=grace,
        timeout_s=10.0,
    )


class Process:
    """One scheduler process: a tree with the target and the scheduler."""

    def __init__(self, database: Database, clock: WallClock, job: Job, account: str = "") -> None:
        self.seen: list[str] = []
        self.failing = threading.Event()
        self.status = SchedulerStatus()
        self.owner = str(uuid.uuid4())
        self.clock = clock
        self.tree = SupervisionTree(
            supervisor(
                "root",
                [
                    worker("target", lambda: Target(self.seen, self.failing)),
                    worker(
                        "scheduler",
                        lambda: SchedulerActor(
                            [job],
                            database,
                            nyse(),
                            self.status,
                            SchedulerSettings(owner=self.owner, tick_s=0.01, account=account),
                            now=clock,
                        ),
                    ),
                ],
                intensity=20,
            ),
            listeners=(),
        )
        self.tree.start()

    def last_status(self) -> str | None:
        state = self.status.get("daily_summary")
        return None if state is None or state.last is None else state.last.status

    def idle(self) -> bool:
        state = self.status.get("daily_summary")
        return state is not None and state.running is None

    def health(self) -> tuple[str, str | None]:
        [check] = scheduler_check(self.status, self.clock)()
        return check.status, check.output

    def run(self, day: date | None = None) -> RunResult:
        future = self.tree.ask("scheduler", RunJob(name="daily_summary", day=day), 5.0)
        result: RunResult = future.result(20)
        return result

    def stop(self) -> None:
        self.tree.stop()


@pytest.fixture
def processes(database: Database) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def test_a_job_fires_once_when_its_time_comes(database: Database, processes: list[Process]) -> None:
    """At 16:30 ET the summary runs once; later ticks of the same day do not repeat it."""
    clock = WallClock(et(DAY, 16, 0))
    process = Process(database, clock, summary_job())
    processes.append(process)
    assert process.seen == []
    clock.set(et(DAY, 16, 30))
    wait_until(lambda: process.last_status() == "ok", message="the summary run")
    clock.set(et(DAY, 17, 0))
    wait_until(lambda: process.status.get("daily_summary").next.trading_date == date(2026, 3, 11))  # type: ignore[union-attr]
    assert process.seen == ["2026-03-10"]
    record = database.job_runs.get("daily_summary", "2026-03-10")
    assert record is not None
    assert (record.status, record.trigger, record.outcome) == (
        "ok",
        "schedule",
        "summary for 2026-03-10 queued",
    )
    assert process.health() == ("pass", None)


def test_a_missed_job_within_grace_runs_once_across_restarts(
    database: Database, processes: list[Process]
) -> None:
    """Started at 17:00 after downtime, the 16:30 summary runs once; a restart does not rerun it."""
    clock = WallClock(et(DAY, 17, 0))
    first = Process(database, clock, summary_job())
    processes.append(first)
    wait_until(lambda: first.last_status() == "ok", message="the missed run")
    first.stop()
    second = Process(database, clock, summary_job())
    processes.append(second)
    wait_until(lambda: second.status.started, message="the second scheduler")
    wait_until(second.idle)
    assert first.seen == ["2026-03-10"]
    assert second.seen == []
    record = database.job_runs.get("daily_summary", "2026-03-10")
    assert record is not None
    assert (record.trigger, record.owner) == ("missed", first.owner)


def test_two_processes_on_one_database_run_a_slot_once(
    database: Database, processes: list[Process]
) -> None:
    """Two schedulers sharing a database: the 16:30 summary runs in exactly one of them."""
    clock = WallClock(et(DAY, 16, 0))
    a = Process(database, clock, summary_job())
    b = Process(database, clock, summary_job())
    processes.extend([a, b])
    clock.set(et(DAY, 16, 30))
    wait_until(lambda: database.job_runs.get("daily_summary", "2026-03-10") is not None)
    wait_until(lambda: (a.last_status(), b.last_status()) == ("ok", "ok"), message="both see it")
    assert sorted(a.seen + b.seen) == ["2026-03-10"]


def test_two_accounts_on_one_database_each_run_their_own_summary(
    database: Database, processes: list[Process]
) -> None:
    """Two accounts sharing a database (as the run lock allows): each gets its own summary
    run for the date, under its own claim."""
    clock = WallClock(et(DAY, 16, 0))
    a = Process(database, clock, summary_job(), account="DU111")
    b = Process(database, clock, summary_job(), account="DU222")
    processes.extend([a, b])
    clock.set(et(DAY, 16, 30))
    wait_until(lambda: (a.last_status(), b.last_status()) == ("ok", "ok"), message="both ran")
    assert (a.seen, b.seen) == (["2026-03-10@DU111"], ["2026-03-10@DU222"])
    for account in ("DU111", "DU222"):
        record = database.job_runs.get("daily_summary", f"2026-03-10@{account}")
        assert record is not None
        assert record.status == "ok"


def test_a_slot_missed_past_its_grace_is_reported_not_run(
    database: Database, processes: list[Process]
) -> None:
    """Down a whole day, yesterday's summary is not sent late: health warns instead."""
    clock = WallClock(et(DAY - timedelta(days=1), 17, 0))
    before = Process(database, clock, summary_job())
    processes.append(before)
    wait_until(lambda: before.last_status() == "ok")
    before.stop()
    clock.set(et(DAY + timedelta(days=1), 9, 0))
    process = Process(database, clock, summary_job())
    processes.append(process)
    wait_until(lambda: process.status.started)
    status, output = process.health()
    assert status == "warn"
    assert output is not None
    assert "2026-03-10" in output
    assert process.seen == []
    result = process.run(DAY)  # the operator sends it by hand
    assert result.ran
    assert process.seen == ["2026-03-10"]
    wait_until(lambda: process.health()[0] == "pass", message="the warning to clear")


def test_a_failed_run_warns_and_a_manual_run_retries_it(
    database: Database, processes: list[Process]
) -> None:
    """A failing job shows as warn with its error; `run` retries it; a succeeded date is kept."""
    clock = WallClock(et(DAY, 16, 0))
    process = Process(database, clock, summary_job())
    processes.append(process)
    process.failing.set()
    clock.set(et(DAY, 16, 30))
    wait_until(lambda: process.last_status() == "failed", message="the failed run")
    status, output = process.health()
    assert status == "warn"
    assert "the mail server said no" in (output or "")
    process.failing.clear()
    retried = process.run(DAY)
    assert retried.ran
    assert retried.record is not None
    assert (retried.record.status, retried.record.attempts) == ("ok", 2)
    again = process.run(DAY)
    assert not again.ran  # idempotent by key: a date that succeeded is never rerun
    assert process.seen == ["2026-03-10", "2026-03-10"]
    wait_until(lambda: process.health()[0] == "pass")


def test_running_a_job_whose_actor_is_missing_says_so_plainly(
    database: Database, processes: list[Process]
) -> None:
    """`run JOB` for a job whose actor is not in the tree answers one plain sentence naming
    the actor (never a bare KeyError) and claims nothing, so a later run is not blocked."""
    clock = WallClock(et(DAY, 17, 0))
    orphan = replace(summary_job(), actor="reporter")
    process = Process(database, clock, orphan)
    processes.append(process)
    with pytest.raises(RuntimeError, match="its actor 'reporter' is not running"):
        process.run(DAY)
    assert database.job_runs.get("daily_summary", "2026-03-10") is None


def test_a_due_summary_waits_for_readiness_then_runs_once(
    database: Database, processes: list[Process]
) -> None:
    """A due job whose readiness check names a reason waits (the reason shows in its
    state) and runs once the check passes, e.g. the summary after the first reconciliation."""
    clock = WallClock(et(DAY, 16, 0))
    reconciled = threading.Event()
    job = replace(
        summary_job(),
        ready=lambda: None if reconciled.is_set() else "waiting for the first reconciliation",
    )
    process = Process(database, clock, job)
    processes.append(process)
    clock.set(et(DAY, 16, 31))
    wait_until(
        lambda: (
            (s := process.status.get("daily_summary")) is not None
            and s.waiting == "waiting for the first reconciliation"
        ),
        message="the summary to wait",
    )
    assert process.seen == []
    reconciled.set()
    wait_until(lambda: process.last_status() == "ok", message="the summary once ready")
    assert process.seen == ["2026-03-10"]
    state = process.status.get("daily_summary")
    assert state is not None
    assert state.waiting is None


def test_a_job_that_is_never_ready_runs_anyway_after_its_wait(
    database: Database, processes: list[Process]
) -> None:
    """A readiness check that never passes holds a due job back at most ``ready_wait``:
    the summary still goes out (late) rather than never."""
    clock = WallClock(et(DAY, 16, 0))
    job = replace(
        summary_job(), ready=lambda: "the broker is down", ready_wait=timedelta(minutes=5)
    )
    process = Process(database, clock, job)
    processes.append(process)
    clock.set(et(DAY, 16, 31))
    wait_until(
        lambda: (s := process.status.get("daily_summary")) is not None and s.waiting is not None,
        message="the summary to wait",
    )
    assert process.seen == []
    clock.set(et(DAY, 16, 36))
    wait_until(lambda: process.last_status() == "ok", message="the summary after the wait")
    assert process.seen == ["2026-03-10"]


def test_a_scheduler_that_stopped_advancing_fails_health(
    database: Database, processes: list[Process]
) -> None:
    """A next run left more than its grace in the past (scheduler stuck) fails the check."""
    clock = WallClock(et(DAY, 16, 0))
    process = Process(database, clock, summary_job())
    processes.append(process)
    wait_until(lambda: process.status.started)
    process.tree.stop()  # nothing advances the schedule any more
    clock.set(et(DAY, 19, 0))
    status, output = process.health()
    assert status == "fail"
    assert "not running it" in (output or "")


def test_metrics_show_runs_and_the_next_run(database: Database, processes: list[Process]) -> None:
    """/metrics carries each job's runs by outcome, its last duration and next run time."""
    clock = WallClock(et(DAY, 17, 0))
    process = Process(database, clock, summary_job())
    processes.append(process)
    wait_until(lambda: process.last_status() == "ok")
    wait_until(process.idle)
    families = {f.name: f for f in SchedulerCollector(process.status).collect()}
    runs = {
        tuple(s.labels.values()): s.value
        for s in families["tradingbot_scheduler_job_runs"].samples
        if s.name.endswith("_total")
    }
    assert runs[("daily_summary", "ok")] == 1.0
    [upcoming] = families["tradingbot_scheduler_job_next_run_timestamp_seconds"].samples
    assert upcoming.value == et(date(2026, 3, 11), 16, 30).timestamp()


def test_a_slot_has_its_trading_date_and_key() -> None:
    """The daily summary slot of a date is keyed by that date (the durable key)."""
    slot = Slot(et(DAY, 16, 30).astimezone(UTC), "daily_summary", DAY, DAY.isoformat())
    assert slot.key == "2026-03-10"
