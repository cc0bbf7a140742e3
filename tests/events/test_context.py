"""Context binding across real actors and threads: log lines and recorded events.

Each pykka actor runs on its own thread, hence in its own contextvars context: what one
actor's handler binds (``trade_id``, ``strategy_id``) must reach that actor's log lines
and events, and never another actor's, the caller's, or a plain thread's.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from tradingbot.events import SIGNAL, Event
from tradingbot.events.event_logger import EventLoggerActor, EventLoggerSettings, FlushEvents
from tradingbot.events.hub import EventHub
from tradingbot.events.recorder import EventRecorder
from tradingbot.events.spool import EventSpool
from tradingbot.logconfig import LOG_FILE_NAME, configure_logging
from tradingbot.storage import Database
from tradingbot.supervision import SupervisedActor, SupervisionTree, supervisor, worker

pytestmark = pytest.mark.slow

log = structlog.get_logger("tests.context")


@dataclass(frozen=True, slots=True)
class Work:
    """Ask an actor to log one line and record one SIGNAL event, binding ids if given."""

    label: str
    trade_id: str | None = None
    strategy_id: str | None = None


class ContextActor(SupervisedActor):
    """Binds the message's ids (if any) in its handler, then logs and records."""

    def on_receive(self, message: Any) -> Any:
        match message:
            case Work(label=label, trade_id=trade_id, strategy_id=strategy_id):
                if trade_id is not None:
                    structlog.contextvars.bind_contextvars(
                        trade_id=trade_id, strategy_id=strategy_id
                    )
                log.info("work_done", label=label)
                recorder = EventRecorder(self.peer("event_logger"))
                return recorder.record(SIGNAL, f"signal {label}")
            case _:
                return super().on_receive(message)


@dataclass
class Harness:
    tree: SupervisionTree
    database: Database
    log_dir: Path

    def ask(self, actor_id: str, message: Any) -> Any:
        return self.tree.ask(actor_id, message, 10)

    def stored(self, event: Event) -> Event:
        self.tree.ask("event_logger", FlushEvents(), 30)
        found = self.database.events.get(event.id)
        assert found is not None, f"event {event.message!r} was not stored"
        return found

    def lines(self) -> list[dict[str, Any]]:
        for handler in logging.getLogger().handlers:
            handler.flush()
        text = (self.log_dir / LOG_FILE_NAME).read_text()
        return [json.loads(line) for line in text.splitlines()]

    def lines_of(self, event_name: str, **match: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines()
            if line.get("event") == event_name
            and all(line.get(key) == value for key, value in match.items())
        ]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """Logging into tmp_path, a SQLite database, an event logger and two context actors."""
    configure_logging(level="INFO", log_dir=tmp_path / "logs", stream=io.StringIO())
    database = Database.open(f"sqlite:///{tmp_path / 'events.db'}")
    database.upgrade()
    spool = EventSpool(tmp_path / "spool")
    settings = EventLoggerSettings(flush_interval_s=0.05, retry_interval_s=0.2)
    tree = SupervisionTree(
        supervisor(
            "root",
            [
                worker(
                    "event_logger",
                    lambda: EventLoggerActor(database, spool, EventHub(), settings),
                ),
                worker("alpha", ContextActor),
                worker("beta", ContextActor),
            ],
        ),
        listeners=(),
    )
    tree.start()
    try:
        yield Harness(tree, database, tmp_path / "logs")
    finally:
        tree.stop()
        database.dispose()
        for handler in list(logging.getLogger().handlers):
            handler.close()
        logging.getLogger().handlers.clear()
        structlog.contextvars.clear_contextvars()


def test_each_actor_s_lines_carry_its_own_actor_id(harness: Harness) -> None:
    """Log lines written inside two different actors' handlers carry their own actor id."""
    harness.ask("alpha", Work("a"))
    harness.ask("beta", Work("b"))
    [alpha] = harness.lines_of("work_done", label="a")
    [beta] = harness.lines_of("work_done", label="b")
    assert alpha["actor"] == "alpha"
    assert beta["actor"] == "beta"


def test_ids_bound_in_a_handler_reach_its_events_and_lines_and_nothing_else(
    harness: Harness,
) -> None:
    """trade_id/strategy_id bound in alpha's handler tag its events and lines, not beta's."""
    # The caller's own context must not travel with the message either.
    structlog.contextvars.bind_contextvars(trade_id="T-CALLER", strategy_id="S-CALLER")
    mine: Event = harness.ask("alpha", Work("a", trade_id="T-1", strategy_id="S-1"))
    other: Event = harness.ask("beta", Work("b"))
    structlog.contextvars.clear_contextvars()

    stored_mine = harness.stored(mine)
    assert (stored_mine.trade_id, stored_mine.strategy_id) == ("T-1", "S-1")
    assert stored_mine.source == "alpha"
    stored_other = harness.stored(other)
    assert (stored_other.trade_id, stored_other.strategy_id) == (None, None)
    assert stored_other.source == "beta"

    [alpha_line] = harness.lines_of("work_done", label="a")
    assert (alpha_line["trade_id"], alpha_line["strategy_id"]) == ("T-1", "S-1")
    [beta_line] = harness.lines_of("work_done", label="b")
    assert "trade_id" not in beta_line
    assert "strategy_id" not in beta_line

    # The recorder's own line for each event (one per event, keyed by its id).
    [mine_line] = harness.lines_of("signal a", event_id=str(mine.id))
    assert (mine_line["actor"], mine_line["trade_id"], mine_line["strategy_id"]) == (
        "alpha",
        "T-1",
        "S-1",
    )
    [other_line] = harness.lines_of("signal b", event_id=str(other.id))
    assert other_line["actor"] == "beta"
    assert (other_line["trade_id"], other_line["strategy_id"]) == (None, None)


def test_interleaved_messages_never_mix_contexts(harness: Harness) -> None:
    """Two threads drive both actors at once; each line has only its own actor's ids."""
    rounds = 40

    def drive(actor_id: str, binds: bool) -> None:
        for i in range(rounds):
            trade = f"{actor_id}-T{i}" if binds else None
            strategy = f"{actor_id}-S{i}" if binds else None
            harness.ask(actor_id, Work(f"{actor_id}-{i}", trade, strategy))

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        drivers = [pool.submit(drive, "alpha", True), pool.submit(drive, "beta", False)]
        for driver in drivers:
            driver.result(timeout=60)

    lines = harness.lines_of("work_done")
    assert len(lines) == 2 * rounds
    for line in lines:
        actor, _, number = str(line["label"]).rpartition("-")
        assert line["actor"] == actor
        if actor == "alpha":
            assert (line["trade_id"], line["strategy_id"]) == (
                f"alpha-T{number}",
                f"alpha-S{number}",
            )
        else:
            assert "trade_id" not in line, line
            assert "strategy_id" not in line, line


def test_event_from_a_plain_thread_has_no_ids(harness: Harness) -> None:
    """An event recorded from a plain thread without context has None ids and no actor."""
    recorder = EventRecorder(harness.tree.handle("event_logger"))
    structlog.contextvars.bind_contextvars(trade_id="T-CALLER")  # not inherited by a thread
    recorded: list[Event] = []
    marker = uuid.uuid4().hex
    thread = threading.Thread(
        target=lambda: recorded.append(recorder.record(SIGNAL, f"plain {marker}"))
    )
    thread.start()
    thread.join(10)
    structlog.contextvars.clear_contextvars()

    stored = harness.stored(recorded[0])
    assert (stored.trade_id, stored.strategy_id, stored.user_id) == (None, None, None)
    assert stored.source == ""
    [line] = harness.lines_of(f"plain {marker}")
    assert "actor" not in line
    assert (line["trade_id"], line["strategy_id"]) == (None, None)


def test_ids_bound_in_one_handler_do_not_tag_the_next_message(harness: Harness) -> None:
    """A trade_id bound while handling one message does not tag the same actor's next one."""
    harness.ask("alpha", Work("first", trade_id="T-1", strategy_id="S-1"))
    later: Event = harness.ask("alpha", Work("second"))
    [line] = harness.lines_of("work_done", label="second")
    assert "trade_id" not in line
    assert harness.stored(later).trade_id is None
