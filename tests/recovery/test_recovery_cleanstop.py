"""The clean stop written by the shutdown path, with its retry (issue #11, item 6)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from support.ports import free_port
from tradingbot.recovery.cleanstop import clean_stop_deadline, record_clean_stop
from tradingbot.storage import Database


def test_a_reachable_database_gets_the_clean_stop_at_once(database: Database) -> None:
    """With the database up, the run is marked cleanly stopped on the first attempt."""
    run_id = str(uuid.uuid4())
    database.system_state.start_run(
        run_id=run_id, pid=1, host="h", version="v", started_at=datetime.now(UTC)
    )
    assert record_clean_stop(database, run_id, time.monotonic()) is True
    run = database.system_state.get(run_id)
    assert run is not None
    assert run.clean_stop is True


def test_an_unreachable_database_is_retried_until_the_deadline_then_reported() -> None:
    """With nothing listening, the clean stop is retried, then given up with a CRITICAL line
    (the service turns that into exit code 8)."""
    database = Database.open(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none")
    try:
        with capture_logs() as logs:
            ok = record_clean_stop(database, str(uuid.uuid4()), time.monotonic() + 0.5)
    finally:
        database.dispose()
    assert ok is False
    [given_up] = [line for line in logs if line["event"] == "clean_stop_not_recorded"]
    assert given_up["log_level"] == "critical"
    assert given_up["attempts"] >= 2


@pytest.mark.parametrize(("timeout_s", "budget_s"), [(30.0, 27.0), (5.0, 4.0), (1.0, 0.5)])
def test_the_retry_ends_before_the_hard_shutdown_deadline(
    timeout_s: float, budget_s: float
) -> None:
    """The retry budget leaves a margin before TRADINGBOT_SHUTDOWN_TIMEOUT_S (at least 0.5 s
    of retrying even for the shortest deadline)."""
    assert clean_stop_deadline(timeout_s, now=100.0) == pytest.approx(100.0 + budget_s)
