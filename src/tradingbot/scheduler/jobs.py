"""Jobs as data, and when each one runs.

A :class:`Job` names a rule (:class:`At` a wall-clock time in the exchange's zone, or
:class:`AfterClose` an offset from the session's close, or :class:`Every` an interval),
the days it applies to (:data:`SESSIONS` or :data:`EVERY_DAY`), the action (a message
for an actor, addressed by name; or ``work`` run on the job's own thread, for a job that
waits on the gateway and must not hold an actor's thread for minutes) and a grace
window. Each firing is a :class:`Slot` whose ``key`` (the job plus the trading date, or
the slot's instant for interval jobs) is what the durable ``job_runs`` table makes
unique: a slot runs at most once.

Wall-clock rules are built with ``zoneinfo`` from the local date and time, so a 16:30
job fires at 16:30 New York time on both sides of a DST switch. A time that does not
exist on a spring-forward day (02:30) fires at the instant it would have been in the
old offset (03:30 EDT); an ambiguous autumn time fires at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from tradingbot.scheduler.calendar import EXCHANGE_TZ, TradingCalendar

Days = Literal["sessions", "every_day"]
SESSIONS: Days = "sessions"
EVERY_DAY: Days = "every_day"
LOOKAROUND_DAYS = 16  # longer than any run of NYSE closures (the 2001 and 1933 ones aside)


@dataclass(frozen=True, slots=True)
class At:
    """At a wall-clock time in the exchange's zone (``America/New_York``)."""

    local: time

    def describe(self) -> str:
        return f"{self.local.strftime('%H:%M')} ET"


@dataclass(frozen=True, slots=True)
class AfterClose:
    """At the session's close plus ``offset`` (follows 13:00 ET early closes)."""

    offset: timedelta

    def describe(self) -> str:
        return f"close + {int(self.offset.total_seconds() // 60)} min"


@dataclass(frozen=True, slots=True)
class Every:
    """Every ``interval`` from local midnight, on the job's days."""

    interval: timedelta

    def __post_init__(self) -> None:
        if self.interval < timedelta(minutes=1) or timedelta(days=1) % self.interval:
            raise ValueError("an interval must be at least a minute and divide a day evenly")

    def describe(self) -> str:
        return f"every {int(self.interval.total_seconds() // 60)} min"


Rule = At | AfterClose | Every


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One scheduled job. ``message(slot)`` builds what ``actor`` is asked to do; a job
    without an actor runs ``work(slot)`` on its own thread instead. ``timeout_s`` bounds
    an actor's answer; ``work`` must bound its own waits and finish within it (a claim
    still running ``timeout_s`` + 60 s after it started may be taken for abandoned by a
    process starting on the same database)."""

    name: str
    rule: Rule
    days: Days = SESSIONS
    actor: str = ""
    message: Callable[[Slot], Any] = field(default=lambda slot: None, compare=False)
    work: Callable[[Slot], Any] | None = field(default=None, compare=False)
    grace: timedelta = timedelta(hours=2)
    timeout_s: float = 300.0
    description: str = ""
    outcome: Callable[[Any], str] = field(default=lambda result: _outcome(result), compare=False)
    # Why a due slot must wait (None: it may run). A slot waits at most ``ready_wait``
    # after it came due (or after the start, for a missed one), then runs anyway.
    ready: Callable[[], str | None] = field(default=lambda: None, compare=False)
    ready_wait: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if isinstance(self.rule, AfterClose) and self.days != SESSIONS:
            raise ValueError(f"job {self.name!r}: a close-relative rule needs days=sessions")
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"job name {self.name!r}: letters, digits and _ only")
        if bool(self.actor) == (self.work is not None):
            raise ValueError(f"job {self.name!r}: give either an actor or work, not both")

    def describe(self) -> str:
        days = "trading sessions" if self.days == SESSIONS else "every day"
        return f"{self.rule.describe()}, {days}"


def _outcome(result: Any) -> str:
    """A run's outcome line from the actor's answer (long answers are cut)."""
    text = "done" if result is None else str(result)
    return text if len(text) <= 500 else text[:497] + "..."


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    """One firing of a job: when (UTC), for which trading date, under which durable key."""

    at: datetime
    job: str
    trading_date: date
    key: str


def _slots_on(job: Job, day: date, calendar: TradingCalendar) -> list[Slot]:
    if job.days == SESSIONS and not calendar.is_session(day):
        return []
    rule = job.rule
    if isinstance(rule, At):
        at = datetime.combine(day, rule.local, tzinfo=EXCHANGE_TZ).astimezone(UTC)
        return [Slot(at, job.name, day, day.isoformat())]
    if isinstance(rule, AfterClose):
        at = calendar.close_at(day) + rule.offset
        return [Slot(at, job.name, day, day.isoformat())]
    slots: list[Slot] = []
    midnight = datetime.combine(day, time(0), tzinfo=EXCHANGE_TZ)
    step = rule.interval
    offset = timedelta(0)
    while offset < timedelta(days=1):
        local = midnight + offset  # wall-clock arithmetic: the same local times every day
        at = local.astimezone(UTC)
        offset += step
        if slots and at <= slots[-1].at:
            continue  # a spring-forward gap maps two local times to one instant
        slots.append(Slot(at, job.name, day, at.strftime("%Y-%m-%dT%H:%MZ")))
    return slots


def _local_day(instant: datetime) -> date:
    return instant.astimezone(EXCHANGE_TZ).date()


def slots_between(
    job: Job, start: datetime, end: datetime, calendar: TradingCalendar
) -> Iterator[Slot]:
    """The job's slots with ``start < at <= end``, in order."""
    day = _local_day(start) - timedelta(days=1)
    last = _local_day(end) + timedelta(days=1)
    while day <= last:
        for slot in _slots_on(job, day, calendar):
            if start < slot.at <= end:
                yield slot
        day += timedelta(days=1)


def next_slot(job: Job, after: datetime, calendar: TradingCalendar) -> Slot:
    """The job's first slot strictly after ``after``."""
    day = _local_day(after) - timedelta(days=1)
    for _ in range(LOOKAROUND_DAYS + 2):
        for slot in _slots_on(job, day, calendar):
            if slot.at > after:
                return slot
        day += timedelta(days=1)
    raise LookupError(f"job {job.name!r} has no slot within {LOOKAROUND_DAYS} days")


def last_slot(job: Job, now: datetime, calendar: TradingCalendar) -> Slot | None:
    """The job's latest slot at or before ``now`` (``None`` within the look-back)."""
    day = _local_day(now) + timedelta(days=1)
    for _ in range(LOOKAROUND_DAYS + 2):
        for slot in reversed(_slots_on(job, day, calendar)):
            if slot.at <= now:
                return slot
        day -= timedelta(days=1)
    return None


def slot_for(job: Job, day: date, calendar: TradingCalendar) -> Slot:
    """The slot of a daily job for trading date ``day`` (``run JOB DATE``).

    ``ValueError`` when the job does not run that day (a session job on a holiday) or
    is an interval job (which has many slots a day).
    """
    if isinstance(job.rule, Every):
        raise ValueError(f"job {job.name!r} runs every few minutes: it has no single slot a day")
    slots = _slots_on(job, day, calendar)
    if not slots:
        raise ValueError(f"job {job.name!r} does not run on {day.isoformat()} (not a session)")
    return slots[0]
