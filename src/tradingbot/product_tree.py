"""The product's supervision tree: which actors run, in which order, with which rules.

:func:`root_spec` is the tree ``trading-bot run`` starts (:class:`~tradingbot.runtime.Runtime`
builds each actor's factory and hands them in): the order children start in (and stop in
reverse), which are critical, their shutdown and start bounds, and the root's restart
intensity. Wiring only; what each actor does lives in its package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from tradingbot.config import Config
from tradingbot.events.event_logger import EventLoggerActor, EventLoggerSettings
from tradingbot.events.hub import EventHub
from tradingbot.events.spool import EventSpool
from tradingbot.health import HealthState
from tradingbot.health.actor import HealthActor
from tradingbot.health.checks import NamedCheck
from tradingbot.metrics import NO_EVENT_COUNTERS, EventCounters
from tradingbot.recovery.heartbeat import HeartbeatActor
from tradingbot.storage import Database
from tradingbot.supervision import (
    Backoff,
    ChildSpec,
    Strategy,
    SupervisedActor,
    supervisor,
    worker,
)

ROOT_INTENSITY = 3
ROOT_PERIOD_S = 5.0
BROKER_BACKOFF = Backoff(min_s=0.5, max_s=30.0, reset_after_s=60.0)


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
    scheduler: Callable[[], SupervisedActor] | None = None,
    risk: Callable[[], SupervisedActor] | None = None,
    restart_window: Callable[[], SupervisedActor] | None = None,
    strategies: ChildSpec | None = None,
) -> ChildSpec:
    """The product's tree. Children start in this order and stop in reverse.

    The event logger comes first: everything after it records events, and it is the
    last to stop, so the final events of a shutdown are still stored. The notifier
    (when given) comes next: it must be up before anything that mails (a crash alert of
    a later actor), and it stops after them, finishing the delivery pass in progress.
    It is *critical* like the others: its SMTP I/O runs on its own sender thread, so an
    SMTP outage never makes it miss a liveness probe (see ``docs/notifications.md``).
    The strategies (when any) come after the broker, the reconciler and the scheduler:
    each waits, in its own actor, for the reconciliation gate before it trades. The
    health actor comes last: its first report, taken in its setup, sees every other
    actor running.
    """
    settings = EventLoggerSettings.from_config(config)
    if scheduler is not None:  # retention is the scheduler's daily event_retention job
        settings = dataclasses.replace(settings, retention_interval_s=None)
    schedulers = [] if scheduler is None else [worker("scheduler", scheduler, shutdown_s=5.0)]
    # The daily loss limit's monitor: up before the broker that tells it the P&L.
    risks = [] if risk is None else [worker("risk", risk, shutdown_s=5.0)]
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
    # The IB Gateway's restart window (when configured) gates trading like the reconciler.
    restart_windows = (
        []
        if restart_window is None
        else [worker("restart_window", restart_window, shutdown_s=5.0, critical=False)]
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
            *risks,
            *brokers,
            *reconcilers,
            *restart_windows,
            *schedulers,
            *([] if strategies is None else [strategies]),
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
