"""``/api/health/scheduler``: one check per job, from the shared scheduler status.

``fail`` when a job is overdue past its grace window (it came due while the process
ran and was not run), or when its next run lies more than the grace window in the past
(the scheduler stopped advancing); ``warn`` when its last run failed or was abandoned,
or when a run was missed while the process was down; otherwise ``pass``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tradingbot.health.model import FAIL, PASS, WARN, Check, Status
from tradingbot.scheduler.status import JobState, SchedulerStatus


def _utcnow() -> datetime:
    return datetime.now(UTC)


def job_check(state: JobState, now: datetime) -> Check:
    """The check of one job at ``now``."""
    job = state.job
    status: Status = PASS
    output: str | None = None
    last = state.last
    if state.overdue is not None:
        status = FAIL
        output = (
            f"{job.name} for {state.overdue.key} did not run within its grace window "
            f"({job.grace}); run it with: run {job.name} {state.overdue.trading_date.isoformat()}"
        )
    elif state.next is not None and now - state.next.at > job.grace:
        status = FAIL
        output = (
            f"{job.name} was due at {state.next.at.isoformat()}: the scheduler is not running it"
        )
    elif last is not None and last.status in ("failed", "abandoned"):
        status = WARN
        output = f"{job.name} {last.run_key} {last.status}: {last.outcome}"
    elif state.missed:
        status = WARN
        keys = ", ".join(slot.key for slot in state.missed)
        output = f"{job.name} missed while the process was down ({keys}); run it by hand"
    return Check(
        component="scheduler",
        measurement="jobs",
        component_id=job.name,
        status=status,
        observed_value=state.to_dict(),
        output=output,
        time=now,
    )


def scheduler_check(
    status: SchedulerStatus, now: Callable[[], datetime] = _utcnow
) -> Callable[[], list[Check]]:
    """The check function the health actor runs."""

    def check() -> list[Check]:
        at = now()
        if not status.started:
            return [
                Check(
                    component="scheduler",
                    measurement="jobs",
                    status=WARN,
                    output="the scheduler has not started",
                    time=at,
                )
            ]
        return [job_check(state, at) for state in status.snapshot()]

    return check
