"""The scheduler actor: runs each job once per slot, by the exchange calendar.

Every ``tick_s`` it compares the wall clock (injectable: tests and the documented
``TRADINGBOT_SCHEDULER_CLOCK`` setting move it) with each job's next slot. A slot that
came due is *claimed* in ``job_runs`` before anything runs, so it runs at most once
across restarts, crashes and processes sharing the database; then the job's message is
asked of its actor (addressed by name) on a short-lived worker thread, so a long job
never stops this actor answering liveness probes, and the result is stored.

At start, each job's latest slot still within its grace window runs once (a missed
run); older missed slots are reported, not run (``run JOB DATE`` runs them by hand).
A slot that comes due while the process runs and is not claimed within its grace
window (database down all that time) is *overdue*: ``/api/health/scheduler`` fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, overload

import structlog

from tradingbot.scheduler.calendar import TradingCalendar
from tradingbot.scheduler.jobs import Job, Slot, last_slot, next_slot, slot_for
from tradingbot.scheduler.status import JobState, SchedulerStatus
from tradingbot.storage import Database, JobRunRecord, StorageError
from tradingbot.supervision import ActorHandle, SupervisedActor

log = structlog.get_logger(__name__)

SCHEDULE = "schedule"
MISSED = "missed"
MANUAL = "manual"
RUNNING = "running"
REREAD_S = 2.0  # how often a run held by another process is re-read


def _utcnow() -> datetime:
    return datetime.now(UTC)


def shifted_clock(start: datetime | None) -> Callable[[], datetime]:
    """The scheduler's wall clock: real time, or real time shifted to begin at ``start``
    (``TRADINGBOT_SCHEDULER_CLOCK``, a test and rehearsal setting)."""
    if start is None:
        return _utcnow
    offset = start - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerSettings:
    """Who this process is (``owner`` of its claims) and how often the clock is read."""

    owner: str
    tick_s: float = 0.25
    # Runs found crashed at this start: their ``running`` claims are abandoned at once
    # (whatever their age), so a job cut off by kill -9 can be retried.
    dead_owners: tuple[str, ...] = ()
    # The account this process trades: two accounts sharing a database each run their
    # own jobs (their claim keys differ: ``2026-03-10@DU123``; the default account has
    # the bare date).
    account: str = ""


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: run what came due."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunJob:
    """Command: run ``name`` now for ``day`` (default: its latest slot).

    Idempotent by key: a slot that ran successfully is not run again; a failed or
    abandoned one is retried. Answers at once with a future of :class:`RunResult`.
    """

    name: str
    day: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What ``run JOB [DATE]`` did: ``ran`` False means the slot was already claimed."""

    job: str
    key: str
    ran: bool
    record: JobRunRecord | None

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "job": self.job,
            "key": self.key,
            "ran": self.ran,
            "status": None if r is None else r.status,
            "outcome": None if r is None else r.outcome,
            "duration_s": None if r is None else r.duration_s,
            "started_at": None if r is None else r.started_at.isoformat(),
            "owner": None if r is None else r.owner,
        }


class UnknownJob(KeyError):
    """No job of that name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class _Finished:
    slot: Slot
    record: JobRunRecord | None
    ok: bool
    reply: Future[RunResult] | None = field(default=None, compare=False)


class SchedulerActor(SupervisedActor):
    """Fires :class:`Job` slots on the trading calendar; see the module docstring."""

    def __init__(
        self,
        jobs: Sequence[Job],
        database: Database,
        calendar: TradingCalendar,
        status: SchedulerStatus,
        settings: SchedulerSettings,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__()
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self._jobs = {job.name: job for job in jobs}
        self._db = database
        self._calendar = calendar
        self._status = status
        self._settings = settings
        self._last_tick_s = 0.0  # time.monotonic() of the last tick handled
        self._now = now
        self._pending: dict[str, Slot] = {}
        self._running: set[str] = set()
        self._reread_at: dict[str, float] = {}
        self._started_at = now()

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        now = self._now()
        self._started_at = now
        self._status.register(self._jobs.values())
        longest = max((job.timeout_s for job in self._jobs.values()), default=0.0)
        try:
            abandoned = self._db.job_runs.abandon_stale(
                started_before=now - timedelta(seconds=longest + 60.0),
                at=now,
                except_owner=self._settings.owner,
            )
            for owner in self._settings.dead_owners:
                abandoned += self._db.job_runs.abandon_stale(
                    started_before=now + timedelta(days=1),
                    at=now,
                    except_owner=self._settings.owner,
                    owner=owner,
                )
            if abandoned:
                log.warning("job_runs_abandoned", count=abandoned)
            latest = self._db.job_runs.latest()
        except StorageError as exc:
            log.warning("job_runs_unreadable", error=str(exc))
            latest = {}
        for job in self._jobs.values():
            self._status.update(job.name, last=latest.get(job.name), next=self._next(job, now))
            due = self._own(last_slot(job, now, self._calendar))
            if due is None:
                continue
            done = latest.get(job.name)
            if done is not None and done.run_key == due.key:
                continue
            if now - due.at <= job.grace:
                self._pending[job.name] = due  # a missed run, within grace: once, now
            elif done is not None:  # a job that never ran (a first start) missed nothing
                self._missed(job, due, now)
        self._last_tick_s = time.monotonic()
        self.every(self._settings.tick_s, _Tick())
        self._tick()

    # -- messages -------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case _Tick():
                # Ticks queued while one was slow (a stalled database) are dropped, so
                # the inbox never grows and a liveness ping is never stuck behind them.
                now = time.monotonic()
                if now - self._last_tick_s >= self._settings.tick_s / 2:
                    self._last_tick_s = now
                    self._tick()
            case _Finished():
                self._finished(message)
            case RunJob(name=name, day=day):
                return self._run_by_hand(name, day)
            case _:
                return super().on_receive(message)
        return None

    # -- the schedule ---------------------------------------------------------------------

    def _next(self, job: Job, after: datetime) -> Slot:
        return self._own(next_slot(job, after, self._calendar))

    @overload
    def _own(self, slot: Slot) -> Slot: ...
    @overload
    def _own(self, slot: None) -> None: ...
    def _own(self, slot: Slot | None) -> Slot | None:
        """``slot`` with this account's claim key (unchanged for the default account)."""
        if slot is None or not self._settings.account:
            return slot
        return replace(slot, key=f"{slot.key}@{self._settings.account}")

    def _tick(self) -> None:
        now = self._now()
        for job in self._jobs.values():
            state = self._status.get(job.name)
            assert state is not None
            upcoming = state.next
            while upcoming is not None and upcoming.at <= now:
                self._pending[job.name] = upcoming  # the latest due slot wins
                upcoming = self._next(job, upcoming.at)
            if upcoming is not state.next:
                self._status.update(job.name, next=upcoming)
            self._follow_other_owner(job, state)
            pending = self._pending.get(job.name)
            if pending is None or job.name in self._running:
                continue
            if now - pending.at > job.grace:
                del self._pending[job.name]
                if pending.at >= self._started_at:
                    log.error("job_overdue", job=job.name, key=pending.key)
                    self._status.update(job.name, overdue=pending)
                else:
                    self._missed(job, pending, now)
                continue
            if self._waits(job, pending, state, now):
                continue
            trigger = SCHEDULE if pending.at >= self._started_at else MISSED
            self._start(job, pending, trigger, now)

    def _waits(self, job: Job, slot: Slot, state: JobState, now: datetime) -> bool:
        """Whether a due ``slot`` must wait for ``job.ready`` (at most ``job.ready_wait``)."""
        try:
            reason = job.ready()
        except Exception as exc:  # noqa: BLE001 - a failing readiness check must not stop it
            reason = None
            log.warning(
                "job_ready_check_failed", job=job.name, error=f"{type(exc).__name__}: {exc}"
            )
        if reason is not None and now - max(slot.at, self._started_at) < job.ready_wait:
            if state.waiting != reason:
                log.info("job_waiting", job=job.name, key=slot.key, reason=reason)
                self._status.update(job.name, waiting=reason)
            return True
        if reason is not None:
            log.warning(
                "job_ran_without_waiting_longer",
                job=job.name,
                key=slot.key,
                reason=reason,
                waited_s=job.ready_wait.total_seconds(),
            )
        if state.waiting is not None:
            self._status.update(job.name, waiting=None)
        return False

    def _follow_other_owner(self, job: Job, state: JobState) -> None:
        """Re-read a run another process holds (every few seconds) until it finishes."""
        last = state.last
        if last is None or last.status != RUNNING or last.owner == self._settings.owner:
            return
        clock = self.clock.monotonic()
        if clock < self._reread_at.get(job.name, 0.0):
            return
        self._reread_at[job.name] = clock + REREAD_S
        try:
            record = self._db.job_runs.get(job.name, last.run_key)
        except StorageError:
            return
        if record is not None and record != last:
            self._status.update(job.name, last=record)

    def _missed(self, job: Job, slot: Slot, now: datetime) -> None:
        log.warning(
            "job_missed",
            job=job.name,
            key=slot.key,
            due=slot.at.isoformat(),
            late_s=round((now - slot.at).total_seconds()),
            hint=f"run it by hand: trading-bot shell -c 'run {job.name} {slot.key}'",
        )
        state = self._status.get(job.name)
        assert state is not None
        self._status.update(job.name, missed=(*state.missed, slot)[-10:])

    def _start(
        self,
        job: Job,
        slot: Slot,
        trigger: str,
        now: datetime,
        *,
        retry: bool = False,
        reply: Future[RunResult] | None = None,
    ) -> bool:
        """Claim ``slot`` and run it on a worker thread; False if it was claimed already."""
        try:
            target = None if job.work is not None else self.peer(job.actor)
        except KeyError:
            log.error("job_actor_unknown", job=job.name, actor=job.actor)
            if reply is not None:
                reply.set_exception(
                    RuntimeError(
                        f"job {job.name!r} cannot run: its actor {job.actor!r} is not running"
                    )
                )
            self._pending.pop(job.name, None)
            return False
        try:
            claim = self._db.job_runs.claim(
                job=job.name,
                run_key=slot.key,
                trading_date=slot.trading_date,
                scheduled_at=slot.at,
                owner=self._settings.owner,
                trigger=trigger,
                at=now,
                retry=retry,
            )
        except StorageError as exc:
            # Not claimed, not run: the next tick tries again, until the grace ends.
            log.warning("job_claim_failed", job=job.name, key=slot.key, error=str(exc))
            if reply is not None:
                reply.set_exception(exc)
            return False
        if self._pending.get(job.name) == slot:
            del self._pending[job.name]
        if claim is None:
            log.info("job_already_claimed", job=job.name, key=slot.key)
            self._refresh_last(job.name, slot)
            if reply is not None:
                reply.set_result(
                    RunResult(job=job.name, key=slot.key, ran=False, record=self._record(job, slot))
                )
            return False
        log.info("job_started", job=job.name, key=slot.key, trigger=trigger)
        self._running.add(job.name)
        self._status.update(job.name, running=slot, last=claim, overdue=None)
        worker = threading.Thread(
            target=_execute,
            args=(job, slot, target, self._db, self._settings.owner, self._now),
            kwargs={"done": self.context.handle, "reply": reply},
            name=f"job-{job.name}",
            daemon=True,
        )
        worker.start()
        return True

    def _record(self, job: Job, slot: Slot) -> JobRunRecord | None:
        try:
            return self._db.job_runs.get(job.name, slot.key)
        except StorageError:
            return None

    def _refresh_last(self, name: str, slot: Slot) -> None:
        record = self._record(self._jobs[name], slot)
        if record is not None:
            self._status.update(name, last=record, overdue=None)

    def _finished(self, message: _Finished) -> None:
        name = message.slot.job
        self._running.discard(name)
        outcome = "ok" if message.ok else "failed"
        self._status.counted(name, outcome)
        changes: dict[str, Any] = {"running": None}
        if message.record is not None:
            changes["last"] = message.record
        if message.ok:
            state = self._status.get(name)
            assert state is not None
            changes["missed"] = tuple(s for s in state.missed if s.key != message.slot.key)
        self._status.update(name, **changes)
        if message.reply is not None and not message.reply.done():
            message.reply.set_result(
                RunResult(job=name, key=message.slot.key, ran=True, record=message.record)
            )

    def _run_by_hand(self, name: str, day: date | None) -> Future[RunResult]:
        reply: Future[RunResult] = Future()
        job = self._jobs.get(name)
        if job is None:
            known = ", ".join(sorted(self._jobs))
            reply.set_exception(UnknownJob(f"no job {name!r}; the jobs are: {known}"))
            return reply
        now = self._now()
        try:
            if day is None:
                slot = self._own(last_slot(job, now, self._calendar))
                if slot is None:
                    raise ValueError(f"job {name!r} has no slot yet")
            else:
                slot = self._own(slot_for(job, day, self._calendar))
        except ValueError as exc:
            reply.set_exception(exc)
            return reply
        if name in self._running:
            reply.set_exception(RuntimeError(f"job {name!r} is running now; try again later"))
            return reply
        self._start(job, slot, MANUAL, now, retry=True, reply=reply)
        return reply


def _execute(
    job: Job,
    slot: Slot,
    target: ActorHandle | None,
    database: Database,
    owner: str,
    now: Callable[[], datetime],
    *,
    done: ActorHandle,
    reply: Future[RunResult] | None,
) -> None:
    """Worker thread: ask the job's actor (or do its work), store the outcome, tell the
    scheduler."""
    started = time.perf_counter()
    try:
        if job.work is not None:
            result = job.work(slot)
        else:
            assert target is not None
            result = target.ask(job.message(slot), job.timeout_s)
    except Exception as exc:  # noqa: BLE001 - a job's failure is its outcome, stored
        ok, outcome = False, f"{type(exc).__name__}: {exc}"
        log.error("job_failed", job=job.name, key=slot.key, error=outcome)
    else:
        ok, outcome = True, job.outcome(result)
        log.info(
            "job_finished",
            job=job.name,
            key=slot.key,
            outcome=outcome,
            duration_s=round(time.perf_counter() - started, 3),
        )
    record: JobRunRecord | None = None
    try:
        record = database.job_runs.finish(
            job=job.name, run_key=slot.key, owner=owner, ok=ok, at=now(), outcome=outcome
        )
    except StorageError as exc:
        log.error("job_result_not_stored", job=job.name, key=slot.key, error=str(exc))
    done.tell(_Finished(slot=slot, record=record, ok=ok, reply=reply))
