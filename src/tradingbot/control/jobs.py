"""Shell commands of the scheduler: ``jobs`` (list) and ``run JOB [DATE]`` (run now).

:mod:`tradingbot.control.commands` registers them in its command table (this module
does not import it: no import cycle).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from tradingbot.control.server import CommandError, CommandResult
from tradingbot.scheduler import EXCHANGE_TZ
from tradingbot.scheduler.actor import RunJob, RunResult, UnknownJob
from tradingbot.storage import StorageError
from tradingbot.supervision import SupervisionError

if TYPE_CHECKING:
    from tradingbot.control.commands import RuntimeCommands

ASK_TIMEOUT_S = 10.0
JOBS_USAGE = "jobs"
RUN_USAGE = "run JOB [YYYY-MM-DD]"


async def jobs(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    """``jobs``: every scheduled job with its schedule, next run and last run."""
    if args:
        raise CommandError(f"usage: {JOBS_USAGE}")
    states = [state.to_dict() for state in ctx.scheduler_status.snapshot()]
    return CommandResult(result=states, text=_render_jobs(states))


async def run(ctx: RuntimeCommands, args: list[str]) -> CommandResult:
    """``run JOB [DATE]``: run a job now for a date and wait for its outcome."""
    if not 1 <= len(args) <= 2:
        raise CommandError(f"usage: {RUN_USAGE}")
    day: date | None = None
    if len(args) == 2:
        try:
            day = date.fromisoformat(args[1])
        except ValueError:
            raise CommandError(f"not a date like 2026-03-10: {args[1]!r}") from None
    if "scheduler" not in ctx.tree.actor_ids():
        raise CommandError("the scheduler is not running")
    state = ctx.scheduler_status.get(args[0])
    if state is None:
        known = ", ".join(s.job.name for s in ctx.scheduler_status.snapshot())
        raise CommandError(f"no job {args[0]!r}; the jobs are: {known}")
    handle = ctx.tree.handle("scheduler")
    try:
        future = await asyncio.to_thread(handle.ask, RunJob(name=args[0], day=day), ASK_TIMEOUT_S)
        result: RunResult = await asyncio.wait_for(
            asyncio.wrap_future(future), state.job.timeout_s + ASK_TIMEOUT_S
        )
    except TimeoutError:
        raise CommandError(f"job {args[0]!r} is still running; see 'jobs'") from None
    except (ValueError, RuntimeError, UnknownJob, StorageError, SupervisionError) as exc:
        raise CommandError(str(exc)) from None
    data = result.to_dict()
    if result.ran:
        text = f"{result.job} {result.key}: {data['status']} ({data['outcome']})"
    else:
        text = (
            f"{result.job} {result.key} was already run ({data['status']}, "
            f"{data['started_at']}): not run again"
        )
    return CommandResult(result=data, text=text)


def _render_jobs(states: list[dict[str, Any]]) -> str:
    lines = []
    for s in states:
        last = s["last_run"]
        last_text = (
            "never"
            if last is None
            else f"{last['key']} {last['status']} ({last['outcome'] or ''})".rstrip(" ()")
        )
        next_run = s["next_run"]
        if next_run is not None:
            next_run = (
                datetime.fromisoformat(next_run)
                .astimezone(EXCHANGE_TZ)
                .strftime("%Y-%m-%d %H:%M %Z")
            )
        lines.append(f"{s['job']:<16} {s['schedule']:<32} next {next_run}  last {last_text}")
        for key in s["missed"]:
            lines.append(f"  ! missed {key} while down: run {s['job']} {key}")
        if s.get("waiting"):
            lines.append(f"  … waiting: {s['waiting']}")
        if s["overdue"]:
            lines.append(f"  ! overdue {s['overdue']}: did not run within its grace window")
    return "\n".join(lines) or "no jobs"
