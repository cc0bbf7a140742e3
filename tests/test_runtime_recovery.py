"""The runtime's crash recovery: the stored crash event and the run lock."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.bot_config import bot_config
from tradingbot.config import Config
from tradingbot.recovery import AlreadyRunning
from tradingbot.recovery.crash import crash_event_id
from tradingbot.runtime import Runtime
from tradingbot.storage import Database


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A runtime on a SQLite file in a temporary home, with the built-in simulator."""
    # STRATEGIES: no example strategy trading under the test.
    return bot_config(tmp_path, STRATEGIES="", HEARTBEAT_INTERVAL_S="0.2")


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for runtime in reversed(started):
        runtime.stop()


def _crashed_run(config: Config) -> str:
    """A run that started a minute ago and never stopped cleanly (as after kill -9)."""
    run_id = str(uuid.uuid4())
    with Database.open(config.database_url) as database:
        database.upgrade()
        database.system_state.start_run(
            run_id=run_id,
            pid=31337,
            host="old-box",
            version="0.0.9",
            started_at=datetime.now(UTC) - timedelta(minutes=1),
        )
    return run_id


def test_each_crash_found_at_start_is_a_stored_error_event_when_start_returns(
    config: Config, runtimes: list[Runtime]
) -> None:
    """A crashed earlier run is reported as a stored ERROR SYSTEM event naming that run."""
    crashed = _crashed_run(config)
    runtime = Runtime(config)
    runtimes.append(runtime)
    runtime.start()

    assert [r.recovery.run_id for r in runtime.crashes] == [crashed]
    report = runtime.crashes[0]
    assert (report.recovery.pid, report.recovery.host) == (31337, "old-box")
    assert report.recovery.detected_by_run_id == runtime.run_id
    assert runtime.database is not None
    event = runtime.database.events.get(crash_event_id(report.recovery.id))
    assert event is not None
    assert (event.type, event.severity.name, event.source) == ("SYSTEM", "ERROR", "recovery")


def test_a_second_runtime_on_the_same_database_is_refused(
    config: Config, runtimes: list[Runtime]
) -> None:
    """start() raises AlreadyRunning naming this process, and the first runtime keeps running."""
    first = Runtime(config)
    runtimes.append(first)
    first.start()
    second = Runtime(config)
    with pytest.raises(AlreadyRunning) as refused:
        second.start()
    assert f"pid {os.getpid()} on {socket.gethostname()}" in str(refused.value)
    assert first.run_lock is not None
    first.run_lock.verify()
    assert first.tree is not None
    assert first.tree.healthy()
    assert first.lock_lost is None
