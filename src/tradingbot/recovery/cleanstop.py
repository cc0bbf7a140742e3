"""The clean stop: what tells the next start that this run did not crash.

The shutdown path records it itself, after the supervision tree stopped (see
:meth:`tradingbot.runtime.Runtime.stop`): a hung heartbeat actor, abandoned at shutdown,
cannot withhold it. While the database is unreachable it is retried with a backoff
until a deadline just before the hard shutdown deadline; when it cannot be stored the
service exits with :data:`tradingbot.exitcodes.UNCLEAN_STOP`, because the next start
will (truthfully) report this run as a crash.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import structlog

from tradingbot.storage import Database, StorageError

__all__ = ["clean_stop_deadline", "record_clean_stop"]

log = structlog.get_logger(__name__)

_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 1.0


def clean_stop_deadline(shutdown_timeout_s: float, now: float | None = None) -> float:
    """The ``time.monotonic()`` until which a shutdown starting ``now`` may retry: the hard
    deadline (``TRADINGBOT_SHUTDOWN_TIMEOUT_S``) less a margin to exit in order."""
    start = time.monotonic() if now is None else now
    return start + max(0.5, shutdown_timeout_s - max(1.0, shutdown_timeout_s * 0.1))


def record_clean_stop(database: Database, run_id: str, deadline: float) -> bool:
    """Mark ``run_id`` stopped cleanly, retrying while the database is unreachable until
    ``deadline`` (monotonic). True once stored; False (logged CRITICAL) if it never was.
    The first attempt is made whatever the deadline."""
    delay = _FIRST_DELAY_S
    attempts = 0
    while True:
        attempts += 1
        try:
            database.system_state.record_clean_stop(run_id, datetime.now(UTC))
        except StorageError as exc:
            left = deadline - time.monotonic()
            if attempts == 1:
                log.warning("clean_stop_retrying", run_id=run_id, error=str(exc), left_s=left)
            if left <= 0:
                log.critical(
                    "clean_stop_not_recorded", run_id=run_id, error=str(exc), attempts=attempts
                )
                return False
            time.sleep(min(delay, left))  # the database may come back; a last try at the end
            delay = min(delay * 2, _MAX_DELAY_S)
        else:
            log.info("clean_stop_recorded", run_id=run_id, attempts=attempts)
            return True
