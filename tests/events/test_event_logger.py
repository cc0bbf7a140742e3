"""The event logger actor: batching, durable acks, policy, outages and the spool."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from support.tcp_proxy import TcpProxy
from tradingbot.events import ORDER, SIGNAL, SYSTEM, TRADE, Event, Severity
from tradingbot.events.event_logger import (
    EventLoggerActor,
    EventLoggerSettings,
    FlushEvents,
    PruneEvents,
)
from tradingbot.events.hub import EventHub
from tradingbot.events.policy import PersistPolicy
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.events.spool import EventSpool
from tradingbot.storage import Database, EventQuery
from tradingbot.supervision import SupervisionTree, supervisor, worker


def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@dataclass
class Logger:
    tree: SupervisionTree
    recorder: EventRecorder
    spool: EventSpool
    database: Database

    def details(self) -> dict[str, object]:
        node = self.tree.snapshot().find("event_logger")
        assert node is not None
        return node.details

    def flush(self) -> dict[str, object]:
        result: dict[str, object] = self.tree.ask("event_logger", FlushEvents(), 30)
        return result

    def stored_ids(self) -> list[uuid.UUID]:
        ids: list[uuid.UUID] = []
        cursor = None
        while True:
            page = self.database.events.query(EventQuery(limit=1000, cursor=cursor))
            ids.extend(event.id for event in page.events)
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor


def start_logger(database: Database, spool_dir: Path, **settings: object) -> Logger:
    spool = EventSpool(spool_dir)
    hub = EventHub()
    options = EventLoggerSettings(
        **{"flush_interval_s": 0.05, "retry_interval_s": 0.2, **settings}  # type: ignore[arg-type]
    )
    tree = SupervisionTree(
        supervisor(
            "root",
            [worker("event_logger", lambda: EventLoggerActor(database, spool, hub, options))],
            intensity=10,
        ),
        listeners=(),
    )
    tree.start()
    return Logger(tree, EventRecorder(tree.handle("event_logger")), spool, database)


@pytest.fixture
def logger(database: Database, tmp_path: Path) -> Iterator[Logger]:
    started = start_logger(database, tmp_path / "spool")
    yield started
    started.tree.stop()


def test_events_are_stored_in_batches(logger: Logger) -> None:
    """Many recorded events all end up stored, each once."""
    sent = [logger.recorder.record(SIGNAL, f"signal {i}").id for i in range(250)]
    logger.flush()
    assert sorted(logger.stored_ids()) == sorted(sent)


def test_durable_record_is_stored_when_it_returns(logger: Logger) -> None:
    """A TRADE recorded durably is in the database the moment the call returns."""
    event = logger.recorder.record_durable(TRADE, "FILLED BUY 10 AAPL @ 189.20", trade_id="T-1")
    stored = logger.database.events.get(event.id)
    assert stored is not None
    assert stored.trade_id == "T-1"
    assert stored.type == TRADE


def test_policy_decides_what_is_persisted(logger: Logger) -> None:
    """Default policy: listed types and WARNING+ are stored; an INFO SYSTEM event is not."""
    quiet = logger.recorder.record(SYSTEM, "routine", severity="INFO")
    loud = logger.recorder.record(SYSTEM, "disk almost full", severity="WARNING")
    order = logger.recorder.record(ORDER, "submitted", severity="DEBUG")
    logger.flush()
    stored = set(logger.stored_ids())
    assert loud.id in stored
    assert order.id in stored
    assert quiet.id not in stored


def test_the_same_event_twice_is_stored_once(logger: Logger) -> None:
    """Re-sending an event (same UUID), as a replay does, never duplicates it."""
    event = Event(type=TRADE, message="fill")
    logger.tree.tell("event_logger", RecordEvents((event, event)))
    logger.tree.tell("event_logger", RecordEvents((event,)))
    logger.flush()
    assert logger.stored_ids() == [event.id]


def test_crash_of_the_logger_loses_nothing(logger: Logger) -> None:
    """Events buffered in a logger that crashes are stored by its replacement."""
    sent = [logger.recorder.record(SIGNAL, f"s{i}").id for i in range(50)]
    logger.tree.crash("event_logger")
    sent += [logger.recorder.record(SIGNAL, f"t{i}").id for i in range(50)]
    wait_until(lambda: logger.tree.snapshot().find("event_logger").restarts == 1)  # type: ignore[union-attr]
    logger.flush()
    assert sorted(logger.stored_ids()) == sorted(sent)


def test_spool_left_by_a_killed_process_is_replayed_at_start(
    database: Database, tmp_path: Path
) -> None:
    """Events found in the spool at start are stored, in order, before anything else."""
    spool = EventSpool(tmp_path / "spool")
    leftovers = [Event(type=ORDER, message=f"o{i}") for i in range(20)]
    spool.append(leftovers)
    started = start_logger(database, tmp_path / "spool")
    try:
        started.flush()
        assert sorted(started.stored_ids()) == sorted(e.id for e in leftovers)
        assert started.spool.depth() == 0
        assert started.details()["mode"] == "normal"
    finally:
        started.tree.stop()


@pytest.mark.postgres
def test_database_outage_spools_then_replays_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    """While PostgreSQL is unreachable events go to the spool; afterwards all are stored once."""
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    database = Database.open(proxied)
    database.upgrade()
    before = {e.id for e in database.events.query(EventQuery(limit=1000)).events}
    started = start_logger(database, tmp_path / "spool")
    try:
        sent = [started.recorder.record(SIGNAL, f"before {i}").id for i in range(30)]
        started.flush()
        proxy.cut()
        durable = [
            started.recorder.record_durable(TRADE, f"fill {i}", timeout_s=30).id for i in range(5)
        ]
        sent += durable + [started.recorder.record(SIGNAL, f"during {i}").id for i in range(30)]
        started.flush()
        assert started.details()["mode"] == "outage"
        assert int(started.details()["spool_depth"]) >= 35  # type: ignore[call-overload]
        proxy.restore()
        wait_until(lambda: started.details()["mode"] == "normal")
        sent += [started.recorder.record(SIGNAL, f"after {i}").id for i in range(30)]
        started.flush()
        stored = [e for e in started.stored_ids() if e not in before]
        assert sorted(stored) == sorted(sent)
        assert len(stored) == len(set(stored))
        assert started.spool.depth() == 0
    finally:
        started.tree.stop()
        database.dispose()
        proxy.close()


def test_replay_keeps_severity_and_order(database: Database, tmp_path: Path) -> None:
    """Spooled events come back with their fields intact, oldest first in time order."""
    spool = EventSpool(tmp_path / "spool")
    events = [
        Event(type=TRADE, message=f"t{i}", severity=Severity.WARNING, context={"n": i})
        for i in range(5)
    ]
    spool.append(events)
    started = start_logger(database, tmp_path / "spool")
    try:
        started.flush()
        page = database.events.query(EventQuery(limit=10))
        assert [e.message for e in reversed(page.events)] == [f"t{i}" for i in range(5)]
        assert all(e.severity is Severity.WARNING for e in page.events)
        assert [e.context["n"] for e in reversed(page.events)] == list(range(5))
    finally:
        started.tree.stop()


def test_policy_of_rejects_bad_types() -> None:
    """A persisted-types list with a malformed type is refused with the type named."""
    with pytest.raises(ValueError, match="type"):
        PersistPolicy.of(["trade"], Severity.WARNING)


def test_retention_deletes_old_routine_events_but_never_trades(
    database: Database, tmp_path: Path
) -> None:
    """The retention job removes old DEBUG/INFO events and keeps TRADE/ORDER and warnings."""
    old = datetime.now(UTC) - timedelta(days=40)
    routine = Event(type=SIGNAL, message="old signal", timestamp=old)
    trade = Event(type=TRADE, message="old fill", timestamp=old)
    warning = Event(type=SIGNAL, message="old warning", severity=Severity.WARNING, timestamp=old)
    fresh = Event(type=SIGNAL, message="new signal")
    started = start_logger(database, tmp_path / "spool", retention_days=30.0)
    try:
        started.tree.tell("event_logger", RecordEvents((routine, trade, warning, fresh)))
        started.flush()
        deleted = started.tree.ask("event_logger", PruneEvents(), 30)
        assert deleted == 1
        assert set(started.stored_ids()) == {trade.id, warning.id, fresh.id}
    finally:
        started.tree.stop()


BLOCKED = "blocked by the database"

REFUSE_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER refuse_blocked BEFORE INSERT ON events"
        f" WHEN NEW.message = '{BLOCKED}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_blocked() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.message = '{BLOCKED}' THEN RAISE EXCEPTION 'refused'; END IF;"
        " RETURN NEW; END $$",
        "CREATE TRIGGER refuse_blocked BEFORE INSERT ON events"
        " FOR EACH ROW EXECUTE FUNCTION refuse_blocked()",
    ],
}
ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_blocked"],
    "postgresql": [
        "DROP TRIGGER refuse_blocked ON events",
        "DROP FUNCTION refuse_blocked()",
    ],
}


def run_sql(database_url: str, statements: dict[str, list[str]]) -> None:
    """Run the dialect's ``statements`` in one transaction on a connection of its own."""
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as connection:
            for statement in statements[engine.dialect.name]:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def test_a_replay_the_database_fails_part_way_stores_every_event_once_when_it_returns(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """The database refuses a spooled event in the middle of a replay: the events stored
    before it leave the spool, the rest stay spooled, and once the database takes them all
    again every event is stored exactly once."""
    spool = EventSpool(tmp_path / "spool")
    spooled = [Event(type=ORDER, message=f"order {i}") for i in range(20)]
    spooled[12] = Event(type=ORDER, message=BLOCKED)
    spool.append(spooled)
    run_sql(database_url, REFUSE_TRIGGER)  # the third batch of five fails at its 3rd event
    started = start_logger(database, tmp_path / "spool", batch_size=5)
    try:
        wait_until(lambda: len(started.stored_ids()) == 10)
        assert sorted(started.stored_ids()) == sorted(e.id for e in spooled[:10])
        assert started.spool.depth() == 10  # the ten not stored are still spooled
        assert started.details()["mode"] == "outage"
        run_sql(database_url, ALLOW)
        wait_until(lambda: started.details()["mode"] == "normal")
        stored = started.stored_ids()
        assert sorted(stored) == sorted(e.id for e in spooled)
        assert len(stored) == len(set(stored)) == 20
        assert started.spool.depth() == 0
    finally:
        started.tree.stop()
