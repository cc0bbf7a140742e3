"""The latest health report, shared between the health actor and the HTTP handlers.

Handlers read it directly — no actor round trip, no database query — so a flood of
health requests costs nothing but JSON encoding. A report older than ``stale_after_s``
means the health actor itself stopped refreshing, which handlers report as a failure.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from tradingbot.health.model import HealthReport


class HealthState:
    """Thread-safe holder of the latest :class:`HealthReport`."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._report: HealthReport | None = None

    @property
    def stale_after_s(self) -> float:
        return max(3 * self.interval_s, self.interval_s + 10.0)

    def publish(self, report: HealthReport) -> None:
        with self._lock:
            self._report = report

    def latest(self) -> HealthReport | None:
        with self._lock:
            return self._report

    def age_s(self, report: HealthReport) -> float:
        return (datetime.now(UTC) - report.generated_at).total_seconds()
