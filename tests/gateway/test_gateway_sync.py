"""Connecting the real ib_async client to the simulator: handshake, sync, market data."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from ib_async import LimitOrder, Stock
from simharness import connected, run, running_simulator, wait_for

from tradingbot.gateway import Brokerage, PriceModel


def _seeded_brokerage(tmp_path: Path) -> Brokerage:
    seed = {
        "accounts": {
            "DU7654321": {
                "cash": 250000,
                "positions": [
                    {"symbol": "AAPL", "quantity": 100, "avg_cost": 150.0},
                    {"symbol": "SPY", "quantity": -20, "avg_cost": 400.0},
                ],
            }
        },
        "symbols": {"AAPL": {"price": 190.0}, "SPY": {"price": 410.0, "exchange": "ARCA"}},
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    brokerage = Brokerage(prices=PriceModel(3))
    brokerage.load_seed(path)
    return brokerage


@pytest.mark.parametrize("version", [176, 178])
def test_connect_syncs_accounts_positions_and_account_values(tmp_path: Path, version: int) -> None:
    """The client connects at the configured server version and syncs the seeded account."""

    async def scenario() -> None:
        brokerage = _seeded_brokerage(tmp_path)
        async with (
            running_simulator(brokerage=brokerage, max_server_version=version) as sim,
            connected(sim, client_id=3) as ib,
        ):
            assert ib.client.serverVersion() == version
            assert ib.managedAccounts() == ["DU7654321"]
            positions = {p.contract.symbol: p for p in ib.positions()}
            assert positions["AAPL"].position == 100
            assert positions["AAPL"].avgCost == 150.0
            assert positions["SPY"].position == -20
            con_ids = {p.contract.conId for p in positions.values()}
            assert len(con_ids) == 2
            assert 0 not in con_ids
            values = {v.tag: v.value for v in ib.accountValues() if v.currency == "USD"}
            assert float(values["TotalCashValue"]) == 250000.0
            assert float(values["NetLiquidation"]) == pytest.approx(250000 + 100 * 190 - 20 * 410)
            portfolio = {item.contract.symbol: item for item in ib.portfolio()}
            assert portfolio["AAPL"].marketPrice == 190.0

    run(scenario())


def test_current_time_is_answered() -> None:
    """reqCurrentTime returns the simulator's wall-clock time."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            server_time = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
            assert abs(server_time.timestamp() - time.time()) < 5

    run(scenario())


def test_qualify_contract_assigns_nonzero_unique_con_ids() -> None:
    """qualifyContracts fills in distinct nonzero conIds for known symbols."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            aapl, msft = await ib.qualifyContractsAsync(
                Stock("AAPL", "SMART", "USD"), Stock("MSFT", "SMART", "USD")
            )
            assert aapl.conId > 0
            assert msft.conId > 0
            assert aapl.conId != msft.conId

    run(scenario())


def test_market_data_streams_several_updates() -> None:
    """A reqMktData ticker receives repeated bid/ask/last updates on the simulator's timer."""

    async def scenario() -> None:
        async with running_simulator(tick_interval_s=0.02) as sim, connected(sim) as ib:
            [spy] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
            ticker = ib.reqMktData(spy)
            updates: list[float] = []
            ticker.updateEvent += lambda t: updates.append(t.last)
            await wait_for(lambda: len(updates) >= 5)
            assert ticker.bid < ticker.ask
            assert ticker.bidSize > 0
            ib.cancelMktData(spy)
            await asyncio.sleep(0.1)  # ticks after the cancel would log "Unknown reqId"

    run(scenario())


def test_snapshot_tickers_are_answered() -> None:
    """reqTickers (snapshot market data) completes with prices for every contract."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            contracts = await ib.qualifyContractsAsync(
                Stock("AAPL", "SMART", "USD"), Stock("QQQ", "SMART", "USD")
            )
            tickers = await asyncio.wait_for(ib.reqTickersAsync(*contracts), 3)
            assert [t.contract.symbol for t in tickers] == ["AAPL", "QQQ"]
            assert all(t.last > 0 and t.bid < t.ask for t in tickers)

    run(scenario())


def test_client_id_zero_connects_and_sees_other_clients_orders() -> None:
    """Client 0 (which also sends reqAutoOpenOrders) syncs, including another client's order."""

    async def scenario() -> None:
        async with running_simulator() as sim:
            async with connected(sim, client_id=8) as other:
                other.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 1.0))
                await wait_for(lambda: bool(sim.brokerage.open_orders()))
            async with connected(sim, client_id=0) as ib:
                assert ib.client.isReady()
                assert [t.order.clientId for t in ib.openTrades()] == [8]

    run(scenario())
