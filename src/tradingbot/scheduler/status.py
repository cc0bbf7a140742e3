"""What the scheduler knows, shared with health, the shell and ``/metrics``.

The scheduler actor writes a :class:`SchedulerStatus` as jobs come due and finish; the
health check, the ``jobs`` shell command and the Prometheus collector read its
snapshot from their own threads without sending the actor a message (a hung scheduler
still shows, as a next run left in the past).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradingbot.scheduler.jobs import Job, Slot
from tradingbot.storage import JobRunRecord


@dataclass(frozen=True, slots=True)
class JobState:
    """One job as the scheduler sees it now."""

    job: Job
    next: Slot | None = None
    last: JobRunRecord | None = None
    running: Slot | None = None
    overdue: Slot | None = None  # came due while we ran, not run within its grace
    missed: tuple[Slot, ...] = ()  # came due while the process was down, past grace
    waiting: str | None = None  # why a due slot waits (see ``Job.ready``)
    runs: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        last = self.last
        return {
            "job": self.job.name,
            "schedule": self.job.describe(),
            "actor": self.job.actor or "scheduler",  # work jobs run on its job thread
            "grace_s": self.job.grace.total_seconds(),
            "next_run": None if self.next is None else self.next.at.isoformat(),
            "next_key": None if self.next is None else self.next.key,
            "running": None if self.running is None else self.running.key,
            "last_run": None
            if last is None
            else {
                "key": last.run_key,
                "status": last.status,
                "trigger": last.trigger,
                "started_at": last.started_at.isoformat(),
                "finished_at": None if last.finished_at is None else last.finished_at.isoformat(),
                "duration_s": last.duration_s,
                "outcome": last.outcome,
                "attempts": last.attempts,
            },
            "overdue": None if self.overdue is None else self.overdue.key,
            "missed": [slot.key for slot in self.missed],
            "waiting": self.waiting,
        }


class SchedulerStatus:
    """Thread-safe per-job state; ``started`` is False until the actor first ran."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobState] = {}
        self.started = False

    def register(self, jobs: Iterable[Job]) -> None:
        with self._lock:
            for job in jobs:
                old = self._jobs.get(job.name)
                self._jobs[job.name] = JobState(job) if old is None else replace(old, job=job)
            self.started = True

    def update(self, name: str, **changes: Any) -> None:
        with self._lock:
            self._jobs[name] = replace(self._jobs[name], **changes)

    def counted(self, name: str, outcome: str) -> None:
        with self._lock:
            self._jobs[name].runs[outcome] += 1

    def get(self, name: str) -> JobState | None:
        with self._lock:
            return self._jobs.get(name)

    def snapshot(self) -> list[JobState]:
        with self._lock:
            return list(self._jobs.values())


class SchedulerCollector(Collector):
    """``tradingbot_scheduler_*``: runs by outcome, last duration, next run, overdue."""

    def __init__(self, status: SchedulerStatus) -> None:
        self._status = status

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        runs = CounterMetricFamily(
            "tradingbot_scheduler_job_runs",
            "Runs of each scheduled job started by this process, by outcome.",
            labels=["job", "outcome"],
        )
        duration = GaugeMetricFamily(
            "tradingbot_scheduler_job_last_duration_seconds",
            "How long each job's latest run took.",
            labels=["job"],
        )
        last = GaugeMetricFamily(
            "tradingbot_scheduler_job_last_run_timestamp_seconds",
            "When each job's latest run started (Unix time).",
            labels=["job"],
        )
        upcoming = GaugeMetricFamily(
            "tradingbot_scheduler_job_next_run_timestamp_seconds",
            "When each job runs next (Unix time).",
            labels=["job"],
        )
        overdue = GaugeMetricFamily(
            "tradingbot_scheduler_job_overdue",
            "1 when a job came due and did not run within its grace window.",
            labels=["job"],
        )
        for state in self._status.snapshot():
            name = state.job.name
            for outcome in ("ok", "failed"):
                runs.add_metric([name, outcome], float(state.runs[outcome]))
            if state.last is not None:
                last.add_metric([name], _ts(state.last.started_at))
                if state.last.duration_s is not None:
                    duration.add_metric([name], state.last.duration_s)
            if state.next is not None:
                upcoming.add_metric([name], _ts(state.next.at))
            overdue.add_metric([name], 0.0 if state.overdue is None else 1.0)
        return [runs, duration, last, upcoming, overdue]


def _ts(at: datetime) -> float:
    return at.timestamp()
