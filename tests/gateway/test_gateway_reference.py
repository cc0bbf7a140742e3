"""Reference data and notices through the real ib_async client: contract details at every
server version, currency checks, any plausible symbol, error 322, farm notices, tickers."""

from __future__ import annotations

import asyncio
import zlib

import pytest
from ib_async import IB, MarketOrder, Stock
from simharness import IbErrorGuard, connected, run, running_simulator, wait_for

from tradingbot.gateway.protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION


@pytest.mark.parametrize("version", [MIN_SERVER_VERSION, 163, MAX_SERVER_VERSION])
def test_contract_details_qualify_and_trade_at_every_server_version(version: int) -> None:
    """qualifyContracts works at the lowest, a middle and the highest negotiated version,
    with trading hours, and the qualified contract then trades."""

    async def scenario() -> None:
        async with (
            running_simulator(max_server_version=version) as sim,
            connected(sim) as ib,
        ):
            assert ib.client.serverVersion() == version
            [contract] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            assert contract is not None
            assert contract.conId == sim.brokerage.lookup(symbol="AAPL").con_id  # type: ignore[union-attr]
            [details] = await ib.reqContractDetailsAsync(contract)
            assert details.tradingHours
            assert details.minTick == 0.01
            trade = ib.placeOrder(contract, MarketOrder("BUY", 1))
            await wait_for(lambda: trade.orderStatus.status == "Filled")

    run(scenario())


def test_wrong_currency_is_error_200(ib_errors: IbErrorGuard) -> None:
    """A USD stock asked for in EUR (or on a foreign exchange) is not found: error 200."""
    ib_errors.allow(r"Error 200, reqId \d+: No security definition")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
            euro = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "EUR"))
            lse = await ib.qualifyContractsAsync(Stock("AAPL", "LSE", "USD"))
            assert euro == [None]
            assert lse == [None]
            assert codes == [200, 200]

    run(scenario())


def test_any_plausible_symbol_gets_a_stable_contract(ib_errors: IbErrorGuard) -> None:
    """An unseeded symbol qualifies with a contract id derived from the symbol (the same
    in every simulator run) and has a price; a clearly invalid symbol is error 200."""
    ib_errors.allow(r"Error 200, reqId \d+: No security definition")

    async def scenario() -> None:
        con_ids = []
        for _ in range(2):
            async with running_simulator() as sim, connected(sim) as ib:
                [contract] = await ib.qualifyContractsAsync(Stock("ZQRT", "SMART", "USD"))
                assert contract is not None
                con_ids.append(contract.conId)
                [ticker] = await ib.reqTickersAsync(contract)
                assert ticker.last > 0
                assert await ib.qualifyContractsAsync(Stock("NOT-A-STOCK", "SMART")) == [None]
        assert con_ids[0] == con_ids[1] == 200_000_000 + zlib.crc32(b"ZQRT") % 100_000_000

    run(scenario())


def test_unsupported_request_fails_fast_with_322(ib_errors: IbErrorGuard) -> None:
    """A request the simulator does not implement is answered at once with error 322 for
    its request id, so the client's call returns instead of waiting out a timeout."""
    ib_errors.allow(r"Error 322, reqId \d+: Error processing request")

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
            found = await asyncio.wait_for(ib.reqMatchingSymbolsAsync("AAP"), 2)
            assert not found
            text = await asyncio.wait_for(
                ib.reqFundamentalDataAsync(Stock("AAPL", "SMART", "USD"), "ReportSnapshot"), 2
            )
            assert not text
            assert codes == [322, 322]

    run(scenario())


def test_farm_notices_arrive_at_connect_as_warnings() -> None:
    """Right after the handshake the client gets 2104, 2106 and 2158 (logged as info)."""

    async def scenario() -> None:
        async with running_simulator() as sim:
            ib = IB()
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
            await ib.connectAsync("127.0.0.1", sim.port, clientId=3, timeout=3)
            try:
                await wait_for(lambda: len(codes) >= 3)
                assert codes == [2104, 2106, 2158]
            finally:
                ib.disconnect()

    run(scenario())


def test_ticker_has_open_high_low_previous_close_and_volume() -> None:
    """A streaming ticker carries the session's open/high/low, the previous close and
    volume, so a daily % change is computable; its market data type is live (1)."""

    async def scenario() -> None:
        async with running_simulator() as sim, connected(sim) as ib:
            ib.reqMarketDataType(1)
            [spy] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
            ticker = ib.reqMktData(spy)
            await wait_for(lambda: ticker.volume > 0 and ticker.close > 0)
            assert ticker.marketDataType == 1
            assert ticker.open > 0
            assert ticker.low <= ticker.last <= ticker.high
            assert abs(ticker.last / ticker.close - 1) < 0.5

    run(scenario())
