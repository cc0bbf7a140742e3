"""An in-memory stand-in for the event logger, for tests that need events but no database."""

from __future__ import annotations

import threading
from typing import Any

from tradingbot.events import Event
from tradingbot.events.recorder import RecordEvents


class MemorySink:
    """Stands in for the event logger: keeps events, acknowledges durable ones at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []

    def tell(self, message: Any) -> None:
        assert isinstance(message, RecordEvents)
        with self._lock:
            self.events.extend(message.events)
        if message.ack is not None:
            message.ack.set_result(None)

    def of_type(self, type_: str) -> list[Event]:
        """The events of ``type_`` kept so far, oldest first."""
        with self._lock:
            return [e for e in self.events if e.type == type_]
