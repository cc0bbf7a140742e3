"""The run lock's monitor, reporting what happens to the lock as SYSTEM events.

Losing the lock is an ERROR (an operator must look: another process may run next to
this one), holding it again a WARNING, and another process taking it a CRITICAL event
after which ``on_taken`` stops this process.
"""

from __future__ import annotations

from collections.abc import Callable

from tradingbot.events.model import SYSTEM, Severity
from tradingbot.events.recorder import EventRecorder
from tradingbot.recovery.runlock import LockHolder, RunLock, RunLockMonitor

SOURCE = "run_lock"


def watch_run_lock(
    lock: RunLock,
    interval_s: float,
    recorder: Callable[[], EventRecorder | None],
    on_taken: Callable[[], None],
) -> RunLockMonitor:
    """Start the monitor of ``lock``; its findings become events through ``recorder()``."""

    def record(severity: Severity, message: str, **context: object) -> None:
        target = recorder()
        if target is not None:
            target.record(SYSTEM, message, severity=severity, source=SOURCE, context=context)

    def lost(reason: str) -> None:
        record(
            Severity.ERROR,
            f"run lock lost: {reason}",
            event="run_lock_lost",
            lock=lock.description,
        )

    def regained() -> None:
        record(
            Severity.WARNING,
            f"run lock held again: {lock.description}",
            event="run_lock_regained",
            lock=lock.description,
        )

    def taken(holder: LockHolder | None) -> None:
        who = "another process" if holder is None else holder.describe()
        record(
            Severity.CRITICAL,
            f"run lock taken by {who} while this process had lost it; stopping",
            event="run_lock_taken",
            holder=who,
        )
        on_taken()

    return RunLockMonitor(
        lock, interval_s, on_lost=lost, on_regained=regained, on_taken=taken
    ).start()
