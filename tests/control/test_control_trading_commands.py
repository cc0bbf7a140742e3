"""The shell's `cancel-all` and `flatten` against a real runtime (SQLite, simulator)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_support import run

from support.waiting import wait_until
from tradingbot.broker import OrderRequest, place_order
from tradingbot.config import load_config
from tradingbot.control.commands import RuntimeCommands
from tradingbot.control.server import CommandError
from tradingbot.control.wiring import runtime_commands
from tradingbot.events import RISK
from tradingbot.gateway import SimulatorThread
from tradingbot.runtime import Runtime
from tradingbot.storage.event_query import EventQuery


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    home: Path = tmp_path_factory.mktemp("home")
    # Resting limit orders at half the market: far outside the risk limits' price band.
    environ = {
        "TRADINGBOT_HOME": str(home),
        "TRADINGBOT_STRATEGIES": "",
        "TRADINGBOT_RISK_PRICE_BAND_PCT": "100",
    }
    runtime = Runtime(load_config(environ=environ))
    runtime.start()
    try:
        wait_until(
            lambda: runtime.broker_status.trading_blocked() is None,
            message="the start reconciliation to open trading",
        )
        yield runtime
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def commands(runtime: Runtime) -> RuntimeCommands:
    return runtime_commands(runtime)


def _sim(runtime: Runtime) -> SimulatorThread:
    simulator = runtime.simulator
    assert simulator is not None
    return simulator


def _positions(runtime: Runtime) -> dict[str, float]:
    return _sim(runtime).call(
        lambda s: {
            p.instrument.symbol: p.quantity for p in s.brokerage.account_positions() if p.quantity
        }
    )


def _order(runtime: Runtime, request: OrderRequest, status: str) -> str:
    assert runtime.tree is not None
    ref = place_order(runtime.tree.handle("broker"), runtime.broker_status, request)
    wait_until(
        lambda: (o := runtime.broker_status.order(ref)) is not None and o.status == status,
        message=f"{ref} to be {status}",
    )
    return ref


def _resting(runtime: Runtime, symbol: str) -> str:
    limit = round(_sim(runtime).call(lambda s: s.brokerage.prices.price(symbol)) * 0.5, 2)
    return _order(runtime, OrderRequest(symbol, "BUY", 1, "LMT", limit), "Submitted")


@pytest.mark.parametrize("name", ["cancel-all", "flatten"])
def test_cancel_all_and_flatten_need_a_reason(commands: RuntimeCommands, name: str) -> None:
    """Without a reason the command is refused with its usage line (the reason is mailed)."""
    with pytest.raises(CommandError, match=f"usage: {name} REASON"):
        asyncio.run(commands(name, []))
    assert commands.mutates(name, ["x"])


def test_cancel_all_says_what_it_cancelled(commands: RuntimeCommands, runtime: Runtime) -> None:
    """`cancel-all` lists the orders it cancelled and records a RISK event naming the
    shell user and the reason."""
    ref = _resting(runtime, "MSFT")
    result = run(commands, "cancel-all spread too wide")
    assert result.text.startswith("cancel-all by shell uid ")
    assert "spread too wide" in result.text
    assert "cancelled (global cancel) 1 open order(s):" in result.text
    assert "BUY 1 MSFT LMT" in result.text
    assert ref in result.text
    assert [o["order_ref"] for o in result.result["open_orders"]] == [ref]
    wait_until(
        lambda: (o := commands.broker_status.order(ref)) and o.status == "Cancelled",
        message="the order to be cancelled",
    )
    again = run(commands, "cancel-all once more")
    assert "no order was open at the gateway" in again.text
    events = commands.database.events.query(EventQuery(types=(RISK,))).events
    messages = [e.message for e in events if e.source == "kill_switch"]
    assert any(m.startswith("cancel-all by shell uid") and "spread too wide" in m for m in messages)


def test_flatten_while_paused_closes_positions_and_a_repeat_sends_nothing(
    commands: RuntimeCommands, runtime: Runtime
) -> None:
    """With trading paused from the shell, `flatten` cancels the open order and closes the
    position (the simulator shows the account flat); a second `flatten` sends nothing."""
    _order(runtime, OrderRequest("AAPL", "BUY", 6), "Filled")
    resting = _resting(runtime, "IBM")
    run(commands, "pause going flat")
    try:
        result = run(commands, "flatten end of the experiment")
        assert "flatten by shell uid" in result.text
        assert resting in result.text
        assert "sent: SELL 6 AAPL MKT (position 6)" in result.text
        wait_until(lambda: not _positions(runtime), message="the account to be flat")
        orders = _sim(runtime).call(lambda s: len(s.brokerage.orders))
        again = run(commands, "flatten again")
        assert "no position to close" in again.text
        assert "no order was open at the gateway" in again.text
        assert _sim(runtime).call(lambda s: len(s.brokerage.orders)) == orders
    finally:
        run(commands, "resume done")


def test_flatten_while_tripped_by_the_loss_limit_closes_positions(
    commands: RuntimeCommands, runtime: Runtime
) -> None:
    """When the daily loss limit tripped the kill switch, a flatten still closes positions."""
    _order(runtime, OrderRequest("NVDA", "SELL", 2), "Filled")
    switch = commands.kill_switch
    switch.trip(by="risk", reason="daily loss limit")
    try:
        result = run(commands, "flatten loss limit hit")
        assert "sent: BUY 2 NVDA MKT (position -2)" in result.text
        wait_until(lambda: not _positions(runtime), message="the account to be flat")
    finally:
        run(commands, "resume reviewed")
