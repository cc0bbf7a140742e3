"""The timing of the IB Gateway's daily restart, as a pure phase machine (no I/O, no clock).

IB Gateway restarts once a day. Around the configured window
(``TRADINGBOT_IB_RESTART_WINDOW``) the bot goes through these phases::

    open ──(pause_at = start - lead)──> paused ──(start)──> window ──(end)──> resuming
      ^                                                                         │
      └─────────────── ready: broker synced and reconciled after it ────────────┤
                                                                   (deadline = end + grace)
                                                                                v
                                                                             overdue

New orders are refused from ``paused`` until ``open`` again. ``ready`` is decided by the
caller (:mod:`tradingbot.trading.restart_guard`): the broker synced again and a
reconciliation that started after the reconnect passed. ``overdue`` is the missed
deadline (a CRITICAL alert); it still ends when ready. :class:`RestartTracker` is driven
by whatever clock its caller reads, so tests move it by hand.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradingbot.config.window import DailyWindow


class Phase(enum.StrEnum):
    OPEN = "open"  # no window near: orders flow (other gates permitting)
    PAUSED = "paused"  # the lead before the window: new orders refused
    WINDOW = "window"  # the gateway may restart now
    RESUMING = "resuming"  # the window ended: waiting for sync and reconciliation
    OVERDUE = "overdue"  # still not back after the grace: CRITICAL

    @property
    def gated(self) -> bool:
        """Are new orders refused in this phase?"""
        return self is not Phase.OPEN


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowTimes:
    """One day's window as UTC instants: pause, start, end, and the resume deadline."""

    pause_at: datetime
    start: datetime
    end: datetime
    deadline: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "pause_at": self.pause_at.isoformat(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "deadline": self.deadline.isoformat(),
        }


class RestartPlan:
    """A daily window with its lead and grace: which day's window matters at an instant."""

    def __init__(self, window: DailyWindow, *, lead_s: float, grace_s: float) -> None:
        self.window = window
        self.lead = timedelta(seconds=lead_s)
        self.grace = timedelta(seconds=grace_s)

    def times(self, after: datetime) -> WindowTimes:
        """The first window whose deadline is after ``after``: the one in progress (its
        pause, window or grace contains ``after``), else the next one."""
        day = self.window.local_date(after) - timedelta(days=2)
        while True:
            start, end = self.window.occurrence(day)
            times = WindowTimes(
                pause_at=start - self.lead, start=start, end=end, deadline=end + self.grace
            )
            if times.deadline > after:
                return times
            day += timedelta(days=1)


class RestartTracker:
    """The current phase and window; :meth:`step` moves it on (not thread-safe: one owner)."""

    def __init__(self, plan: RestartPlan) -> None:
        self.plan = plan
        self.phase = Phase.OPEN
        self.times: WindowTimes | None = None  # the window in progress, or the next one
        self._done: datetime | None = None  # the deadline of the last window resumed from

    def step(self, now: datetime, ready: Callable[[WindowTimes], bool]) -> list[Phase]:
        """Advance to ``now``; return the phases entered, in order (usually none).

        ``ready(times)`` answers whether trading may resume after that window; it is asked
        only once the window has ended.
        """
        return [phase for phase, _ in self.advance(now, ready)]

    def advance(
        self, now: datetime, ready: Callable[[WindowTimes], bool]
    ) -> list[tuple[Phase, WindowTimes]]:
        """:meth:`step`, with the window each phase was entered for (``open``: the window
        just resumed from)."""
        entered: list[tuple[Phase, WindowTimes]] = []
        while (phase := self._next(now, ready)) is not None:
            self.phase = phase
            assert self.times is not None
            entered.append((phase, self.times))
        return entered

    def _next(self, now: datetime, ready: Callable[[WindowTimes], bool]) -> Phase | None:
        if self.phase is Phase.OPEN:
            after = now if self._done is None else max(now, self._done)
            times = self.times = self.plan.times(after)
            if now < times.pause_at:
                return None
            if now < times.start:
                return Phase.PAUSED
            return Phase.WINDOW if now < times.end else Phase.RESUMING
        current = self.times
        assert current is not None
        return self._later(now, current, ready)

    def _later(
        self, now: datetime, times: WindowTimes, ready: Callable[[WindowTimes], bool]
    ) -> Phase | None:
        if self.phase is Phase.PAUSED:
            return Phase.WINDOW if now >= times.start else None
        if self.phase is Phase.WINDOW:
            return Phase.RESUMING if now >= times.end else None
        if ready(times):
            self._done = times.deadline
            return Phase.OPEN
        if self.phase is Phase.RESUMING and now >= times.deadline:
            return Phase.OVERDUE
        return None
