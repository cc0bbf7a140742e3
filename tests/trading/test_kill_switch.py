"""The kill switch in a running runtime: it gates orders, survives restarts, is audited
and mailed, and fails safe when the database cannot store it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.bot_config import bot_config
from support.waiting import wait_until
from tradingbot.broker import OrderRequest, TradingBlocked, place_order
from tradingbot.config import Config
from tradingbot.health.checks import trading_check
from tradingbot.runtime import Runtime
from tradingbot.storage import Database, EventQuery, StorageError
from tradingbot.trading import KILL_SWITCH_SOURCE, TradingMode


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A runtime on a SQLite file with the built-in simulator; mail goes to .eml files."""
    # STRATEGIES: no example strategy trading under the test.
    return bot_config(tmp_path, STRATEGIES="", HEARTBEAT_INTERVAL_S="0.2", HEALTH_INTERVAL_S="0.2")


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for runtime in reversed(started):
        runtime.stop()


def _start(config: Config, runtimes: list[Runtime]) -> Runtime:
    runtime = Runtime(config)
    runtimes.append(runtime)
    runtime.start()
    return runtime


def _switch_events(database: Database) -> list[str]:
    page = database.events.query(EventQuery(types=("RISK",), limit=100))
    return [
        str(e.context.get("event")) for e in reversed(page.events) if e.source == KILL_SWITCH_SOURCE
    ]


def _order(runtime: Runtime) -> str:
    assert runtime.tree is not None
    request = OrderRequest(symbol="AAPL", side="BUY", quantity=1, order_type="MKT")
    return place_order(runtime.tree.handle("broker"), runtime.broker_status, request, 10.0)


def test_pause_refuses_new_orders_and_resume_lets_them_through(
    config: Config, runtimes: list[Runtime]
) -> None:
    """Paused: an order is refused naming the operator and reason; resumed: it is placed."""
    runtime = _start(config, runtimes)
    switch = runtime.kill_switch
    assert switch is not None
    wait_until(lambda: runtime.broker_status.trading_blocked() is None, 30, "reconciled")

    result = switch.pause(by="shell uid 1000", reason="earnings at 16:00")
    assert result.changed
    assert result.state.mode is TradingMode.PAUSED
    with pytest.raises(TradingBlocked, match="paused by shell uid 1000: earnings at 16:00"):
        _order(runtime)

    assert switch.resume(by="shell uid 1000", reason="done").changed
    assert _order(runtime).startswith("TB-")
    assert runtime.database is not None
    assert _switch_events(runtime.database) == ["kill_switch_paused", "kill_switch_running"]


def test_a_second_pause_changes_nothing(config: Config, runtimes: list[Runtime]) -> None:
    """Pausing a paused bot keeps the first reason and records no second event."""
    runtime = _start(config, runtimes)
    assert runtime.kill_switch is not None
    first = runtime.kill_switch.pause(by="ops", reason="first")
    second = runtime.kill_switch.pause(by="ops", reason="second")
    assert not second.changed
    assert second.state.reason == "first" == first.state.reason
    assert runtime.database is not None
    assert _switch_events(runtime.database) == ["kill_switch_paused"]


def test_a_paused_bot_restarts_paused(config: Config, runtimes: list[Runtime]) -> None:
    """After a restart the gate is closed before anything can trade, with the same reason,
    and health says trading is paused."""
    first = _start(config, runtimes)
    assert first.kill_switch is not None
    first.kill_switch.pause(by="ops", reason="overnight")
    first.stop()
    runtimes.remove(first)

    second = _start(config, runtimes)
    assert second.kill_switch is not None
    state = second.kill_switch.state()
    assert (state.mode, state.reason, state.changed_by) == (TradingMode.PAUSED, "overnight", "ops")
    blocked = second.broker_status.trading_blocked()
    assert blocked is not None
    assert blocked.startswith("paused by ops: overnight")

    def trading_check() -> tuple[str, str] | None:
        report = second.health.latest()
        found = [] if report is None else report.select(["trading"])
        return None if not found else (found[0].status, found[0].output or "")

    wait_until(lambda: trading_check() is not None, 30, "a health report")
    assert trading_check() == ("warn", "paused by ops: overnight")


def test_every_switch_is_mailed_whatever_the_alert_severity(
    config: Config, runtimes: list[Runtime]
) -> None:
    """A pause (WARNING) is mailed although alerts start at ERROR: one .eml per switch."""
    runtime = _start(config, runtimes)
    assert runtime.kill_switch is not None
    runtime.kill_switch.pause(by="ops", reason="lunch")
    runtime.kill_switch.resume(by="ops", reason="back")

    def mails() -> list[str]:
        return sorted(
            p.read_text() for p in config.outbox_dir.glob("*.eml") if "trading" in p.read_text()
        )

    wait_until(lambda: len(mails()) == 2, 30, "two kill-switch mails")
    assert any("trading paused by ops: lunch" in m for m in mails())
    assert any("trading resumed by ops: back" in m for m in mails())


def test_pause_without_the_database_still_stops_orders_but_resume_is_refused(
    config: Config, runtimes: list[Runtime]
) -> None:
    """With the state table unwritable a pause still closes the gate (saying it is not
    stored, also in health); a resume is refused, so trading stays stopped."""
    runtime = _start(config, runtimes)
    assert runtime.kill_switch is not None
    assert runtime.database is not None
    path = runtime.database.sqlite_path
    assert path is not None
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE trading_state")
        connection.commit()

    paused = runtime.kill_switch.pause(by="ops", reason="db trouble")
    assert paused.state.mode is TradingMode.PAUSED
    assert not paused.state.durable
    assert paused.warning is not None
    assert "not stored" in paused.warning
    assert runtime.broker_status.trading_blocked() is not None

    with pytest.raises(StorageError):
        runtime.kill_switch.resume(by="ops", reason="try")
    assert runtime.kill_switch.state().mode is TradingMode.PAUSED
    assert (runtime.broker_status.trading_blocked() or "").startswith("paused by ops")
    [gate] = trading_check(runtime.broker_status, runtime.kill_switch.state)()
    assert gate.status == "warn"
    assert gate.output is not None
    assert gate.output.startswith("paused by ops: db trouble (not stored: a restart would not")
