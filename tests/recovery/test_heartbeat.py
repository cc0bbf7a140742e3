"""The heartbeat actor against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from support.ports import free_port
from tradingbot.recovery.heartbeat import HeartbeatActor
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree, supervisor, worker

INTERVAL_S = 0.05


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def start_run(database: Database) -> str:
    run_id = str(uuid.uuid4())
    database.system_state.start_run(
        run_id=run_id,
        pid=12345,
        host=socket.gethostname(),
        version="test",
        started_at=datetime.now(UTC),
    )
    return run_id


@pytest.fixture
def heartbeat_tree(database: Database) -> Iterator[tuple[SupervisionTree, str]]:
    run_id = start_run(database)
    tree = SupervisionTree(
        supervisor(
            "root",
            [worker("heartbeat", lambda: HeartbeatActor(database, run_id, INTERVAL_S))],
            intensity=10,
        ),
        listeners=(),
    )
    tree.start()
    yield tree, run_id
    tree.stop()


def test_heartbeats_advance_in_the_database(
    database: Database, heartbeat_tree: tuple[SupervisionTree, str]
) -> None:
    """last_heartbeat of the run keeps moving forward while the actor runs."""
    _, run_id = heartbeat_tree
    record = database.system_state.get(run_id)
    assert record is not None
    first = record.last_heartbeat

    def advanced() -> bool:
        current = database.system_state.get(run_id)
        return current is not None and current.last_heartbeat > first

    wait_until(advanced)
    current = database.system_state.get(run_id)
    assert current is not None
    assert current.clean_stop is False
    assert current.last_heartbeat.tzinfo is not None


def test_snapshot_shows_last_heartbeat(heartbeat_tree: tuple[SupervisionTree, str]) -> None:
    """The tree snapshot carries the run id and a growing beat count."""
    tree, run_id = heartbeat_tree

    def beats() -> int:
        node = tree.snapshot().find("heartbeat")
        assert node is not None
        return int(node.details.get("beats", 0))

    wait_until(lambda: beats() >= 3)
    node = tree.snapshot().find("heartbeat")
    assert node is not None
    assert node.details["run_id"] == run_id
    assert node.details["last_error"] is None


def test_stopping_the_heartbeat_leaves_the_clean_stop_to_the_runtime(
    database: Database, heartbeat_tree: tuple[SupervisionTree, str]
) -> None:
    """Stopping the tree does not record the clean stop from the heartbeat actor: the runtime's
    shutdown path does, so a hung heartbeat cannot withhold it (tests/e2e/test_e2e_clean_stop)."""
    tree, run_id = heartbeat_tree
    tree.stop()
    record = database.system_state.get(run_id)
    assert record is not None
    assert record.clean_stop is False


def test_restart_and_crash_are_not_clean_stops(
    database: Database, heartbeat_tree: tuple[SupervisionTree, str]
) -> None:
    """Replacing the heartbeat actor (drill or operator restart) does not end the run."""
    tree, run_id = heartbeat_tree
    tree.restart("heartbeat")
    tree.crash("heartbeat")

    def restarted_twice() -> bool:
        node = tree.snapshot().find("heartbeat")
        return node is not None and node.restarts == 2 and node.status == "running"

    wait_until(restarted_twice)
    record = database.system_state.get(run_id)
    assert record is not None
    assert record.clean_stop is False
    assert record.stopped_at is None


def test_unreachable_database_is_reported_not_crashed(tmp_path: object) -> None:
    """With the database unreachable the heartbeat keeps running and shows the error."""
    closed_port = free_port()
    database = Database.open(f"postgresql+psycopg2://postgres:s3cret@127.0.0.1:{closed_port}/x")
    tree = SupervisionTree(
        supervisor(
            "root", [worker("heartbeat", lambda: HeartbeatActor(database, "r", INTERVAL_S))]
        ),
        listeners=(),
    )
    tree.start()
    try:

        def failing() -> bool:
            node = tree.snapshot().find("heartbeat")
            return node is not None and node.details.get("consecutive_failures", 0) >= 2

        wait_until(failing)
        node = tree.snapshot().find("heartbeat")
        assert node is not None
        assert node.status == "running"
        assert node.restarts == 0
        assert node.details["last_error"]
        assert "s3cret" not in node.details["last_error"]
    finally:
        tree.stop()
        database.dispose()
