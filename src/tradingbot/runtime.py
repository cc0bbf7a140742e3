"""The assembled process: database, this run's record and the supervision tree.

:class:`Runtime` is what ``trading-bot run`` starts and stops, and what the HTTP server
and the control socket observe. Its blocking methods run on a worker thread, never on
the event loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from tradingbot.broker import BrokerActor, BrokerSettings, BrokerStatus, MarketData, RiskBook
from tradingbot.config import Config
from tradingbot.events.hub import EventHub, Listener
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.events.spool import EventSpool
from tradingbot.events.system import SystemEventRecorder
from tradingbot.gateway import SimulatorThread
from tradingbot.gateway.paper import start_embedded
from tradingbot.health import HealthState
from tradingbot.health.components import HealthSources, component_checks
from tradingbot.logconfig import Redactor, log_file_state, set_log_file_listener
from tradingbot.logevents import record_log_file_change
from tradingbot.logsink import LogFileState
from tradingbot.metrics import RuntimeMetrics
from tradingbot.notify import (
    Notifier,
    NotifySettings,
    NotifyStatus,
)
from tradingbot.notify.actor import EventsPublished, NotifierActor
from tradingbot.notify.routing import record_mail_failed
from tradingbot.product_tree import root_spec
from tradingbot.recovery import (
    CrashReport,
    RunLock,
    RunLockMonitor,
    report_crash,
)
from tradingbot.recovery.cleanstop import clean_stop_deadline, record_clean_stop
from tradingbot.recovery.followup import CrashFollowUp, release_dead_claims
from tradingbot.recovery.lock_events import watch_run_lock
from tradingbot.recovery.reconciler import ReconcilerActor, ReconcileResult, ReconcileSettings
from tradingbot.recovery.run_start import open_run
from tradingbot.scheduler import nyse
from tradingbot.scheduler.actor import SchedulerActor, SchedulerSettings, shifted_clock
from tradingbot.scheduler.health import scheduler_check
from tradingbot.scheduler.shipped import (
    after_reconciliation,
    bar_update,
    broker_account,
    broker_bars,
    shipped_jobs,
)
from tradingbot.scheduler.status import SchedulerStatus
from tradingbot.storage import Database, RunRecord
from tradingbot.storage.outbox import OutboxRecord
from tradingbot.strategies.host import StrategyHost
from tradingbot.supervision import (
    SupervisedActor,
    SupervisionTree,
)
from tradingbot.trading import KillSwitch, TradingState
from tradingbot.trading.guards import TradingGuards
from tradingbot.trading.risk_setup import loss_limit_actor, loss_limit_flatten, risk_book

log = structlog.get_logger(__name__)

FILL_MEMORY = timedelta(days=8)  # gateways report executions of the last days at most


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
        # Set by stop(): whether this run's clean stop reached the database (None: not
        # attempted, because the run never started or the tree failed).
        self.clean_stop_recorded: bool | None = None
        self.reconciliations: list[ReconcileResult] = []  # this process's, oldest first
        self._follow_up: CrashFollowUp | None = None
        self.kill_switch: KillSwitch | None = None  # pause/resume; read by health, shell, HTTP
        self.risk_book: RiskBook | None = None  # the risk limits and today's memory of them
        # The live-account and restart-window gates (start_gate: for the strategy host).
        self.guards = TradingGuards(config, self.broker_status, lambda: self.recorder)
        # The scheduler's jobs, as health, the shell and /metrics see them; its wall
        # clock (shifted by TRADINGBOT_SCHEDULER_CLOCK, a test/ops setting).
        self.scheduler_status = SchedulerStatus()
        self.scheduler_now = shifted_clock(config.scheduler_clock)
        # Called (monitor thread) when another process took the run lock after we lost
        # it: the service stops this process then.
        self.on_run_lock_taken: Callable[[], None] | None = None
        # Strategies start only when this says None (besides reconciliation): by default
        # the live-account check; an embedding program may add its own condition.
        self.strategy_start_gate: Callable[[], str | None] = self.guards.start_gate
        self.strategies: StrategyHost | None = None
        self._strategy_listener: Listener | None = None

    def broker_settings(self) -> BrokerSettings:
        """Where the broker connects: the in-process simulator, or the configured gateway."""
        port = None if self.simulator is None else self.simulator.port
        return BrokerSettings.from_config(self.config, simulator_port=port)

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
        try:
            config.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:  # logs:file says so; stdout still gets every line
            log.warning("log_folder_unusable", path=str(config.log_dir), error=str(exc))
        database = self.database = Database.open(config.database_url)
        # The run lock, the schema, this run's record, the earlier runs that crashed.
        opened = open_run(
            database,
            account=self.account,
            run_id=self.run_id,
            started_at=self.started_at,
            crash_timeout_s=config.crash_timeout_s,
        )
        self.run_lock, self.run, self.crashes = opened.lock, opened.record, opened.crashes
        if config.broker == "sim":
            self.simulator = start_embedded(config.ib_account, config.home / "simulator.json")
            log.info("gateway_simulator_started", host="127.0.0.1", port=self.simulator.port)
        notifier = self.notifier = Notifier(
            database,
            NotifySettings.from_config(config),
            status=self.notify_status,
            on_failed=self._mail_failed,
            owner=self.run_id,
        )
        release_dead_claims(self.crashes, notifier)
        self._follow_up = CrashFollowUp(database, notifier, self.crashes)
        broker_settings = self.broker_settings()
        # Fills recorded by earlier runs: the gateway reports the day's executions again
        # at every connect, and each must reach the event stream (and its e-mail) once.
        self.broker_status.known_fills(
            database.events.trade_exec_ids(self.started_at - FILL_MEMORY)
        )

        # The pre-trade risk limits, with today's memory of them read back.
        book = self.risk_book = risk_book(database, config, self.account)

        def broker() -> SupervisedActor:
            assert self.tree is not None
            return BrokerActor(
                broker_settings,
                self.broker_status,
                self.recorder,
                self.market_data,
                risk=book,
                pnl_sink=self.tree.handle("risk"),
            )

        reconcile_settings = ReconcileSettings.from_config(config)

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
        # A paused bot restarts paused: the kill switch closes its gate before any actor.
        self.kill_switch = KillSwitch(
            database, self.account, self.broker_status, lambda: self.recorder
        )
        self.kill_switch.load()
        switch = self.kill_switch
        self.guards.start()

        strategies = self.strategies = StrategyHost.from_config(
            config,
            database,
            broker=lambda: self._tree().handle("broker"),
            status=self.broker_status,
            market=self.market_data,
            recorder=lambda: self.recorder,
            start_gate=lambda: self.strategy_start_gate(),
        )
        tree = SupervisionTree(
            root_spec(
                config,
                database,
                self.run_id,
                self.spool,
                self.hub,
                component_checks(
                    config,
                    HealthSources(
                        database=database,
                        tree=lambda: self.tree,
                        spool=self.spool,
                        notify_status=self.notify_status,
                        broker_status=self.broker_status,
                        lock_lost=lambda: self.lock_lost,
                        trading_state=self._trading_state,
                        scheduler=scheduler_check(self.scheduler_status, self.scheduler_now),
                        restart_window=self.guards.health_check(),
                        broker_expected_down=self.guards.broker_expected_down,
                    ),
                ),
                self.health,
                metrics=self.metrics,
                broker=broker,
                broker_start_timeout_s=broker_settings.connect_timeout_s + 10.0,
                reconciler=reconciler,
                risk=loss_limit_actor(
                    book,
                    switch,
                    lambda: self.recorder,
                    loss_limit_flatten(lambda: tree.handle("broker"), self.broker_status),
                ),
                restart_window=self.guards.actor(),
                scheduler=lambda: SchedulerActor(
                    shipped_jobs(
                        database,
                        nyse(),
                        self.account,
                        broker_account(lambda: self.tree, self.broker_status),
                        after_reconciliation(self.reconciliations, enabled=True),
                        bars=bar_update(
                            database,
                            nyse(),
                            strategies.symbols,
                            broker_bars(lambda: self.tree, self.broker_status),
                            lambda: self.recorder,
                        ),
                        now=self.scheduler_now,
                    ),
                    database,
                    nyse(),
                    self.scheduler_status,
                    SchedulerSettings(
                        owner=self.run_id,
                        tick_s=config.scheduler_tick_s,
                        dead_owners=tuple(r.recovery.run_id for r in self.crashes),
                        account=self.account,
                    ),
                    now=self.scheduler_now,
                ),
                notifier=lambda: NotifierActor(
                    notifier, stop_timeout_s=config.shutdown_timeout_s / 4
                ),
                strategies=strategies.spec(),
            ),
            probe_interval_s=config.liveness_probe_interval_s,
            probe_deadline_s=config.liveness_deadline_s,
        )
        self.tree = tree
        self.recorder = EventRecorder(
            tree.handle("event_logger"), scrub=Redactor(config.secrets()).redact
        )
        tree.add_listener(SystemEventRecorder(self.recorder))
        set_log_file_listener(self._log_file_changed)
        failing = log_file_state()
        if failing is not None and not failing.ok:
            self._log_file_changed(failing)  # it failed before anyone listened
        # Durable events reach the notifier by name: parked across its restarts.
        notifier_handle = tree.handle("notifier")
        self._event_listener = self.hub.listen(
            lambda events: notifier_handle.tell(EventsPublished(tuple(events)))
        )
        self.metrics.watch(tree)  # tradingbot_actor_restarts_total
        self._strategy_listener = strategies.attach(tree, self.hub)
        tree.start()
        log.info("tree_started", run_id=self.run_id, actors=tree.actor_ids())
        self.guards.started()
        self.lock_monitor = watch_run_lock(
            self.run_lock,
            config.heartbeat_interval_s,
            lambda: self.recorder,
            on_taken=self._run_lock_taken,
        )
        for report in self.crashes:
            try:
                report_crash(self.recorder, report)
            except EventNotDurable as exc:
                log.error("crash_event_not_recorded", error=str(exc), **report.context())

    @property
    def lock_lost(self) -> str | None:
        """Why the run lock is not held right now (``None`` while it is)."""
        monitor = self.lock_monitor
        return None if monitor is None else monitor.lost

    def _reconciled(self, result: ReconcileResult) -> None:
        """After each reconciliation and acceptance (reconciler thread)."""
        self.reconciliations.append(result)
        self.guards.on_reconciled(result)
        if self._follow_up is not None:
            self._follow_up.on_reconciled(result.record)

    def _tree(self) -> SupervisionTree:
        assert self.tree is not None, "the tree is built before any actor starts"
        return self.tree

    def _trading_state(self) -> TradingState | None:
        return None if self.kill_switch is None else self.kill_switch.state()

    def _mail_failed(self, record: OutboxRecord, error: BaseException) -> None:
        if self.recorder is not None:
            record_mail_failed(self.recorder, record, error)

    def _log_file_changed(self, state: LogFileState) -> None:
        """The log file failed or works again (said once per episode, any thread)."""
        if self.recorder is not None:
            record_log_file_change(self.recorder, state)

    def _run_lock_taken(self) -> None:
        if self.on_run_lock_taken is not None:
            self.on_run_lock_taken()

    def stop(self) -> None:
        """Stop the tree in reverse order, then record the clean stop unless the tree had
        failed (retried while the database is down: :mod:`tradingbot.recovery.cleanstop`).

        The run lock is released last, after the clean stop is stored: a process that
        starts as soon as it is free must not take this run for a crash.
        """
        deadline = clean_stop_deadline(self.config.shutdown_timeout_s)
        set_log_file_listener(None)
        if self.lock_monitor is not None:
            self.lock_monitor.stop()
            self.lock_monitor = None
        for listener in (self._event_listener, self._strategy_listener):
            if listener is not None:
                listener.close()
        self._event_listener = self._strategy_listener = None
        failed = self.tree is not None and self.tree.exit is not None and not self.tree.exit.clean
        if self.tree is not None:
            self.tree.stop()
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None
        if self.database is not None:
            if self.run is not None and self.tree is not None and not failed:
                self.clean_stop_recorded = record_clean_stop(self.database, self.run_id, deadline)
            self.database.dispose()
            self.database = None
        if self.run_lock is not None:
            self.run_lock.release()
            self.run_lock = None
