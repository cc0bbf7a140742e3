"""Supervision events (crash, restart, escalation...) recorded as SYSTEM events."""

from __future__ import annotations

import threading

from tradingbot.events.model import SYSTEM, Severity
from tradingbot.events.recorder import EventRecorder
from tradingbot.supervision import SupervisionEvent

_SEVERITY = {
    "debug": Severity.DEBUG,
    "info": Severity.INFO,
    "warning": Severity.WARNING,
    "error": Severity.ERROR,
    "critical": Severity.CRITICAL,
}


class SystemEventRecorder:
    """A tree listener: each supervision event becomes a SYSTEM event (already logged).

    Recording is a tell to the event logger; once the event logger has stopped, that tell
    is dropped, and the drop is itself a supervision event. A thread-local guard keeps
    that from recursing: an event emitted while this thread is recording one is left to
    the log line the tree already wrote.
    """

    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder.bind(source="supervision")
        self._active = threading.local()

    def __call__(self, event: SupervisionEvent) -> None:
        if getattr(self._active, "recording", False):
            return
        self._active.recording = True
        try:
            self._record(event)
        finally:
            self._active.recording = False

    def _record(self, event: SupervisionEvent) -> None:
        fields = event.fields()
        failure = fields.get("failure")
        detail = f": {failure['type']}: {failure['message']}" if failure else ""
        self._recorder.record(
            SYSTEM,
            f"{event.name} {event.actor}{detail}",
            severity=_SEVERITY[event.level],
            source=event.actor,
            context={"event": event.name, **fields},
            log_line=False,  # the tree's log listener already wrote the line
        )
