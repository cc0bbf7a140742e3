"""Fault injection: closed sockets, freeze, connectivity notices, rejections, restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from ib_async import IB, MarketOrder, Stock
from simharness import IbErrorGuard, connected, run, running_simulator, wait_for

from support.ib_errors import REFUSED
from tradingbot.gateway import GatewaySimulator, SimulatorThread, apply_command, build_simulator
from tradingbot.gateway.server import seconds_until


def test_close_all_connections_disconnects_client_and_allows_reconnect(
    ib_errors: IbErrorGuard,
) -> None:
    """Closing the sockets fires disconnectedEvent; a new connection then syncs normally."""
    ib_errors.allow(r"^Peer closed connection\.$")

    async def scenario() -> None:
        async with running_simulator() as sim:
            async with connected(sim, client_id=2) as ib:
                disconnected = asyncio.Event()
                ib.disconnectedEvent += disconnected.set
                sim.close_all_connections()
                await asyncio.wait_for(disconnected.wait(), 3)
                assert not ib.isConnected()
            async with connected(sim, client_id=2) as ib:
                assert ib.isConnected()

    run(scenario())


def test_freeze_stops_answers_until_unfreeze() -> None:
    """While frozen the socket stays open but requests go unanswered; unfreeze answers them."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            sim.freeze()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.3)
            assert ib.isConnected()
            sim.unfreeze()
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)

    run(scenario())


def test_order_sent_while_frozen_is_executed_after_unfreeze() -> None:
    """An order sent to a frozen gateway gets no answer until the freeze ends, then fills."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            sim.freeze()
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 1))
            await asyncio.sleep(0.2)
            assert trade.orderStatus.status == "PendingSubmit"
            assert sim.brokerage.executions == []
            sim.unfreeze()
            await wait_for(lambda: trade.orderStatus.status == "Filled")

    run(scenario())


def test_reject_next_order_rejects_exactly_one(ib_errors: IbErrorGuard) -> None:
    """After reject_next_order the next order gets error 201 and the one after it fills."""
    ib_errors.allow(r"Error 201, reqId \d+: Order rejected - reason:Simulated rejection")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
            sim.reject_next_order()
            stock = Stock("AAPL", "SMART", "USD")
            rejected = ib.placeOrder(stock, MarketOrder("BUY", 1))
            await wait_for(lambda: rejected.orderStatus.status == "Cancelled")
            accepted = ib.placeOrder(stock, MarketOrder("BUY", 1))
            await wait_for(lambda: accepted.orderStatus.status == "Filled")
            assert codes == [201]

    run(scenario())


def test_connectivity_lost_and_restored_notices(ib_errors: IbErrorGuard) -> None:
    """Errors 1100 then 1102 reach errorEvent and the account-summary resync is answered."""
    ib_errors.allow(r"Error 110[02], reqId -1: Connectivity between IB and Trader Workstation")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
            sim.connectivity_lost()
            sim.connectivity_restored()
            await wait_for(lambda: codes == [1100, 1102])
            summary = await asyncio.wait_for(ib.accountSummaryAsync(), 2)
            assert any(v.tag == "NetLiquidation" for v in summary)

    run(scenario())


def test_duplicate_client_id_is_refused_with_326(ib_errors: IbErrorGuard) -> None:
    """A second connection with a client id in use gets error 326 and is closed."""
    ib_errors.allow(r"Error 326, reqId -1: Unable to connect as the client id is already in use")
    ib_errors.allow(r"Peer closed connection\. clientId 4 already in use\?")
    ib_errors.allow(r"API connection failed")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim, client_id=4) as first:
            second = IB()
            codes: list[int] = []
            second.errorEvent += lambda req_id, code, text, contract: codes.append(code)
            # ib_async notices the close but still waits out its connect timeout.
            with pytest.raises(TimeoutError):
                await second.connectAsync("127.0.0.1", sim.port, clientId=4, timeout=1)
            assert codes == [326]
            second.disconnect()
            assert first.isConnected()
            assert sim.connected_client_ids == [4]

    run(scenario())


async def accepted_again(sim: GatewaySimulator, timeout_s: float) -> IB:
    """Connect as soon as the simulator accepts connections again (each refusal retried)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        ib = IB()
        try:
            await ib.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=2)
        except ConnectionRefusedError:
            ib.disconnect()
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"the simulator refused connections for over {timeout_s:g} s")
            await asyncio.sleep(0.05)  # poll interval of the wait, not a synchronisation
            continue
        return ib


def test_restart_window_refuses_then_accepts(ib_errors: IbErrorGuard) -> None:
    """During the restart window connections are refused; afterwards the client reconnects."""
    ib_errors.allow(r"^Peer closed connection\.$")
    ib_errors.allow(r"API connection failed: ConnectionRefusedError")
    ib_errors.allow(r"Make sure API port on TWS/IBG is open")

    async def scenario() -> None:
        async with running_simulator() as sim:
            async with connected(sim) as ib:
                disconnected = asyncio.Event()
                ib.disconnectedEvent += disconnected.set
                await sim.refuse_connections(0.5)
                await asyncio.wait_for(disconnected.wait(), 3)
            refused = IB()
            with pytest.raises(ConnectionRefusedError):
                await refused.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=2)
            refused.disconnect()
            ib = await accepted_again(sim, timeout_s=10)
            try:
                assert ib.isConnected()
            finally:
                ib.disconnect()

    run(scenario())


def test_scheduled_daily_restart_drops_clients_and_keeps_positions(
    ib_errors: IbErrorGuard,
) -> None:
    """At the configured local time the simulator drops every client and refuses
    connections for the window; afterwards the same positions and fills are there."""
    ib_errors.allow(r"^Peer closed connection\.$")
    ib_errors.allow(REFUSED)

    async def scenario() -> None:
        async with running_simulator() as sim:
            async with connected(sim) as ib:
                trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 5))
                await wait_for(lambda: trade.orderStatus.status == "Filled")
                disconnected = asyncio.Event()
                ib.disconnectedEvent += disconnected.set
                at = (datetime.now(UTC) + timedelta(seconds=0.5)).time()
                sim.schedule_daily_restart(at, ZoneInfo("UTC"), 0.5)
                await asyncio.wait_for(disconnected.wait(), 5)
            while True:  # refused during the window, then accepted again
                ib = IB()
                try:
                    await ib.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=2)
                    break
                except ConnectionRefusedError:
                    ib.disconnect()
                    await asyncio.sleep(0.1)
            try:
                assert [p.position for p in ib.positions()] == [5]
                assert len(ib.fills()) == 1
            finally:
                ib.disconnect()

    run(scenario())


def test_restart_time_is_computed_in_the_configured_zone() -> None:
    """The next restart is found in local time, across midnight and DST."""
    ny = ZoneInfo("America/New_York")
    before = datetime(2026, 3, 7, 23, 0, tzinfo=ny)  # the night before the DST switch
    assert seconds_until(time(23, 30), ny, before) == 1800
    assert seconds_until(time(1, 0), ny, before) == 2 * 3600
    assert seconds_until(time(3, 30), ny, before) == 4.5 * 3600 - 3600  # 02:00 is skipped
    assert seconds_until(time(23, 45), ny, datetime(2026, 3, 8, 23, 50, tzinfo=ny)) == (
        23 * 3600 + 55 * 60
    )


def test_simulator_thread_serves_a_client_on_another_loop() -> None:
    """SimulatorThread runs the simulator on its own thread; fault hooks work through call()."""
    thread = SimulatorThread(build_simulator(seed=2))  # built here, run on the thread
    port = thread.start()
    try:
        assert port > 0

        async def scenario() -> None:
            ib = IB()
            await ib.connectAsync("127.0.0.1", port, clientId=9, timeout=3)
            try:
                trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 2))
                await wait_for(lambda: trade.orderStatus.status == "Filled")
                assert thread.call(lambda sim: sim.connected_client_ids) == [9]
            finally:
                ib.disconnect()

        run(scenario())
        assert thread.call(lambda sim: len(sim.brokerage.executions)) == 1
    finally:
        thread.stop()


def test_fault_commands_drive_the_same_hooks(ib_errors: IbErrorGuard) -> None:
    """The text fault commands (used by the --control socket) reject, notify and close."""
    ib_errors.allow(r"Error 201, reqId \d+: Order rejected - reason:desk says no")
    ib_errors.allow(r"Error 1101, reqId -1: Connectivity .* restored - data lost")
    ib_errors.allow(r"^Peer closed connection\.$")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
            assert await apply_command(sim, "reject-next desk says no") == "ok reject-next"
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 1))
            await wait_for(lambda: trade.orderStatus.status == "Cancelled")
            assert await apply_command(sim, "restored data-lost") == "ok restored"
            await wait_for(lambda: codes == [201, 1101])
            assert await apply_command(sim, "restart x") == "error usage: restart SECONDS"
            disconnected = asyncio.Event()
            ib.disconnectedEvent += disconnected.set
            assert await apply_command(sim, "close") == "ok close"
            await asyncio.wait_for(disconnected.wait(), 3)

    run(scenario())
