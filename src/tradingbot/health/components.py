"""The product's component checks, in report order: what ``/api/health`` aggregates.

:func:`component_checks` is the one list; ``/api/health`` reports the worst status of
every check in it, and each component also has its own endpoint
(``/api/health/<component>``). The sources are read when a check runs, so a check sees
the actor tree and the broker as they are now, across restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tradingbot.broker import BrokerStatus
from tradingbot.config import Config
from tradingbot.events.spool import EventSpool
from tradingbot.health.checks import (
    DiskThresholds,
    NamedCheck,
    broker_check,
    database_check,
    database_stats_check,
    disk_check,
    log_file_check,
    not_configured_check,
    notifier_check,
    process_check,
    spool_check,
    supervision_check,
    trading_check,
)
from tradingbot.health.model import Check
from tradingbot.logconfig import log_file_state
from tradingbot.logsink import LogFileState
from tradingbot.notify import NotifyStatus
from tradingbot.recovery.runlock import run_lock_check
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree
from tradingbot.trading.state import TradingState

BROKER_DOWN_GRACE_S = 60.0  # not synced for longer than this: /api/health/broker fails


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSources:
    """What the checks look at. ``tree`` and ``lock_lost`` are read at each run."""

    database: Database
    tree: Callable[[], SupervisionTree | None]
    spool: EventSpool
    notify_status: NotifyStatus
    broker_status: BrokerStatus
    lock_lost: Callable[[], str | None]
    log_file: Callable[[], LogFileState | None] = log_file_state
    trading_state: Callable[[], TradingState | None] = lambda: None
    # The scheduler's per-job check (tradingbot.scheduler.health); None: not running one.
    scheduler: Callable[[], list[Check]] | None = None
    # The IB Gateway's restart window (tradingbot.trading.guards); None: none configured.
    restart_window: Callable[[], list[Check]] | None = None
    broker_expected_down: Callable[[], str | None] = lambda: None


def component_checks(config: Config, sources: HealthSources) -> list[NamedCheck]:
    """Every component check, in report order."""

    def tree_check() -> list[Check]:
        tree = sources.tree()
        assert tree is not None, "health checks run only while the tree exists"
        return supervision_check(tree)()

    thresholds = DiskThresholds(
        warn_free_mb=config.disk_warn_free_mb, fail_free_mb=config.disk_fail_free_mb
    )
    database = sources.database
    return [
        NamedCheck(
            component="database",
            measurement="responseTime",
            run=database_check(database, config.health_check_timeout_s),
        ),
        NamedCheck(component="supervision", measurement="actors", run=tree_check),
        NamedCheck(
            component="disk",
            measurement="freeSpace",
            run=disk_check({"home": config.home, "logs": config.log_dir}, thresholds),
        ),
        NamedCheck(component="events", measurement="spool", run=spool_check(sources.spool)),
        NamedCheck(
            component="notifier", measurement="outbox", run=notifier_check(sources.notify_status)
        ),
        NamedCheck(
            component="broker",
            measurement="connection",
            run=broker_check(
                sources.broker_status, BROKER_DOWN_GRACE_S, sources.broker_expected_down
            ),
        ),
        NamedCheck(
            component="trading",
            measurement="gate",
            run=trading_check(sources.broker_status, sources.trading_state),
        ),
        *(
            []
            if sources.restart_window is None
            else [
                NamedCheck(
                    component="trading", measurement="restartWindow", run=sources.restart_window
                )
            ]
        ),
        NamedCheck(
            component="scheduler",
            measurement="jobs",
            run=sources.scheduler
            or not_configured_check("scheduler", "jobs", "no scheduler in this process"),
        ),
        NamedCheck(component="logs", measurement="file", run=log_file_check(sources.log_file)),
        NamedCheck(component="process", measurement="metrics", run=process_check(time.monotonic())),
        NamedCheck(component="runLock", measurement="held", run=run_lock_check(sources.lock_lost)),
        NamedCheck(
            component="database",
            measurement="statistics",
            run=database_stats_check(database),
            slow=True,
        ),
    ]
