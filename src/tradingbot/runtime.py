"""The assembled process: database, this run's record and the supervision tree.

:class:`Runtime` is what ``trading-bot run`` starts and stops, and what the HTTP server
and the control socket observe. Its blocking methods run on a worker thread, never on
the event loop.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime

import structlog

from tradingbot import __version__
from tradingbot.actors import HeartbeatActor
from tradingbot.actors.event_logger import EventLoggerActor, EventLoggerSettings
from tradingbot.config import Config
from tradingbot.events import Severity
from tradingbot.events.hub import EventHub
from tradingbot.events.policy import PersistPolicy
from tradingbot.events.recorder import EventRecorder
from tradingbot.events.spool import EventSpool
from tradingbot.events.system import SystemEventRecorder
from tradingbot.logconfig import Redactor
from tradingbot.storage import Database, RunRecord
from tradingbot.supervision import (
    ChildSpec,
    Strategy,
    SupervisionTree,
    supervisor,
    worker,
)

log = structlog.get_logger(__name__)

ROOT_INTENSITY = 3
ROOT_PERIOD_S = 5.0


def event_logger_settings(config: Config) -> EventLoggerSettings:
    return EventLoggerSettings(
        policy=PersistPolicy.of(
            config.events_persist_types, Severity.parse(config.events_min_severity)
        ),
        batch_size=config.events_batch_size,
        flush_interval_s=config.events_flush_interval_s,
        retention_days=config.event_retention_days,
    )


def root_spec(
    config: Config, database: Database, run_id: str, spool: EventSpool, hub: EventHub
) -> ChildSpec:
    """The product's tree. Children start in this order and stop in reverse.

    The event logger comes first: everything after it records events, and it is the
    last to stop, so the final events of a shutdown are still stored.
    """
    settings = event_logger_settings(config)
    return supervisor(
        "root",
        [
            worker(
                "event_logger",
                lambda: EventLoggerActor(database, spool, hub, settings),
                shutdown_s=config.shutdown_timeout_s / 2,
            ),
            worker(
                "heartbeat",
                lambda: HeartbeatActor(database, run_id, config.heartbeat_interval_s),
                shutdown_s=5.0,
            ),
        ],
        strategy=Strategy.ONE_FOR_ONE,
        intensity=ROOT_INTENSITY,
        period_s=ROOT_PERIOD_S,
        shutdown_s=config.shutdown_timeout_s,
    )


class Runtime:
    """Owns the database handle, the run record and the tree for one process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.run_id = str(uuid.uuid4())
        self.started_at = datetime.now(UTC)
        self.database: Database | None = None
        self.tree: SupervisionTree | None = None
        self.run: RunRecord | None = None
        self.hub = EventHub()
        self.spool = EventSpool(config.spool_dir)
        self.recorder: EventRecorder | None = None

    def start(self) -> None:
        """Open and migrate the database, record this run, start the tree (blocking)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        config = self.config
        database = self.database = Database.open(config.database_url)
        applied = database.upgrade()
        if applied:
            log.info("database_migrated", revisions=applied, url=database.redacted_url)
        self.run = database.system_state.start_run(
            run_id=self.run_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            version=__version__,
            started_at=self.started_at,
        )
        tree = SupervisionTree(
            root_spec(config, database, self.run_id, self.spool, self.hub),
            probe_interval_s=config.liveness_probe_interval_s,
            probe_deadline_s=config.liveness_deadline_s,
        )
        self.tree = tree
        self.recorder = EventRecorder(
            tree.handle("event_logger"), scrub=Redactor(config.secrets()).redact
        )
        tree.add_listener(SystemEventRecorder(self.recorder))
        tree.start()
        log.info("tree_started", run_id=self.run_id, actors=tree.actor_ids())

    def stop(self) -> None:
        """Stop the tree in reverse order (the heartbeat records the clean stop)."""
        if self.tree is not None:
            self.tree.stop()
        if self.database is not None:
            self.database.dispose()
            self.database = None
