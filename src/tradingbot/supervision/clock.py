"""Time for the supervision library: a monotonic clock plus one-shot timers.

Restart intensity, backoff and liveness deadlines all read the clock through the
:class:`Clock` protocol so tests can drive time by hand with :class:`ManualClock`
instead of sleeping. :class:`SystemClock` runs every timer callback on one daemon
thread; callbacks must be quick (they only ``tell`` an actor).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class Timer(Protocol):
    """A scheduled callback that can be cancelled (cancelling twice is harmless)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """A monotonic time source that can run a callback later."""

    def monotonic(self) -> float: ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer: ...


class _Entry:
    __slots__ = ("callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _TimerHeap:
    """Due-ordered timers shared by both clocks."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()

    def push(self, entry: _Entry) -> None:
        heapq.heappush(self._heap, (entry.due, next(self._seq), entry))

    def pop_due(self, now: float) -> _Entry | None:
        while self._heap:
            due, _, entry = self._heap[0]
            if entry.cancelled:
                heapq.heappop(self._heap)
                continue
            if due > now:
                return None
            heapq.heappop(self._heap)
            return entry
        return None

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None


def _run(entry: _Entry) -> None:
    try:
        entry.callback()
    except Exception:  # a timer callback must never kill the timer thread
        log.exception("timer_callback_failed", callback=repr(entry.callback))


class SystemClock:
    """Real time: ``time.monotonic`` and a single daemon timer thread."""

    def __init__(self) -> None:
        self._timers = _TimerHeap()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        entry = _Entry(time.monotonic() + max(0.0, delay_s), callback)
        with self._cond:
            self._timers.push(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="supervision-clock", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return entry

    def _loop(self) -> None:
        while True:
            with self._cond:
                entry = self._timers.pop_due(time.monotonic())
                if entry is None:
                    due = self._timers.next_due()
                    wait = None if due is None else max(0.0, due - time.monotonic())
                    self._cond.wait(wait)
                    continue
            _run(entry)


class ManualClock:
    """Time that moves only when a test calls :meth:`advance`; callbacks run in that call."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers = _TimerHeap()
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        entry = _Entry(self.monotonic() + max(0.0, delay_s), callback)
        with self._lock:
            self._timers.push(entry)
        return entry

    def advance(self, seconds: float) -> None:
        """Move time forward, running every callback that falls due, in due order."""
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                entry = self._timers.pop_due(target)
                if entry is None:
                    self._now = target
                    return
                self._now = max(self._now, entry.due)
            _run(entry)

    def pending(self) -> list[float]:
        """Due times of the timers not yet run or cancelled (for assertions)."""
        with self._lock:
            return sorted(due for due, _, e in self._timers._heap if not e.cancelled)


def call_every(clock: Clock, interval_s: float, callback: Callable[[], None]) -> Timer:
    """Run ``callback`` every ``interval_s`` until the returned timer is cancelled."""
    return _Repeating(clock, interval_s, callback)


class _Repeating:
    def __init__(self, clock: Clock, interval_s: float, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._interval_s = interval_s
        self._callback = callback
        self._lock = threading.Lock()
        self._cancelled = False
        self._timer: Timer = clock.call_later(interval_s, self._fire)

    def _fire(self) -> None:
        with self._lock:
            if self._cancelled:
                return
        try:
            self._callback()
        finally:
            with self._lock:
                if not self._cancelled:
                    self._timer = self._clock.call_later(self._interval_s, self._fire)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            self._timer.cancel()
