"""The daily loss limit's actor: the P&L crosses the limit, the kill switch trips once a day
and the flatten is called; nearing is one warning; a failing flatten is reported."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from support.memory_events import MemorySink
from support.waiting import wait_until
from tradingbot.broker import AccountPnL, BrokerStatus, RiskBook
from tradingbot.events import RISK, Event
from tradingbot.events.recorder import EventRecorder
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree, supervisor, worker
from tradingbot.trading import KILL_SWITCH_SOURCE, KillSwitch, TradingMode
from tradingbot.trading.risk import RiskLimits
from tradingbot.trading.risk_setup import loss_limit_actor

LIMITS = RiskLimits(
    max_position_shares=100,
    max_position_usd=10_000,
    max_order_usd=5_000,
    max_open_orders=3,
    max_orders_per_minute=5,
    price_band_pct=5,
    daily_loss_limit_usd=1_000,
    warn_at=0.8,
)


class Events(MemorySink):
    """The in-memory event logger, with the RISK events of one kind at hand."""

    def risk(self, event: str) -> list[Event]:
        return [e for e in self.of_type(RISK) if e.context.get("event") == event]


class Monitor:
    """A tree holding the ``risk`` actor with a real kill switch on a real database."""

    def __init__(self, database: Database, flatten: Any) -> None:
        self.events = Events()
        self.recorder = EventRecorder(self.events)
        self.status = BrokerStatus()
        self.switch = KillSwitch(database, "DU1", self.status, lambda: self.recorder)
        self.switch.load()
        self.book = RiskBook(LIMITS, "DU1")
        factory = loss_limit_actor(self.book, self.switch, lambda: self.recorder, flatten)
        self.tree = SupervisionTree(supervisor("root", [worker("risk", factory)]), listeners=())
        self.told = 0

    def pnl(self, daily: float) -> None:
        """Tell a P&L report and wait until the actor handled it."""
        report = AccountPnL(
            account="DU1",
            daily=daily,
            unrealized=daily,
            realized=0.0,
            received_at=datetime.now(UTC),
        )
        self.tree.tell("risk", report)
        wait_until(
            lambda: (
                (node := self.tree.snapshot().find("risk")) is not None
                and node.details.get("daily_pnl") == daily
            ),
            message=f"the actor to handle daily P&L {daily}",
        )


@pytest.fixture
def flattens() -> list[str]:
    return []


@pytest.fixture
def monitor(database: Database, flattens: list[str]) -> Iterator[Monitor]:
    running = Monitor(database, flattens.append)
    running.tree.start()
    yield running
    running.tree.stop()


def test_the_loss_limit_trips_the_switch_and_flattens_once_a_day(
    monitor: Monitor, flattens: list[str]
) -> None:
    """A day's P&L at -1000 (the limit) trips the switch, CRITICAL and naming the P&L, and
    calls the flatten once; deeper losses the same day trip nothing more."""
    monitor.pnl(-200.0)
    assert monitor.switch.state().mode is TradingMode.RUNNING
    monitor.pnl(-1000.0)
    state = monitor.switch.state()
    assert state.mode is TradingMode.TRIPPED
    assert state.changed_by == "risk"
    assert "daily P&L -1,000.00" in state.reason
    assert monitor.status.trading_blocked() is not None
    wait_until(lambda: flattens, message="the flatten to be called")
    [tripped] = monitor.events.risk("kill_switch_tripped")
    assert tripped.severity.name == "CRITICAL"
    assert tripped.source == KILL_SWITCH_SOURCE

    monitor.switch.resume(by="ops", reason="reviewed")
    monitor.pnl(-1500.0)
    assert monitor.switch.state().mode is TradingMode.RUNNING  # the operator's call stands
    assert len(flattens) == 1
    assert len(monitor.events.risk("kill_switch_tripped")) == 1


def test_nearing_the_loss_limit_is_one_warning(monitor: Monitor) -> None:
    """A day's loss at 85 % of the limit is one RISK WARNING; 90 % adds none."""
    monitor.pnl(-850.0)
    monitor.pnl(-900.0)
    [nearing] = monitor.events.risk("risk_nearing")
    assert nearing.severity.name == "WARNING"
    assert nearing.context["limit"] == "daily_loss_limit_usd"
    assert nearing.context["account"] == "DU1"
    assert monitor.switch.state().mode is TradingMode.RUNNING


def test_a_failing_flatten_is_a_risk_error(database: Database) -> None:
    """When the flatten raises, the switch stays tripped and a RISK ERROR names the error."""

    def flatten(reason: str) -> None:
        raise ConnectionError("gateway gone")

    failing = Monitor(database, flatten)
    failing.tree.start()
    try:
        failing.pnl(-2000.0)
        [error] = wait_until(
            lambda: failing.events.risk("loss_limit_flatten_failed"), message="the RISK ERROR"
        )
        assert error.severity.name == "ERROR"
        assert "gateway gone" in error.message
        assert failing.switch.state().mode is TradingMode.TRIPPED
    finally:
        failing.tree.stop()
