"""The component checks. Each is a plain callable returning checks; the health actor
runs every one on a worker thread with its own timeout, so a hung dependency turns
into a failed check instead of a hung endpoint.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from tradingbot.broker import BrokerStatus, ConnectionState
from tradingbot.broker.status import LIVE_ACCOUNT_GATE, RECONCILIATION_GATE, RESTART_WINDOW_GATE
from tradingbot.events.spool import EventSpool
from tradingbot.health.model import FAIL, PASS, WARN, Check, Status
from tradingbot.logsink import LogFileState
from tradingbot.notify import NotifyStatus
from tradingbot.storage import Database, StorageError
from tradingbot.supervision import ActorSnapshot, SupervisionTree
from tradingbot.trading.state import TradingMode, TradingState

CheckFn = Callable[[], list[Check]]
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedCheck:
    """A check with the component it reports on (for synthesised failures)."""

    component: str
    measurement: str
    run: CheckFn
    slow: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskThresholds:
    """Free space below ``warn_free_mb`` warns, below ``fail_free_mb`` fails."""

    warn_free_mb: float = 1024.0
    fail_free_mb: float = 256.0


def database_check(database: Database, timeout_s: float) -> CheckFn:
    """Round trip to the database: latency, or the error that stopped it."""

    def check() -> list[Check]:
        try:
            seconds = database.ping(timeout_s)
        except StorageError as exc:
            return [
                Check(
                    component="database",
                    measurement="responseTime",
                    component_type="datastore",
                    component_id=database.dialect,
                    status=FAIL,
                    output=str(exc),
                )
            ]
        status: Status = PASS if seconds < timeout_s / 2 else WARN
        return [
            Check(
                component="database",
                measurement="responseTime",
                component_type="datastore",
                component_id=database.dialect,
                status=status,
                observed_value=round(seconds * 1000, 3),
                observed_unit="ms",
            )
        ]

    return check


def database_stats_check(database: Database) -> CheckFn:
    """Counts of trades, signals and all events (the seed's database statistics)."""

    def check() -> list[Check]:
        try:
            summary = database.events.summary()
        except StorageError as exc:
            return [
                Check(
                    component="database",
                    measurement="events",
                    component_type="datastore",
                    status=WARN,
                    output=f"statistics unavailable: {exc}",
                )
            ]
        counts = {
            "trades": summary.by_type.get("TRADE", 0),
            "signals": summary.by_type.get("SIGNAL", 0),
            "events": summary.total,
        }
        return [
            Check(
                component="database",
                measurement=name,
                component_type="datastore",
                status=PASS,
                observed_value=value,
                observed_unit="count",
            )
            for name, value in counts.items()
        ]

    return check


def disk_check(paths: dict[str, Path], thresholds: DiskThresholds) -> CheckFn:
    """Free space of the state and log folders."""

    def check() -> list[Check]:
        checks = []
        for name, path in paths.items():
            try:
                free_mb = shutil.disk_usage(path).free / MIB
            except OSError as exc:
                checks.append(
                    Check(
                        component="disk",
                        measurement="freeSpace",
                        component_type="system",
                        component_id=name,
                        status=FAIL,
                        output=f"{path}: {exc.strerror or exc}",
                    )
                )
                continue
            status: Status = PASS
            output = None
            if free_mb < thresholds.fail_free_mb:
                status = FAIL
                output = f"{path}: less than {thresholds.fail_free_mb:.10g} MiB free"
            elif free_mb < thresholds.warn_free_mb:
                status = WARN
                output = f"{path}: less than {thresholds.warn_free_mb:.10g} MiB free"
            checks.append(
                Check(
                    component="disk",
                    measurement="freeSpace",
                    component_type="system",
                    component_id=name,
                    status=status,
                    observed_value=round(free_mb, 1),
                    observed_unit="MiB",
                    output=output,
                )
            )
        return checks

    return check


def supervision_check(tree: SupervisionTree) -> CheckFn:
    """The tree: fail on a stuck critical actor or an ended tree, warn on anything not running."""

    def check() -> list[Check]:
        snapshot = tree.snapshot()
        nodes = snapshot.walk()
        # A node never started yet is starting (the health actor's first report is
        # taken while the tree is still coming up), not a problem.
        problems = [
            node
            for node in nodes
            if node.status != "running" and not (node.status == "stopped" and not node.started_at)
        ]
        running = len(nodes) - len(problems)
        stuck_critical = [n.id for n in problems if n.status == "unresponsive" and n.critical]
        status: Status = PASS
        if tree.exit is not None or stuck_critical:
            status = FAIL
        elif problems:
            status = WARN
        output = "; ".join(_describe(node) for node in problems) or None
        if tree.exit is not None:
            output = f"tree ended: {tree.exit.reason}"
        return [
            Check(
                component="supervision",
                measurement="actors",
                component_type="component",
                status=status,
                observed_value=running,
                observed_unit="running",
                output=output,
            )
        ]

    return check


def _describe(node: ActorSnapshot) -> str:
    text = f"{node.id} is {node.status}"
    if node.last_failure is not None and node.status == "restarting":
        text += f" ({node.last_failure.summary()})"
    return text


def spool_check(spool: EventSpool) -> CheckFn:
    """Events waiting in the spool for the database: a degraded, not failed, state."""

    def check() -> list[Check]:
        depth = spool.depth()
        oldest = spool.oldest()
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        status: Status = WARN if depth else PASS
        output = f"{depth} events spooled while the database is unavailable" if depth else None
        return [
            Check(
                component="events",
                measurement="spoolDepth",
                component_type="component",
                status=status,
                observed_value=depth,
                observed_unit="events",
                output=output,
            ),
            Check(
                component="events",
                measurement="spoolOldestAge",
                component_type="component",
                status=status,
                observed_value=round(max(0.0, age), 3),
                observed_unit="s",
            ),
            _spool_write_check(spool),
        ]

    return check


def log_file_check(state: Callable[[], LogFileState | None]) -> CheckFn:
    """The log file: ``warn`` while it cannot be written (lines go to stdout only and the
    file is retried with a backoff), ``pass`` while it is, or when none is configured."""

    def check() -> list[Check]:
        current = state()
        if current is None:
            return [
                Check(
                    component="logs",
                    measurement="file",
                    component_type="system",
                    status=PASS,
                    output="no log file configured: lines go to stdout",
                )
            ]
        output = None
        if not current.ok:
            output = (
                f"{current.path} cannot be written ({current.error}); log lines go to stdout"
                " only, and the file is retried with a backoff"
            )
        return [
            Check(
                component="logs",
                measurement="file",
                component_type="system",
                component_id=str(current.path),
                status=PASS if current.ok else WARN,
                observed_value=current.lines_missed,
                observed_unit="lines not in the file",
                output=output,
            )
        ]

    return check


def _spool_write_check(spool: EventSpool) -> Check:
    """``fail`` while the spool cannot be appended to: events wait in memory only (bounded)
    and durable records are refused; a crash now would lose the ones in memory."""
    stats = spool.stats()
    output = None
    if stats.write_error is not None:
        output = (
            f"{stats.write_error}; events are held in memory only (bounded) and durable"
            " records are refused until the database or the spool takes them"
        )
    return Check(
        component="events",
        measurement="spoolWrite",
        component_type="component",
        status=PASS if stats.write_error is None else FAIL,
        observed_value=stats.write_failures,
        observed_unit="failed appends",
        output=output,
    )


OUTBOX_STALE_S = 900.0  # pending mail older than this warns even with the server up


def notifier_check(status: NotifyStatus, stale_s: float = OUTBOX_STALE_S) -> CheckFn:
    """The outbox: depth and oldest pending age. An SMTP outage with a working outbox is
    a warning (mail waits, durably); an outbox that cannot be written fails."""

    def check() -> list[Check]:
        facts = status.snapshot()
        depth = facts["outbox_depth"]
        age = facts["oldest_pending_age_s"]
        status_: Status = PASS
        output = None
        if facts["outbox_error"] is not None or facts["unstored"]:
            status_ = FAIL
            output = (
                f"the outbox cannot be written ({facts['outbox_error']}); "
                f"{facts['unstored']} notifications wait in memory"
            )
        elif facts["server"] == "down" and depth:
            status_ = WARN
            output = (
                f"mail server unreachable ({facts['last_error']}); {depth} mails wait "
                "in the outbox and will be sent when it is back"
            )
        elif depth and age > stale_s:
            status_ = WARN
            output = f"{depth} mails pending, the oldest for {age:.0f} s ({facts['last_error']})"
        component_id = facts["mode"]
        return [
            Check(
                component="notifier",
                measurement="outboxDepth",
                component_id=component_id,
                status=status_,
                observed_value=depth,
                observed_unit="mails",
                output=output,
            ),
            Check(
                component="notifier",
                measurement="outboxOldestAge",
                component_id=component_id,
                status=status_,
                observed_value=age,
                observed_unit="s",
            ),
        ]

    return check


def not_configured_check(component: str, measurement: str, what: str) -> CheckFn:
    """A component this version does not run yet: reported, not failed."""

    def check() -> list[Check]:
        return [
            Check(
                component=component,
                measurement=measurement,
                component_type="component",
                status=PASS,
                output=f"not configured: {what}",
            )
        ]

    return check


def trading_check(
    status: BrokerStatus, switch: Callable[[], TradingState | None] = lambda: None
) -> CheckFn:
    """May new orders go out? ``fail`` when a risk limit tripped the kill switch, ``warn``
    while an operator paused trading, reconciliation blocks it or a live account is not
    allowed (``TRADINGBOT_LIVE_TRADING``), else ``pass`` (also while the IB Gateway's
    restart window pauses orders: that is expected, the output says so). A pause or trip
    that could not be stored says so: a restart would not remember it."""

    def check() -> list[Check]:
        state = switch()
        blocked = status.trading_blocked(RECONCILIATION_GATE)
        result: Status = PASS
        output = "open"
        if (window := status.trading_blocked(RESTART_WINDOW_GATE)) is not None:
            output = window
        if blocked is not None:
            result, output = WARN, f"blocked: reconciliation ({blocked})"
        if (live := status.trading_blocked(LIVE_ACCOUNT_GATE)) is not None:
            # Reconciliation first: while the broker is unreachable both gates are closed,
            # and the account cannot be judged before the broker connects.
            result = WARN
            output = f"{output}; {live}" if blocked is not None else f"blocked: {live}"
        if state is not None and state.mode is TradingMode.PAUSED:
            result, output = WARN, state.gate_reason()
        if state is not None and state.mode is TradingMode.TRIPPED:
            result, output = FAIL, state.gate_reason()
        if state is not None and state.mode is not TradingMode.RUNNING and not state.durable:
            output += " (not stored: a restart would not remember it; pause again once the "
            output += "database is back)"
        return [
            Check(
                component="trading",
                measurement="gate",
                component_type="component",
                status=result,
                output=output,
            )
        ]

    return check


def broker_check(
    status: BrokerStatus,
    grace_s: float = 60.0,
    expected_down: Callable[[], str | None] = lambda: None,
) -> CheckFn:
    """The gateway connection, from the state the broker actor publishes (never asks it).

    Synced passes, with the age in seconds of the last successful round trip to the
    gateway; connecting and degraded warn; not synced for longer than ``grace_s``
    (a reconnect taking too long, a gateway that is down) fails. While
    ``expected_down()`` gives a reason (the IB Gateway's daily restart window), not
    synced passes, with that reason in the output.
    """

    def check() -> list[Check]:
        view = status.view()
        now = status.now()
        status_: Status
        output: str | None
        value: float | None = None
        if view.state == ConnectionState.SYNCED:
            status_, output = PASS, None
            if view.last_ok is not None:
                value = round(max(0.0, now - view.last_ok), 3)
        else:
            down_s = 0.0 if view.down_since is None else max(0.0, now - view.down_since)
            status_ = WARN
            if view.state != ConnectionState.DEGRADED and down_s > grace_s:
                status_ = FAIL
            output = f"broker {view.state.value} for {now - view.since:.1f} s"
            if view.last_error:
                output += f": {view.last_error}"
            if (expected := expected_down()) is not None:
                status_, output = PASS, f"{output} ({expected})"
        return [
            Check(
                component="broker",
                measurement="connection",
                component_type="component",
                component_id=f"{view.host}:{view.port}" if view.host else None,
                status=status_,
                observed_value=value,
                observed_unit="s" if value is not None else None,
                output=output,
            )
        ]

    return check


def process_check(started_monotonic: float) -> CheckFn:
    """CPU, memory, threads, open file descriptors and uptime of this process."""
    process = psutil.Process(os.getpid())
    process.cpu_percent(None)  # prime: the next call measures since now

    def check() -> list[Check]:
        with process.oneshot():
            values = [
                ("cpu", round(process.cpu_percent(None), 1), "percent"),
                ("memory", process.memory_info().rss, "bytes"),
                ("threads", process.num_threads(), "count"),
                ("openFiles", process.num_fds(), "count"),
            ]
        values.append(("uptime", round(time.monotonic() - started_monotonic, 3), "s"))
        return [
            Check(
                component="process",
                measurement=name,
                component_type="system",
                component_id=str(process.pid),
                status=PASS,
                observed_value=value,
                observed_unit=unit,
            )
            for name, value, unit in values
        ]

    return check
