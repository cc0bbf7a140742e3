"""The notifier's observable state: what health, metrics and the shell read.

:class:`NotifyStatus` is written by the notifier's sender and read from any thread
(outbox depth and age, SMTP server up or down, the last error); :class:`DeliveryReport`
is the outcome of one delivery pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryReport:
    """One delivery pass: how many were sent, rescheduled, failed, folded."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    folded: int = 0
    released: int = 0
    errors: tuple[str, ...] = ()


class NotifyStatus:
    """The notifier's state, thread-safe: written by the sender, read by health/metrics."""

    def __init__(self, mode: str = "eml") -> None:
        self._lock = threading.Lock()
        self.mode = mode
        self.pending = 0
        self.oldest_pending_at: datetime | None = None
        self.failed = 0
        self.sent_total = 0
        self.server_ok: bool | None = None  # None: nothing attempted yet
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.last_sent_at: datetime | None = None
        self.outbox_error: str | None = None  # the outbox itself could not be written
        self.unstored = 0  # notifications held in memory while the outbox is unwritable

    def update(self, **values: Any) -> None:
        with self._lock:
            for key, value in values.items():
                if not hasattr(self, key):
                    raise AttributeError(key)
                setattr(self, key, value)

    def add_sent(self, count: int, at: datetime) -> None:
        with self._lock:
            self.sent_total += count
            self.last_sent_at = at

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-able facts (the tree snapshot's details, the health check)."""
        at = now or _utcnow()
        with self._lock:
            oldest = self.oldest_pending_at
            age = 0.0 if oldest is None else max(0.0, (at - oldest).total_seconds())
            return {
                "mode": self.mode,
                "outbox_depth": self.pending,
                "oldest_pending_age_s": round(age, 3),
                "failed": self.failed,
                "sent_total": self.sent_total,
                "server": (
                    "unknown" if self.server_ok is None else "up" if self.server_ok else "down"
                ),
                "last_error": self.last_error,
                "last_error_at": None
                if self.last_error_at is None
                else self.last_error_at.isoformat(),
                "last_sent_at": None
                if self.last_sent_at is None
                else self.last_sent_at.isoformat(),
                "outbox_error": self.outbox_error,
                "unstored": self.unstored,
            }
