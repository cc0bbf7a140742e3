"""``/api/health`` of a real process is the worst of every component check (issue #11, 3).

The fault is real: the PostgreSQL session that holds the run lock is terminated with
``pg_terminate_backend``; before the fix ``/api/health`` stayed 200 ``pass`` while
``/api/health/detailed`` said 503.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import pytest
import sqlalchemy
from e2e_support import Bot, BotFactory, wait_until

from tradingbot.web.health import INFORMATIONAL, INFORMATIONAL_COMPONENTS

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ENV = {
    "TRADINGBOT_HEALTH_INTERVAL_S": "0.2",
    "TRADINGBOT_HEALTH_CHECK_TIMEOUT_S": "2",
    # The lock monitor re-checks every heartbeat interval: the lost lock stays lost for
    # one interval before it is taken again, long enough for a few health refreshes.
    "TRADINGBOT_HEARTBEAT_INTERVAL_S": "2",
}


def _execute(url: str, sql: str, **params: Any) -> Any:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text(sql), params).scalar_one()
    finally:
        engine.dispose()


def _lock_backend(url: str, bot: Bot) -> int:
    """The PostgreSQL backend holding ``bot``'s run lock (found by its application_name)."""
    name = f"trading-bot pid={bot.process.pid} host={socket.gethostname()}"[:63]
    sql = "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
    return int(_execute(url, sql, name=name))


def test_a_lost_run_lock_fails_the_summary_and_no_check_is_left_out(
    bot_factory: BotFactory, fresh_postgres_url: str
) -> None:
    """Every check of /api/health/detailed but metrics and statistics is in /api/health, and
    killing the run lock's database session makes /api/health itself answer 503."""
    bot = bot_factory(fresh_postgres_url, ENV)
    wait_until(lambda: bot.get("/api/health").json()["status"] == "pass", message="pass")
    summary = set(bot.get("/api/health").json()["checks"])
    detailed = set(bot.get("/api/health/detailed").json()["checks"])
    informational = {
        k for k in detailed if k in INFORMATIONAL or k.split(":")[0] in INFORMATIONAL_COMPONENTS
    }
    assert summary == detailed - informational
    assert {"runLock:held", "notifier:outboxDepth", "logs:file"} <= summary

    backend = _lock_backend(fresh_postgres_url, bot)
    assert _execute(fresh_postgres_url, "SELECT pg_terminate_backend(:pid)", pid=backend)

    def lock_failed() -> Mapping[str, Any] | None:
        reply = bot.get("/api/health")
        body: Mapping[str, Any] = reply.json()
        lock = body["checks"].get("runLock:held", [{}])[0]
        return body if reply.status == 503 and lock.get("status") == "fail" else None

    body = wait_until(lock_failed, message="/api/health to fail on the lost run lock")
    assert body["status"] == "fail"
    wait_until(lambda: bot.get("/api/health").status == 200, message="the lock to be regained")
    assert bot.alive(), bot.diagnostics()
