"""Clocks a test moves by hand, so that time-driven code runs without waiting."""

from __future__ import annotations

import threading
from datetime import datetime


class WallClock:
    """A wall clock the test moves by hand (read from any thread)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, at: datetime) -> None:
        """Move the clock to ``at``."""
        with self._lock:
            self._now = at
