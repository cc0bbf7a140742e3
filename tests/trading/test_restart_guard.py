"""The restart window's order gate: closed before the window, open again only after the
broker synced and a reconciliation passed after that; health says where it stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.bot_config import bot_config
from support.waiting import wait_until
from tradingbot.broker import OrderRequest, TradingBlocked, place_order
from tradingbot.broker.status import RESTART_WINDOW_GATE, BrokerStatus, ConnectionState
from tradingbot.config.window import parse_daily_window
from tradingbot.recovery.reconciler import ReconcileResult
from tradingbot.runtime import Runtime
from tradingbot.storage import ReconciliationRecord
from tradingbot.storage.reconciliations import CLEAN, DISCREPANCIES
from tradingbot.trading.restart_guard import RestartWindowGuard, restart_window_check
from tradingbot.trading.restart_window import Phase, RestartPlan

START = datetime(2026, 12, 8, 4, 40, tzinfo=UTC)  # 23:40 New York: 3 min before the pause


class Clocks:
    """A wall clock and a monotonic clock moved together by hand."""

    def __init__(self) -> None:
        self.wall = START
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def _setup() -> tuple[Clocks, BrokerStatus, RestartWindowGuard]:
    clocks = Clocks()
    status = BrokerStatus(clock=lambda: clocks.mono)
    status.update(state=ConnectionState.SYNCED, connects=1)
    plan = RestartPlan(parse_daily_window("23:45-00:45 America/New_York"), lead_s=120, grace_s=900)
    return clocks, status, RestartWindowGuard(plan, status, now=lambda: clocks.wall)


def _reconciled(
    started: datetime, status: str = CLEAN, trigger: str = "reconnect"
) -> ReconcileResult:
    record = ReconciliationRecord(
        id="r1",
        run_id="run",
        account="",
        trigger=trigger,
        started_at=started,
        as_of=started,
        status=status,
        positions={},
        boundary_exec_ids=frozenset(),
        accepted_orders=frozenset(),
        discrepancies=(),
        error=None,
        duration_s=0.1,
        accepted_by=None,
    )
    return ReconcileResult(record=record, trigger=trigger, imported=0, closed=0)


def _phases(guard: RestartWindowGuard) -> list[Phase]:
    return [phase for phase, _ in guard.advance()]


def test_the_gate_closes_at_the_lead_and_names_the_window() -> None:
    """Two minutes before 23:45 New York time new orders are refused, the reason naming
    the window; the kill switch's gate is untouched."""
    clocks, status, guard = _setup()
    assert _phases(guard) == []
    assert status.trading_blocked() is None
    clocks.advance(180)
    assert _phases(guard) == [Phase.PAUSED]
    reason = status.trading_blocked(RESTART_WINDOW_GATE)
    assert reason is not None
    assert "IB Gateway daily restart window 23:45-00:45 America/New_York" in reason
    assert "2026-12-07 23:43:00 EST" in reason
    assert status.gates()["kill_switch"] is None
    refusal = status.order_refusal(None)
    assert refusal is not None
    assert "restart window" in str(refusal)


def test_trading_resumes_only_after_sync_and_a_later_reconciliation() -> None:
    """After the window: a reconciliation from before the reconnect does not count, nor
    one with discrepancies; a clean one after the reconnect opens the gate."""
    clocks, status, guard = _setup()
    clocks.advance(300)  # 23:45: the window
    guard.advance()
    guard.on_reconciled(_reconciled(clocks.wall))  # before the gateway restarted
    status.update(state=ConnectionState.DISCONNECTED)
    clocks.advance(3000)
    status.update(state=ConnectionState.SYNCED, connects=2)  # back at 00:35
    clocks.advance(660)  # 00:46: the window is over
    assert _phases(guard) == [Phase.RESUMING]
    assert status.trading_blocked(RESTART_WINDOW_GATE) is not None
    guard.on_reconciled(_reconciled(clocks.wall - timedelta(seconds=1), status=DISCREPANCIES))
    assert _phases(guard) == []
    guard.on_reconciled(_reconciled(clocks.wall - timedelta(seconds=1)))
    assert _phases(guard) == [Phase.OPEN]
    assert status.trading_blocked() is None


def test_a_broker_not_back_after_the_grace_is_overdue_and_health_warns() -> None:
    """Not synced 900 s after the window: overdue, and the health check warns; before
    that it passes (the window is expected) and the broker's absence is expected too."""
    clocks, status, guard = _setup()
    check = restart_window_check(guard)
    clocks.advance(600)
    guard.advance()
    status.update(state=ConnectionState.DISCONNECTED)
    assert guard.expected_down() is not None
    [inside] = check()
    assert (inside.status, inside.observed_value) == ("pass", "window")
    clocks.advance(3600)
    assert _phases(guard) == [Phase.RESUMING]
    assert guard.expected_down() is not None
    clocks.advance(900)
    assert _phases(guard) == [Phase.OVERDUE]
    assert guard.expected_down() is None
    [late] = check()
    assert (late.status, late.observed_value) == ("warn", "overdue")
    assert late.output is not None
    assert "not synced and reconciled 900 s after" in late.output


def test_a_connection_that_survived_the_window_asks_for_a_reconciliation_once() -> None:
    """When the gateway did not drop us, the guard asks the reconciler for a run once,
    and a reconciliation started after the pause then resumes trading."""
    clocks, _, guard = _setup()
    clocks.advance(3600 + 660)  # 00:51: past the window, never disconnected
    guard.advance()
    assert guard.state()[0] is Phase.RESUMING
    assert guard.wants_reconciliation()
    assert not guard.wants_reconciliation()
    guard.on_reconciled(_reconciled(clocks.wall, trigger="operator"))
    assert _phases(guard) == [Phase.OPEN]
    [open_check] = restart_window_check(guard)()
    assert open_check.status == "pass"
    assert open_check.output is not None
    assert open_check.output.startswith("next restart window 23:45-00:45 America/New_York")


def test_in_a_running_bot_orders_are_refused_through_the_window_and_a_late_gateway_alerts(
    tmp_path: Path,
) -> None:
    """A bot whose gateway stays away past the grace: orders are refused from the window
    on, a CRITICAL alert e-mail is written, and once the gateway is back and reconciled an
    order goes out again."""
    start = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    config = bot_config(
        tmp_path,
        HEARTBEAT_INTERVAL_S="0.2",
        IB_RESTART_WINDOW=f"{start:%H:%M:%S}-{start + timedelta(seconds=2):%H:%M:%S} UTC",
        IB_RESTART_LEAD_S="0",
        IB_RESTART_GRACE_S="1",
        IB_PROBE_INTERVAL_S="0.5",
    )
    runtime = Runtime(config)
    try:
        runtime.start()
        assert runtime.tree is not None
        assert runtime.simulator is not None
        status = runtime.broker_status
        guard = runtime.guards.restart
        assert guard is not None
        wait_until(lambda: status.trading_blocked() is None, 30, "reconciled")
        order = OrderRequest(symbol="AAPL", side="BUY", quantity=1, order_type="MKT")
        broker = runtime.tree.handle("broker")
        assert place_order(broker, status, order, 10.0).startswith("TB-")

        wait_until(lambda: guard.state()[0] is Phase.WINDOW, 30, "the window")
        window = guard.state()[1]
        assert window is not None
        gateway = runtime.simulator.simulator
        assert gateway is not None
        runtime.simulator.run(gateway.refuse_connections(6.0))  # the gateway restarts
        with pytest.raises(TradingBlocked, match="IB Gateway daily restart window"):
            place_order(broker, status, order, 10.0)

        def alert() -> list[str]:
            return [
                text
                for path in config.outbox_dir.glob("*.eml")
                if "IB Gateway not back" in (text := path.read_text(errors="replace"))
            ]

        [mail] = wait_until(alert, 30, "the CRITICAL alert e-mail")
        assert "CRITICAL" in mail

        wait_until(lambda: status.trading_blocked() is None, 60, "trading to resume")
        assert place_order(broker, status, order, 10.0).startswith("TB-")
        assert runtime.reconciliations[-1].record.started_at > window.end
    finally:
        runtime.stop()
