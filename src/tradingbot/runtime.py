"""The assembled process: database, this run's record and the supervision tree.

:class:`Runtime` is what ``trading-bot run`` starts and stops, and what the HTTP server
and the control socket observe. Its blocking methods run on a worker thread, never on
the event loop.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from tradingbot import __version__
from tradingbot.actors.broker import BrokerActor, BrokerSettings
from tradingbot.broker import BrokerStatus
from tradingbot.broker.market import MarketData
from tradingbot.config import Config
from tradingbot.events import Severity
from tradingbot.events.event_logger import EventLoggerActor, EventLoggerSettings
from tradingbot.events.hub import EventHub, Listener
from tradingbot.events.model import SYSTEM
from tradingbot.events.policy import PersistPolicy
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.events.spool import EventSpool
from tradingbot.events.system import SystemEventRecorder
from tradingbot.gateway import SimulatorThread, build_simulator
from tradingbot.health import Check, HealthState
from tradingbot.health.actor import HealthActor, NamedCheck
from tradingbot.health.checks import (
    DiskThresholds,
    broker_check,
    database_check,
    database_stats_check,
    disk_check,
    not_configured_check,
    notifier_check,
    process_check,
    spool_check,
    supervision_check,
    trading_check,
)
from tradingbot.logconfig import Redactor
from tradingbot.metrics import NO_EVENT_COUNTERS, EventCounters, RuntimeMetrics
from tradingbot.notify import (
    NOTIFIER_SOURCE,
    RECOVERY_REPORT,
    Notifier,
    NotifySettings,
    NotifyStatus,
)
from tradingbot.notify.actor import EventsPublished, NotifierActor
from tradingbot.recovery import (
    CrashReport,
    LockHolder,
    RunLock,
    RunLockMonitor,
    acquire_run_lock,
    detect_crashes,
    process_is_gone,
    report_crash,
)
from tradingbot.recovery.heartbeat import HeartbeatActor
from tradingbot.recovery.reconciler import ReconcilerActor, ReconcileResult, ReconcileSettings
from tradingbot.recovery.runlock import run_lock_check
from tradingbot.storage import Database, RunRecord, StorageError
from tradingbot.storage.outbox import OutboxRecord
from tradingbot.supervision import (
    Backoff,
    ChildSpec,
    Strategy,
    SupervisedActor,
    SupervisionTree,
    supervisor,
    worker,
)

log = structlog.get_logger(__name__)

ROOT_INTENSITY = 3
ROOT_PERIOD_S = 5.0
BROKER_BACKOFF = Backoff(min_s=0.5, max_s=30.0, reset_after_s=60.0)
FILL_MEMORY = timedelta(days=8)  # gateways report executions of the last days at most
BROKER_DOWN_GRACE_S = 60.0  # not synced for longer than this: /api/health/broker fails


def event_logger_settings(config: Config) -> EventLoggerSettings:
    return EventLoggerSettings(
        policy=PersistPolicy.of(
            config.events_persist_types, Severity.parse(config.events_min_severity)
        ),
        batch_size=config.events_batch_size,
        flush_interval_s=config.events_flush_interval_s,
        retention_days=config.event_retention_days,
    )


def health_checks(config: Config, runtime: Runtime, database: Database) -> list[NamedCheck]:
    """Every component check, in report order. The tree is read when a check runs."""

    def tree_check() -> list[Check]:
        assert runtime.tree is not None
        return supervision_check(runtime.tree)()

    thresholds = DiskThresholds(
        warn_free_mb=config.disk_warn_free_mb, fail_free_mb=config.disk_fail_free_mb
    )
    timeout = config.health_check_timeout_s
    return [
        NamedCheck(
            component="database",
            measurement="responseTime",
            run=database_check(database, timeout),
        ),
        NamedCheck(component="supervision", measurement="actors", run=tree_check),
        NamedCheck(
            component="disk",
            measurement="freeSpace",
            run=disk_check({"home": config.home, "logs": config.log_dir}, thresholds),
        ),
        NamedCheck(component="events", measurement="spool", run=spool_check(runtime.spool)),
        NamedCheck(
            component="notifier", measurement="outbox", run=notifier_check(runtime.notify_status)
        ),
        NamedCheck(
            component="broker",
            measurement="connection",
            run=broker_check(runtime.broker_status, BROKER_DOWN_GRACE_S),
        ),
        NamedCheck(
            component="trading", measurement="gate", run=trading_check(runtime.broker_status)
        ),
        NamedCheck(
            component="scheduler",
            measurement="status",
            run=not_configured_check("scheduler", "status", "the scheduler is not built yet"),
        ),
        NamedCheck(component="process", measurement="metrics", run=process_check(time.monotonic())),
        NamedCheck(
            component="runLock", measurement="held", run=run_lock_check(lambda: runtime.lock_lost)
        ),
        NamedCheck(
            component="database",
            measurement="statistics",
            run=database_stats_check(database),
            slow=True,
        ),
    ]


def root_spec(
    config: Config,
    database: Database,
    run_id: str,
    spool: EventSpool,
    hub: EventHub,
    checks: list[NamedCheck],
    health: HealthState,
    *,
    metrics: EventCounters = NO_EVENT_COUNTERS,
    broker: Callable[[], SupervisedActor] | None = None,
    broker_start_timeout_s: float = 30.0,
    notifier: Callable[[], SupervisedActor] | None = None,
    reconciler: Callable[[], SupervisedActor] | None = None,
) -> ChildSpec:
    """The product's tree. Children start in this order and stop in reverse.

    The event logger comes first: everything after it records events, and it is the
    last to stop, so the final events of a shutdown are still stored. The notifier
    (when given) comes next: it must be up before anything that mails (a crash alert of
    a later actor), and it stops after them, finishing the delivery pass in progress.
    It is *critical* like the others: its SMTP I/O runs on its own sender thread, so an
    SMTP outage never makes it miss a liveness probe (see ``docs/notifications.md``).
    The health actor comes last: its first report, taken in its setup, sees every other
    actor running.
    """
    settings = event_logger_settings(config)
    # The broker (when given) reconnects through its supervisor's backoff: its restarts
    # do not count towards the root's intensity, an unreachable gateway never ends the tree.
    brokers = (
        []
        if broker is None
        else [
            worker(
                "broker",
                broker,
                shutdown_s=10.0,
                start_timeout_s=broker_start_timeout_s,
                backoff=BROKER_BACKOFF,
            )
        ]
    )
    notifiers = (
        []
        if notifier is None
        else [worker("notifier", notifier, shutdown_s=config.shutdown_timeout_s / 2)]
    )
    # The reconciler gates trading: it opens the gate only when our books match the
    # broker's. Not critical: a slow broker query must not withhold the systemd watchdog
    # (the gate stays as it was meanwhile).
    reconcilers = (
        []
        if reconciler is None
        else [worker("reconciler", reconciler, shutdown_s=10.0, critical=False)]
    )
    return supervisor(
        "root",
        [
            worker(
                "event_logger",
                lambda: EventLoggerActor(database, spool, hub, settings, metrics=metrics),
                shutdown_s=config.shutdown_timeout_s / 2,
            ),
            *notifiers,
            worker(
                "heartbeat",
                lambda: HeartbeatActor(database, run_id, config.heartbeat_interval_s),
                shutdown_s=5.0,
            ),
            *brokers,
            *reconcilers,
            worker(
                "health",
                lambda: HealthActor(
                    checks,
                    health,
                    interval_s=config.health_interval_s,
                    timeout_s=config.health_check_timeout_s,
                ),
                shutdown_s=5.0,
                start_timeout_s=config.health_check_timeout_s + 10.0,
                critical=False,
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
        self.metrics = RuntimeMetrics()  # Prometheus counters, kept across tree restarts
        self.health = HealthState(config.health_interval_s)
        self.broker_status = BrokerStatus()  # written by the broker actor, read by health
        self.market_data = MarketData()  # subscriptions survive broker restarts
        self.simulator: SimulatorThread | None = None  # TRADINGBOT_BROKER=sim
        # Outbox depth and SMTP state: written by the notifier, read by health and metrics.
        self.notify_status = NotifyStatus("eml" if config.smtp_host is None else "smtp")
        self.notifier: Notifier | None = None  # the outbox API (tradingbot.notify)
        self._event_listener: Listener | None = None
        self.account = config.ib_account or ""  # the run lock is per database and account
        self.run_lock: RunLock | None = None
        self.lock_monitor: RunLockMonitor | None = None
        self.crashes: list[CrashReport] = []  # earlier runs found crashed at this start
        self.reconciliations: list[ReconcileResult] = []  # this process's, oldest first
        self._crashes_settled = False
        # Called with each crash report once its SYSTEM event is stored: the seam for the
        # recovery-report e-mail (the notifier subscribes here at integration).
        self.crash_listeners: list[Callable[[CrashReport], None]] = []
        # Called (monitor thread) when another process took the run lock after we lost
        # it: the service stops this process then.
        self.on_run_lock_taken: Callable[[], None] | None = None

    def broker_settings(self) -> BrokerSettings:
        """Where the broker connects: the in-process simulator, or the configured gateway."""
        config = self.config
        host, port = config.ib_host, config.ib_port
        if self.simulator is not None:
            host, port = "127.0.0.1", self.simulator.port
        return BrokerSettings(
            host=host,
            port=port,
            client_id=config.ib_client_id,
            account=config.ib_account,
            connect_timeout_s=config.ib_connect_timeout_s,
            request_timeout_s=config.ib_request_timeout_s,
            probe_interval_s=config.ib_probe_interval_s,
            probe_timeout_s=config.ib_probe_timeout_s,
            max_probe_misses=config.ib_probe_misses,
        )

    def start(self) -> None:
        """Open and migrate the database, record this run, start the tree (blocking)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        config = self.config
        # The folders the health checks watch exist from the start (the CLI's logging
        # setup creates logs/ too; an embedded runtime may not have it).
        config.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        database = self.database = Database.open(config.database_url)
        # The run lock first: a live process's run is not a crash (AlreadyRunning leaves).
        self.run_lock = acquire_run_lock(
            database,
            self.account,
            pid=os.getpid(),
            host=socket.gethostname(),
            run_id=self.run_id,
        )
        applied = database.upgrade()
        if applied:
            log.info("database_migrated", revisions=applied, url=database.redacted_url)
        self.run = database.system_state.start_run(
            run_id=self.run_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            version=__version__,
            started_at=self.started_at,
            account=self.account,
        )
        self.crashes = detect_crashes(
            database,
            account=self.account,
            current_run_id=self.run_id,
            crash_timeout_s=config.crash_timeout_s,
            now=datetime.now(UTC),
        )
        if config.broker == "sim":
            # The same code path as a real gateway, on an ephemeral loopback port.
            # Its account is the configured one, so TRADINGBOT_IB_ACCOUNT works with it too.
            simulator = build_simulator(seed=0, account=config.ib_account)
            self.simulator = SimulatorThread(simulator, host="127.0.0.1", port=0)
            port = self.simulator.start()
            log.info("gateway_simulator_started", host="127.0.0.1", port=port)
        notifier = self.notifier = Notifier(
            database,
            NotifySettings.from_config(config),
            status=self.notify_status,
            on_failed=self._mail_failed,
            owner=self.run_id,
        )
        self._release_dead_claims(notifier)
        broker_settings = self.broker_settings()
        # Fills recorded by earlier runs: the gateway reports the day's executions again
        # at every connect, and each must reach the event stream (and its e-mail) once.
        self.broker_status.known_fills(
            database.events.trade_exec_ids(self.started_at - FILL_MEMORY)
        )

        def broker() -> SupervisedActor:
            return BrokerActor(broker_settings, self.broker_status, self.recorder, self.market_data)

        reconcile_settings = ReconcileSettings(
            account=self.account,
            interval_s=config.reconcile_interval_s,
            cost_tolerance=config.reconcile_cost_tolerance,
            auto_accept=config.reconcile_accept,
            query_timeout_s=config.ib_request_timeout_s + 5.0,
        )

        def reconciler() -> SupervisedActor:
            assert self.tree is not None
            return ReconcilerActor(
                database=database,
                broker=self.tree.handle("broker"),
                status=self.broker_status,
                recorder=self.recorder,
                settings=reconcile_settings,
                run_id=self.run_id,
                on_result=self._reconciled,
            )

        # Nothing trades before our books and the broker's agree (the reconciler opens it).
        self.broker_status.block_trading("reconciliation pending: not run yet")

        tree = SupervisionTree(
            root_spec(
                config,
                database,
                self.run_id,
                self.spool,
                self.hub,
                health_checks(config, self, database),
                self.health,
                metrics=self.metrics,
                broker=broker,
                broker_start_timeout_s=broker_settings.connect_timeout_s + 10.0,
                reconciler=reconciler,
                notifier=lambda: NotifierActor(
                    notifier, stop_timeout_s=config.shutdown_timeout_s / 4
                ),
            ),
            probe_interval_s=config.liveness_probe_interval_s,
            probe_deadline_s=config.liveness_deadline_s,
        )
        self.tree = tree
        self.recorder = EventRecorder(
            tree.handle("event_logger"), scrub=Redactor(config.secrets()).redact
        )
        tree.add_listener(SystemEventRecorder(self.recorder))
        # Durable events reach the notifier by name: parked across its restarts.
        notifier_handle = tree.handle("notifier")
        self._event_listener = self.hub.listen(
            lambda events: notifier_handle.tell(EventsPublished(tuple(events)))
        )
        self.metrics.watch(tree)  # tradingbot_actor_restarts_total
        tree.start()
        log.info("tree_started", run_id=self.run_id, actors=tree.actor_ids())
        self.lock_monitor = RunLockMonitor(
            self.run_lock,
            config.heartbeat_interval_s,
            on_lost=self._run_lock_lost,
            on_regained=self._run_lock_regained,
            on_taken=self._run_lock_taken,
        ).start()
        for report in self.crashes:
            self._report_crash(report)

    @property
    def lock_lost(self) -> str | None:
        """Why the run lock is not held right now (``None`` while it is)."""
        monitor = self.lock_monitor
        return None if monitor is None else monitor.lost

    def _report_crash(self, report: CrashReport) -> None:
        """The durable SYSTEM event at ERROR, then the listeners (the report e-mail)."""
        assert self.recorder is not None
        try:
            report_crash(self.recorder, report)
        except EventNotDurable as exc:
            log.error("crash_event_not_recorded", error=str(exc), **report.context())
        for listener in self.crash_listeners:
            try:
                listener(report)
            except Exception:  # one failing listener must not hide the crash from others
                log.exception("crash_listener_failed", listener=repr(listener))

    def _reconciled(self, result: ReconcileResult) -> None:
        """After each reconciliation and acceptance (reconciler thread): until one passes,
        this start's crash reports get its discrepancy list (``recovery_events``) and the
        recovery report is mailed (once per crash); the one that passes, or the operator's
        acceptance, settles them (``reconciled`` or ``accepted``)."""
        self.reconciliations.append(result)
        if self._crashes_settled or not self.crashes:
            return
        record = result.record
        status = {"clean": "reconciled", "accepted": "accepted"}.get(record.status)
        self._crashes_settled = status is not None
        assert self.database is not None
        for report in self.crashes:
            try:
                self.database.recovery.update(
                    report.recovery.id,
                    at=datetime.now(UTC),
                    status=status,
                    discrepancies=list(record.discrepancies),
                )
            except StorageError as exc:
                log.error("recovery_event_not_updated", error=str(exc), id=report.recovery.id)
            self._send_recovery_report(report, result)

    def _send_recovery_report(self, report: CrashReport, result: ReconcileResult) -> None:
        """The recovery-report e-mail of one crash: the crashed run, the downtime and what
        the start reconciliation found (once per crash: its Message-ID derives from it)."""
        if self.notifier is None:
            return
        r, record = report.recovery, result.record
        accepted = record.status == "accepted"
        actions = {
            "missing_fill": "imported",
            "external_fill": "imported",
            "order_closed": "end recorded",
            "orphaned_order": "closed in our books" if accepted else "blocked",
        }
        discrepancies = [
            {
                "kind": d.get("kind"),
                "symbol": d.get("symbol") or d.get("order_ref") or "",
                "ours": d.get("ours"),
                "broker": d.get("broker"),
                "action": actions.get(str(d.get("kind")))
                or (("accepted" if accepted else "blocked") if d.get("blocking") else "reported"),
            }
            for d in record.discrepancies
        ]
        outcome = {
            "clean": "resumed",
            "accepted": f"resumed (accepted by {record.accepted_by})",
        }.get(record.status, "blocked until an operator accepts (reconcile accept)")
        stale = "heartbeat stale" if report.heartbeat_stale else "no clean stop"
        context = {
            "reason": f"a crash ({stale})",
            "detected_at": r.detected_at.isoformat(),
            "downtime_s": r.downtime_s,
            "outcome": outcome,
            "previous_run": {
                "pid": r.pid,
                "host": r.host,
                "version": r.version,
                "started_at": r.started_at.isoformat(),
                "last_heartbeat": r.last_heartbeat.isoformat(),
            },
            "discrepancies": discrepancies,
            "notes": [f"reconciliation {record.id} ({record.status}, {record.duration_s:.2f} s)"],
        }
        severity = Severity.WARNING if record.status == "clean" else Severity.ERROR
        try:
            self.notifier.enqueue(
                RECOVERY_REPORT, context, severity=severity, token=f"recovery:{r.id}"
            )
        except (StorageError, ValueError) as exc:
            log.error("recovery_report_not_queued", error=str(exc), id=r.id)

    def _release_dead_claims(self, notifier: Notifier) -> None:
        """Free the outbox claims of the crashed runs whose process is gone, so their mail
        goes out now. A crashed run on another host (or still running here, having lost
        its lock) keeps its claims until they expire: it may still be sending.
        """
        dead = sorted(
            {report.recovery.run_id for report in self.crashes if process_is_gone(report.recovery)}
        )
        if not dead:
            return
        try:
            freed = notifier.repository.release_claims_of(dead, datetime.now(UTC))
        except StorageError as exc:  # the claims simply expire
            log.warning("outbox_claims_not_released", error=str(exc), runs=dead)
            return
        if freed:
            log.info("outbox_claims_released", rows=freed, runs=dead)

    def _mail_failed(self, record: OutboxRecord, error: BaseException) -> None:
        """A mail refused permanently: an ERROR event (routing never mails ``mail_failed``)."""
        if self.recorder is not None:
            self.recorder.record(
                SYSTEM,
                f"mail refused permanently: {record.subject}",
                severity=Severity.ERROR,
                source=NOTIFIER_SOURCE,
                context={
                    "event": "mail_failed",
                    "message_id": record.message_id,
                    "kind": record.kind,
                    "error": f"{type(error).__name__}: {error}",
                },
            )

    def _system_event(self, severity: Severity, message: str, **context: object) -> None:
        if self.recorder is not None:
            self.recorder.record(
                SYSTEM, message, severity=severity, source="run_lock", context=context
            )

    def _run_lock_lost(self, reason: str) -> None:
        lock = "" if self.run_lock is None else self.run_lock.description
        self._system_event(
            Severity.ERROR, f"run lock lost: {reason}", event="run_lock_lost", lock=lock
        )

    def _run_lock_regained(self) -> None:
        lock = "" if self.run_lock is None else self.run_lock.description
        self._system_event(
            Severity.WARNING, f"run lock held again: {lock}", event="run_lock_regained", lock=lock
        )

    def _run_lock_taken(self, holder: LockHolder | None) -> None:
        who = "another process" if holder is None else holder.describe()
        self._system_event(
            Severity.CRITICAL,
            f"run lock taken by {who} while this process had lost it; stopping",
            event="run_lock_taken",
            holder=who,
        )
        if self.on_run_lock_taken is not None:
            self.on_run_lock_taken()

    def stop(self) -> None:
        """Stop the tree in reverse order (the heartbeat records the clean stop).

        The run lock is released last, after the clean stop is stored: a process that
        starts as soon as it is free must not take this run for a crash.
        """
        if self.lock_monitor is not None:
            self.lock_monitor.stop()
            self.lock_monitor = None
        if self._event_listener is not None:
            self._event_listener.close()
            self._event_listener = None
        if self.tree is not None:
            self.tree.stop()
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None
        if self.database is not None:
            self.database.dispose()
            self.database = None
        if self.run_lock is not None:
            self.run_lock.release()
            self.run_lock = None
