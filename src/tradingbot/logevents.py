"""The SYSTEM events that say the log file failed, or is written again (once per episode).

The log sink (:mod:`tradingbot.logsink`) calls its listener on each change of state; the
runtime turns that into an event here: WARNING ``log_file_failed`` (stored, mailed by the
routing rules like any WARNING), INFO ``log_file_recovered``.
"""

from __future__ import annotations

from tradingbot.events import Severity
from tradingbot.events.model import SYSTEM
from tradingbot.events.recorder import EventRecorder
from tradingbot.logsink import LogFileState

__all__ = ["LOG_SOURCE", "record_log_file_change"]

LOG_SOURCE = "logging"


def record_log_file_change(recorder: EventRecorder, state: LogFileState) -> None:
    """Record the SYSTEM event for ``state`` (never blocks: ``record`` is a tell)."""
    if state.ok:
        message = f"log file written again: {state.path}"
        severity, event = Severity.INFO, "log_file_recovered"
    else:
        message = (
            f"log file cannot be written: {state.error}; logging to stdout only and"
            " retrying the file with a backoff"
        )
        severity, event = Severity.WARNING, "log_file_failed"
    recorder.record(
        SYSTEM,
        message,
        severity=severity,
        source=LOG_SOURCE,
        context={"event": event, "path": str(state.path), "error": state.error},
    )
