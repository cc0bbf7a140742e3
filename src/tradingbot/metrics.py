"""The application's own Prometheus metrics, independent of the HTTP server.

Two kinds, both read by ``GET /metrics`` (:mod:`tradingbot.web.metrics`):

* :class:`RuntimeMetrics` — counters fed as things happen, from actor threads: events
  accepted and stored by the event logger, actor restarts from a supervision tree
  listener. One instance per :class:`~tradingbot.runtime.Runtime`; its collectors
  belong to no registry of their own, so every app (each with its own
  ``CollectorRegistry``) can register them.
* :class:`RuntimeStateCollector` — gauges computed at scrape time from thread-safe
  state (the tree's handles, the spool's published statistics, the hub): a scrape never
  sends a message to an actor, so it never waits on a mailbox.

Where events are counted: ``tradingbot_events_recorded_total{type}`` when the event
logger *accepts* them (every event it receives, whether or not the persistence policy
stores it), ``tradingbot_events_stored_total`` when they are committed to the database
(directly or by a spool replay), ``tradingbot_events_spooled_total`` when they are
fsync'd to the spool during an outage and ``tradingbot_events_dropped_total`` when
database, spool and memory buffer are all full.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from prometheus_client import Counter
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradingbot import __version__
from tradingbot.events.model import Event
from tradingbot.supervision import ActorRestarted, SupervisionEvent, SupervisionTree
from tradingbot.supervision.handle import RESTARTING, RUNNING, STOPPED, UNRESPONSIVE
from tradingbot.trading.state import TradingMode

if TYPE_CHECKING:
    from tradingbot.runtime import Runtime

ACTOR_STATUSES = (RUNNING, RESTARTING, STOPPED, UNRESPONSIVE)


class EventCounters(Protocol):
    """What the event logger reports, from its own thread; must be quick and not raise."""

    def recorded(self, events: Sequence[Event]) -> None: ...

    def stored(self, count: int) -> None: ...

    def spooled(self, count: int) -> None: ...

    def dropped(self, count: int) -> None: ...


class NoEventCounters:
    """The default for an event logger nobody observes."""

    def recorded(self, events: Sequence[Event]) -> None:
        return None

    def stored(self, count: int) -> None:
        return None

    def spooled(self, count: int) -> None:
        return None

    def dropped(self, count: int) -> None:
        return None


NO_EVENT_COUNTERS = NoEventCounters()


class RuntimeMetrics:
    """Counters of one runtime (thread-safe; prometheus-client locks each child)."""

    def __init__(self) -> None:
        self.events_recorded = Counter(
            "tradingbot_events_recorded",
            "Events accepted by the event logger, by type (persisted or not).",
            ["type"],
            registry=None,
        )
        self.events_stored = Counter(
            "tradingbot_events_stored",
            "Events committed to the database (directly or replayed from the spool).",
            registry=None,
        )
        self.events_spooled = Counter(
            "tradingbot_events_spooled",
            "Events written to the fsync'd spool while the database was unreachable.",
            registry=None,
        )
        self.events_dropped = Counter(
            "tradingbot_events_dropped",
            "Events lost because the database, the spool and the memory buffer were full.",
            registry=None,
        )
        self.actor_restarts = Counter(
            "tradingbot_actor_restarts",
            "Restarts of each actor of the supervision tree (after a crash or on request).",
            ["actor"],
            registry=None,
        )

    def collectors(self) -> tuple[Collector, ...]:
        """What an app registers in its registry."""
        return (
            self.events_recorded,
            self.events_stored,
            self.events_spooled,
            self.events_dropped,
            self.actor_restarts,
        )

    # -- EventCounters --------------------------------------------------------------------

    def recorded(self, events: Sequence[Event]) -> None:
        for type_, count in Tally(event.type for event in events).items():
            self.events_recorded.labels(type=type_).inc(count)

    def stored(self, count: int) -> None:
        self.events_stored.inc(count)

    def spooled(self, count: int) -> None:
        self.events_spooled.inc(count)

    def dropped(self, count: int) -> None:
        self.events_dropped.inc(count)

    # -- supervision ----------------------------------------------------------------------

    def watch(self, tree: SupervisionTree) -> None:
        """Count ``tree``'s restarts; every actor starts with a zero series (for ``increase``)."""
        for actor_id in tree.actor_ids():
            self.actor_restarts.labels(actor=actor_id)
        tree.add_listener(self.on_supervision_event)

    def on_supervision_event(self, event: SupervisionEvent) -> None:
        """A tree listener (supervisor threads)."""
        if isinstance(event, ActorRestarted):
            self.actor_restarts.labels(actor=event.actor).inc()


class RuntimeStateCollector(Collector):
    """Gauges read at scrape time from the runtime's thread-safe state, never a mailbox."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def describe(self) -> Iterable[Metric]:
        return (*self._families(), _mails_sent(), _spool_write_failures())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        self._fill(*families)
        sent = _mails_sent()
        sent.add_metric([], self._runtime.notify_status.snapshot()["sent_total"])
        spool_failures = _spool_write_failures()
        spool_failures.add_metric([], self._runtime.spool.stats().write_failures)
        return (*families, sent, spool_failures)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "tradingbot_build_info", "Version of the running trading-bot.", labels=["version"]
            ),
            GaugeMetricFamily(
                "tradingbot_actor_status",
                "1 for each actor's current status (running, restarting, stopped,"
                " unresponsive), 0 for the others.",
                labels=["actor", "status"],
            ),
            GaugeMetricFamily(
                "tradingbot_actor_mailbox_depth",
                "Messages waiting for each actor (its inbox and those parked during a restart).",
                labels=["actor"],
            ),
            GaugeMetricFamily(
                "tradingbot_actors_unresponsive",
                "Critical actors that missed their liveness deadline.",
            ),
            GaugeMetricFamily(
                "tradingbot_event_spool_depth",
                "Events waiting in the spool for the database to come back.",
            ),
            GaugeMetricFamily(
                "tradingbot_event_spool_bytes", "Bytes the spooled events occupy on disk."
            ),
            GaugeMetricFamily(
                "tradingbot_event_spool_oldest_age_seconds",
                "Age of the oldest spooled event; 0 when the spool is empty.",
            ),
            GaugeMetricFamily(
                "tradingbot_event_stream_subscribers",
                "Open live event streams (WebSocket clients of /api/events/stream).",
            ),
            GaugeMetricFamily(
                "tradingbot_notify_outbox_depth",
                "Notification e-mails written to the outbox and not yet sent.",
            ),
            GaugeMetricFamily(
                "tradingbot_notify_outbox_oldest_age_seconds",
                "Age of the oldest pending notification e-mail; 0 when none is pending.",
            ),
            GaugeMetricFamily(
                "tradingbot_notify_failed_mails",
                "Notification e-mails refused permanently by the mail server (kept as failed).",
            ),
            GaugeMetricFamily(
                "tradingbot_notify_server_up",
                "1 when the last contact with the mail server succeeded, 0 when it failed.",
            ),
            GaugeMetricFamily(
                "tradingbot_trading_blocked",
                "1 while new orders are refused (reconciliation pending, failed or with"
                " discrepancies to accept, or the kill switch paused or tripped), 0 when"
                " trading is allowed.",
            ),
            GaugeMetricFamily(
                "tradingbot_kill_switch",
                "The kill switch: 1 for its current mode (running, paused or tripped).",
                labels=["mode"],
            ),
        )

    def _fill(
        self,
        info: GaugeMetricFamily,
        status: GaugeMetricFamily,
        mailbox: GaugeMetricFamily,
        unresponsive: GaugeMetricFamily,
        spool_depth: GaugeMetricFamily,
        spool_bytes: GaugeMetricFamily,
        spool_age: GaugeMetricFamily,
        subscribers: GaugeMetricFamily,
        outbox_depth: GaugeMetricFamily,
        outbox_age: GaugeMetricFamily,
        mail_failed: GaugeMetricFamily,
        mail_server_up: GaugeMetricFamily,
        trading_blocked: GaugeMetricFamily,
        kill_switch: GaugeMetricFamily,
    ) -> None:
        runtime = self._runtime
        info.add_metric([__version__], 1)
        tree = runtime.tree
        if tree is not None:
            for node in tree.snapshot().walk():
                for name in ACTOR_STATUSES:
                    status.add_metric([node.id, name], 1 if node.status == name else 0)
                mailbox.add_metric([node.id], node.mailbox)
        unresponsive.add_metric([], 0 if tree is None else len(tree.unresponsive()))
        spool = runtime.spool.stats()
        spool_depth.add_metric([], spool.depth)
        spool_bytes.add_metric([], spool.size_bytes)
        age = 0.0
        if spool.oldest is not None:
            age = max(0.0, (datetime.now(UTC) - spool.oldest).total_seconds())
        spool_age.add_metric([], age)
        subscribers.add_metric([], runtime.hub.subscribers)
        mail = runtime.notify_status.snapshot()
        outbox_depth.add_metric([], mail["outbox_depth"])
        outbox_age.add_metric([], mail["oldest_pending_age_s"])
        mail_failed.add_metric([], mail["failed"])
        if mail["server"] != "unknown":
            mail_server_up.add_metric([], 1 if mail["server"] == "up" else 0)
        trading_blocked.add_metric([], 0 if runtime.broker_status.trading_blocked() is None else 1)
        if runtime.kill_switch is not None:
            mode = runtime.kill_switch.state().mode
            for name in TradingMode:
                kill_switch.add_metric([name.value], 1 if name is mode else 0)


def _spool_write_failures() -> CounterMetricFamily:
    return CounterMetricFamily(
        "tradingbot_event_spool_write_failures",
        "Appends to the event spool that failed (disk full, I/O error, read-only, size"
        " limit): their events waited in memory and durable records were refused.",
    )


def _mails_sent() -> CounterMetricFamily:
    return CounterMetricFamily(
        "tradingbot_notify_mails_sent",
        "Notification e-mails delivered by this process (SMTP or .eml files).",
    )
