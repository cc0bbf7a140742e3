"""Crash recovery: the run lock, crash detection at start, and the external watchdog check.

- :mod:`~tradingbot.recovery.runlock`: one ``trading-bot run`` per database and account.
- :mod:`~tradingbot.recovery.crash`: earlier runs that died, recorded and reported once.
- :mod:`~tradingbot.recovery.watchdog`: ``trading-bot watchdog-check`` (for a timer).
"""

from tradingbot.recovery.crash import CrashReport, detect_crashes, process_is_gone, report_crash
from tradingbot.recovery.runlock import (
    AlreadyRunning,
    LockHolder,
    RunLock,
    RunLockLost,
    RunLockMonitor,
    acquire_run_lock,
    probe_run_lock,
    run_lock_key,
)

__all__ = [
    "AlreadyRunning",
    "CrashReport",
    "LockHolder",
    "RunLock",
    "RunLockLost",
    "RunLockMonitor",
    "acquire_run_lock",
    "detect_crashes",
    "probe_run_lock",
    "process_is_gone",
    "report_crash",
    "run_lock_key",
]
