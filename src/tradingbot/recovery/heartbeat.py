"""The heartbeat actor: proves to the database, every interval, that this run is alive.

Each beat writes ``last_heartbeat`` of this run's ``system_state`` row (pid, host,
version and started_at were written when the run began). The clean stop that crash
detection relies on is recorded by the runtime's shutdown path after the tree stopped
(:meth:`tradingbot.runtime.Runtime.stop`), not here: a hung heartbeat actor, abandoned
at shutdown, must not turn an orderly stop into a crash. Stopping or restarting this
actor records nothing.

A database outage does not crash the actor — crashing would only burn the supervisor's
restart intensity on an external fault. The failure is logged, counted and shown in the
tree snapshot, and the next beat tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from tradingbot.storage import Database, StorageError
from tradingbot.supervision import SupervisedActor

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteHeartbeat:
    """Command: write a heartbeat now."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HeartbeatActor(SupervisedActor):
    """Writes this run's heartbeat every ``interval_s`` seconds."""

    def __init__(
        self,
        database: Database,
        run_id: str,
        interval_s: float,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__()
        self._db = database
        self._run_id = run_id
        self._interval_s = interval_s
        self._now = now
        self._beats = 0
        self._failures = 0

    def setup(self) -> None:
        self._beat()
        self.every(self._interval_s, WriteHeartbeat())

    def on_receive(self, message: Any) -> Any:
        match message:
            case WriteHeartbeat():
                return self._beat()
            case _:
                return super().on_receive(message)

    def _beat(self) -> bool:
        at = self._now()
        try:
            self._db.system_state.beat(self._run_id, at)
        except StorageError as exc:
            self._failures += 1
            log.warning(
                "heartbeat_failed", run_id=self._run_id, error=str(exc), failures=self._failures
            )
            self.publish_details(last_error=str(exc), consecutive_failures=self._failures)
            return False
        self._beats += 1
        self._failures = 0
        self.publish_details(
            run_id=self._run_id,
            last_heartbeat=at.isoformat(),
            beats=self._beats,
            interval_s=self._interval_s,
            last_error=None,
            consecutive_failures=0,
        )
        return True
