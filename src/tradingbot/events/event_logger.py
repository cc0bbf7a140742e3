"""The event logger actor: batched, exactly-once persistence of events, through outages.

Normal mode: events are buffered and written in batches (on size, or every
``flush_interval_s``), one transaction per batch, never one commit per event. A durable
record (TRADE/ORDER with an acknowledgement) flushes at once and is acknowledged only
after the commit.

Outage mode: when the database is unreachable, each batch is appended to the fsync'd
spool file under ``TRADINGBOT_HOME/spool/`` instead (that is when its
acknowledgements resolve), and every later event follows it there so order is kept.
Every ``retry_interval_s`` the spool is replayed in order; the events' UUIDs make a
replay that overlaps an earlier partial one harmless. A new start replays whatever a
``kill -9`` left in the spool before accepting anything else.

If even the spool fails (disk full, I/O error, read-only file system, its size limit),
events stay in memory (bounded by ``max_buffered``), their acknowledgements fail (the
caller knows they are not durable), and anything beyond the bound is counted and logged
as dropped. That is said once per episode (CRITICAL ``spool_write_failed``); the
``events:spoolWrite`` health check fails and
``tradingbot_event_spool_write_failures_total`` counts the failed appends. Buffered
events retry the spool every ``retry_interval_s`` (a durable record tries at once); once
the database or the spool takes them, the episode ends (``spool_write_recovered``).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from tradingbot.config import Config
from tradingbot.config.settings import default
from tradingbot.events.hub import EventHub
from tradingbot.events.model import Event, Severity
from tradingbot.events.policy import PersistPolicy
from tradingbot.events.recorder import EventNotDurable, RecordEvents
from tradingbot.events.spool import EventSpool, SpoolError
from tradingbot.metrics import NO_EVENT_COUNTERS, EventCounters
from tradingbot.storage import Database, StorageError, StorageUnavailable
from tradingbot.supervision import Failure, SupervisedActor

log = structlog.get_logger(__name__)

Ack = concurrent.futures.Future[None]


@dataclass(frozen=True, slots=True, kw_only=True)
class EventLoggerSettings:
    """Tuning of the event logger; units in the names."""

    policy: PersistPolicy = field(default_factory=PersistPolicy)
    batch_size: int = default("EVENTS_BATCH_SIZE")
    flush_interval_s: float = default("EVENTS_FLUSH_INTERVAL_S")
    retry_interval_s: float = 2.0
    max_buffered: int = 100_000
    retention_days: float = default("EVENT_RETENTION_DAYS")
    # None: no timer of its own; the scheduler's event_retention job sends PruneEvents.
    retention_interval_s: float | None = 3600.0

    @classmethod
    def from_config(cls, config: Config) -> EventLoggerSettings:
        """The settings of ``TRADINGBOT_EVENTS_*`` and ``TRADINGBOT_EVENT_RETENTION_DAYS``."""
        return cls(
            policy=PersistPolicy.of(
                config.events_persist_types, Severity.parse(config.events_min_severity)
            ),
            batch_size=config.events_batch_size,
            flush_interval_s=config.events_flush_interval_s,
            retention_days=config.event_retention_days,
        )


@dataclass(frozen=True, slots=True)
class FlushEvents:
    """Command: write everything buffered now; answers with the logger's statistics."""


@dataclass(frozen=True, slots=True)
class PruneEvents:
    """Command: apply the retention policy now; answers with the number deleted."""


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: flush a partial batch; during an outage, maybe replay the spool."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EventLoggerActor(SupervisedActor):
    """Persists events; see the module docstring for the guarantees."""

    def __init__(
        self,
        database: Database,
        spool: EventSpool,
        hub: EventHub,
        settings: EventLoggerSettings,
        now: Callable[[], datetime] = _utcnow,
        *,
        metrics: EventCounters = NO_EVENT_COUNTERS,
    ) -> None:
        super().__init__()
        self._db = database
        self._spool = spool
        self._hub = hub
        self._settings = settings
        self._now = now
        self._metrics = metrics
        self._buffer: list[Event] = []
        self._acks: list[Ack] = []
        self._outage = False
        self._next_retry = 0.0
        self._stored = 0
        self._spooled = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._spool_failing = False  # the last spool append failed
        self._spool_retry_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        if self._spool.depth():
            log.warning("spool_found_at_start", depth=self._spool.depth())
            self._outage = True
            self._replay()
        self.every(self._settings.flush_interval_s, _Tick())
        if self._settings.retention_interval_s is not None:
            self.every(self._settings.retention_interval_s, PruneEvents())
        self._publish()

    def teardown(self, reason: str) -> None:
        self._flush(force=True)  # a last try, even while the spool is failing
        self._publish()

    def on_crash(self, failure: Failure) -> None:
        # The buffer would die with this incarnation: spool it (best effort) so the
        # replacement replays it at start.
        if self._buffer:
            self._outage = True
            self._flush(force=True)

    # -- messages -------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case RecordEvents(events=events, ack=ack):
                self._record(events, ack)
            case _Tick():
                if self._buffer:
                    self._flush()
                if self._outage and self.clock.monotonic() >= self._next_retry:
                    self._replay()
                self._publish()
            case FlushEvents():
                self._flush(force=True)
                self._publish()
                return self.stats()
            case PruneEvents():
                return self._prune()
            case _:
                return super().on_receive(message)
        return None

    def _record(self, events: Sequence[Event], ack: Ack | None) -> None:
        self._metrics.recorded(events)
        policy = self._settings.policy
        kept = [event for event in events if policy.persists(event)]
        if not kept:
            if ack is not None and not ack.done():
                ack.set_result(None)  # nothing the policy stores: nothing to wait for
            return
        self._buffer.extend(kept)
        if ack is not None:
            self._acks.append(ack)
        if ack is not None or len(self._buffer) >= self._settings.batch_size:
            self._flush()

    # -- writing --------------------------------------------------------------------------

    def _flush(self, *, force: bool = False) -> None:
        if not self._buffer:
            self._resolve(self._acks, None)
            self._acks = []
            return
        waiting = self._outage and self._spool_failing and not self._acks and not force
        if waiting and self.clock.monotonic() < self._spool_retry_at:
            return  # kept in memory until the spool is retried (a durable record: now)
        batch, acks = self._buffer, self._acks
        self._buffer, self._acks = [], []
        if not self._outage:
            try:
                for start in range(0, len(batch), self._settings.batch_size):
                    self._db.events.insert_many(batch[start : start + self._settings.batch_size])
            except StorageUnavailable as exc:
                self._enter_outage(exc)
            except StorageError as exc:
                # Not an outage (a bug or a constraint): never lose the batch; spool it
                # and let the replay retry, while the error is loud.
                log.error("event_batch_failed", error=str(exc), events=len(batch))
                self._enter_outage(exc)
            else:
                self._stored += len(batch)
                self._metrics.stored(len(batch))
                self._spool_recovered("database")
                self._done(batch, acks)
                return
        self._to_spool(batch, acks)

    def _to_spool(self, batch: list[Event], acks: list[Ack]) -> None:
        try:
            self._spool.append(batch)
        except SpoolError as exc:
            self._spool_failed(exc, len(batch))
            self._resolve(acks, EventNotDurable(f"database and spool both failed: {exc}"))
            self._keep_in_memory(batch)
            return
        self._spool_recovered("spool")
        self._spooled += len(batch)
        self._metrics.spooled(len(batch))
        self._done(batch, acks)

    def _spool_failed(self, exc: SpoolError, events: int) -> None:
        """The spool refused a batch: said once per episode, retried after a pause."""
        self._last_error = str(exc)
        self._spool_retry_at = self.clock.monotonic() + self._settings.retry_interval_s
        if not self._spool_failing:
            self._spool_failing = True
            log.critical(
                "spool_write_failed",
                error=str(exc),
                events=events,
                buffered=len(self._buffer) + events,
                max_buffered=self._settings.max_buffered,
                effect="events kept in memory; durable records are refused to their callers",
            )

    def _spool_recovered(self, where: str) -> None:
        if self._spool_failing:
            self._spool_failing = False
            log.warning("spool_write_recovered", events_now_go_to=where)
        if self._spool.stats().write_error is not None:
            self._spool.clear_write_error()

    def _keep_in_memory(self, batch: list[Event]) -> None:
        self._buffer = batch + self._buffer
        overflow = len(self._buffer) - self._settings.max_buffered
        if overflow > 0:
            dropped = self._buffer[:overflow]
            del self._buffer[:overflow]
            self._dropped += overflow
            self._metrics.dropped(overflow)
            log.critical(
                "events_dropped",
                count=overflow,
                first_event_id=str(dropped[0].id),
                reason="database, spool and memory buffer are all full",
            )

    def _done(self, batch: list[Event], acks: list[Ack]) -> None:
        self._resolve(acks, None)
        self._hub.publish(batch)

    @staticmethod
    def _resolve(acks: list[Ack], error: Exception | None) -> None:
        for ack in acks:
            if ack.done():
                continue
            if error is None:
                ack.set_result(None)
            else:
                ack.set_exception(error)

    def _enter_outage(self, exc: StorageError) -> None:
        self._last_error = str(exc)
        if not self._outage:
            log.warning("event_storage_unavailable", error=str(exc), spool=str(self._spool.path))
        self._outage = True
        self._next_retry = self.clock.monotonic() + self._settings.retry_interval_s

    def _replay(self) -> None:
        """Move the spool into the database, in order; stay in outage mode on failure."""
        try:
            events = self._spool.read()
        except SpoolError as exc:
            self._last_error = str(exc)
            log.error("spool_unreadable", error=str(exc))
            self._next_retry = self.clock.monotonic() + self._settings.retry_interval_s
            return
        done = 0
        try:
            for start in range(0, len(events), self._settings.batch_size):
                chunk = events[start : start + self._settings.batch_size]
                self._db.events.insert_many(chunk)
                done += len(chunk)
        except StorageError as exc:
            self._enter_outage(exc)
        finally:
            if done:
                self._commit_spool(done)
        if done == len(events) and self._spool.depth() == 0:
            if self._outage:
                log.info("spool_replayed", events=done)
            self._outage = False
            self._last_error = None

    def _commit_spool(self, done: int) -> None:
        """Drop the replayed prefix from the spool; the events are in the database now."""
        self._stored += done
        self._metrics.stored(done)
        try:
            self._spool.commit(done)
        except (SpoolError, ValueError) as exc:
            # The spool keeps them: the next replay stores them again, harmlessly (UUIDs).
            self._last_error = str(exc)
            log.error("spool_commit_failed", error=str(exc), replayed=done)

    def _prune(self) -> int:
        if self._outage:
            return 0
        before = self._now() - timedelta(days=self._settings.retention_days)
        try:
            deleted = self._db.events.delete_older_than(before)
        except StorageError as exc:
            log.warning("event_retention_failed", error=str(exc))
            return 0
        if deleted:
            log.info("events_pruned", deleted=deleted, before=before.isoformat())
        return deleted

    # -- observation ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        oldest = self._spool.oldest()
        return {
            "mode": "outage" if self._outage else "normal",
            "buffered": len(self._buffer),
            "stored_total": self._stored,
            "spooled_total": self._spooled,
            "dropped_total": self._dropped,
            "spool_depth": self._spool.depth(),
            "spool_bytes": self._spool.size_bytes(),
            "spool_oldest": None if oldest is None else oldest.isoformat(),
            "spool_write_failing": self._spool_failing,
            "last_error": self._last_error,
        }

    def _publish(self) -> None:
        self.publish_details(**self.stats())
