"""Market data streams of one broker actor incarnation: subscribe, unsubscribe, deliver quotes.

The first subscriber of a symbol starts its stream: the contract is qualified at the
gateway and market data requested, on the client's loop; the actor does not wait for
that round trip. Later subscribers of a symbol whose stream is still starting wait for
the same outcome, so an unknown symbol is refused to each of them. The last one out
cancels the stream. After a reconnect the new incarnation starts a stream for every
symbol in the shared :class:`~tradingbot.broker.market.MarketData`; after a 1101 notice
(data lost) every running stream is requested again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TYPE_CHECKING, Any

import pykka
import structlog
from ib_async import IB, Stock

from tradingbot.broker.errors import BrokerConnectionError, UnknownSymbol
from tradingbot.broker.market import MarketData
from tradingbot.broker.messages import QuotesArrived, StreamStarted, Subscribe, Unsubscribe

if TYPE_CHECKING:
    from tradingbot.broker.client import Client

log = structlog.get_logger(__name__)


async def start_stream(
    ib: IB, contracts: dict[str, Any], market: MarketData, symbol: str, timeout_s: float
) -> None:
    """Qualify ``symbol`` at the gateway and request its market data (on the loop)."""
    contract = Stock(symbol, "SMART", "USD")
    try:
        qualified = await asyncio.wait_for(ib.qualifyContractsAsync(contract), timeout_s)
    except TimeoutError:
        raise TimeoutError(f"{symbol}: no answer from the gateway within {timeout_s:g} s") from None
    if not qualified or qualified[0] is None or not contract.conId:
        raise UnknownSymbol(f"unknown symbol {symbol!r}: the gateway has no such contract")
    if not market.sinks(symbol):
        return  # the last subscriber left while the contract was qualified
    contracts[symbol] = contract
    ib.reqMktData(contract)


class Streams:
    """Market data of one incarnation (see the module docstring)."""

    def __init__(self, market: MarketData, request_timeout_s: float) -> None:
        self._market = market
        self._timeout_s = request_timeout_s
        self._contracts: dict[str, Any] = {}  # symbol -> requested contract (loop thread only)
        self._starting: dict[str, list[Subscribe]] = {}  # symbol -> who waits for its start

    def symbols(self) -> list[str]:
        return self._market.symbols()

    def subscribe(self, message: Subscribe, client: Client) -> bool:
        """Handle :class:`Subscribe`; True when the snapshot changed (publish it)."""
        symbol = message.symbol
        first = self._market.add(symbol, message.sink)
        if symbol in self._starting:  # its stream is starting: wait for the outcome
            self._starting[symbol].append(message)
            return False
        if not first:
            message.reply.set_result(symbol)
            return True
        self._starting[symbol] = [message]
        return self._start(symbol, client)

    def start_all(self, client: Client) -> bool:
        """After a (re)connect: start the stream of every subscribed symbol again."""
        changed = False
        for symbol in self._market.symbols():
            if symbol not in self._starting:
                self._starting[symbol] = []
                changed = self._start(symbol, client) or changed
        return changed

    def _start(self, symbol: str, client: Client) -> bool:
        coro = start_stream(client.ib, self._contracts, self._market, symbol, self._timeout_s)
        epoch, tell = client.epoch, client.tell

        def done(future: concurrent.futures.Future[None]) -> None:  # loop thread
            error = (
                BrokerConnectionError(f"{symbol}: the connection closed")
                if future.cancelled()
                else future.exception()
            )
            tell(StreamStarted(epoch, symbol, error))

        try:
            client.loop.submit(coro).add_done_callback(done)
        except RuntimeError as exc:  # the loop stopped meanwhile
            return self.started(StreamStarted(epoch, symbol, exc))
        return False

    def started(self, message: StreamStarted) -> bool:
        """Handle :class:`StreamStarted` of this incarnation; True: publish the snapshot."""
        symbol, error = message.symbol, message.error
        waiting = self._starting.pop(symbol, [])
        if error is None:
            if waiting:
                log.info("broker_market_data_subscribed", symbol=symbol)
            for subscribe in waiting:
                subscribe.reply.set_result(symbol)
            return True
        if not waiting:
            log.warning("broker_resubscribe_failed", symbol=symbol, error=str(error))
        for subscribe in waiting:
            self._market.remove(symbol, subscribe.sink)
            subscribe.reply.set_exception(error)
        return True

    def request_again(self, client: Client) -> None:
        """After 1101 (data lost): cancel and request again every running stream."""
        ib, contracts = client.ib, self._contracts

        async def again() -> list[str]:
            for contract in list(contracts.values()):
                ib.cancelMktData(contract)
                ib.reqMktData(contract)
            return sorted(contracts)

        def done(future: concurrent.futures.Future[list[str]]) -> None:  # loop thread
            if future.cancelled() or future.exception() is not None:
                log.warning("broker_market_data_request_failed", error=str(future.exception()))
            elif future.result():
                log.info("broker_market_data_requested_again", symbols=future.result())

        try:
            client.loop.submit(again()).add_done_callback(done)
        except RuntimeError as exc:  # the loop stopped meanwhile: the reconnect starts them
            log.warning("broker_market_data_request_failed", error=str(exc))

    def unsubscribe(self, message: Unsubscribe, client: Client | None) -> bool:
        """Handle :class:`Unsubscribe`; the last subscriber out cancels the stream."""
        reply, symbol = message.reply, message.symbol
        if not self._market.remove(symbol, message.sink) or client is None:
            reply.set_result(symbol)
            return True
        contracts, ib = self._contracts, client.ib

        async def cancel() -> None:
            contract = contracts.pop(symbol, None)
            if contract is not None and ib.isConnected():
                ib.cancelMktData(contract)

        def done(future: concurrent.futures.Future[None]) -> None:  # loop thread
            if future.cancelled() or future.exception() is not None:
                error = "cancelled" if future.cancelled() else str(future.exception())
                log.warning("broker_market_data_cancel_failed", symbol=symbol, error=error)
            log.info("broker_market_data_unsubscribed", symbol=symbol)
            reply.set_result(symbol)

        try:
            client.loop.submit(cancel()).add_done_callback(done)
        except RuntimeError as exc:  # the stream ends with the connection
            log.warning("broker_market_data_cancel_failed", symbol=symbol, error=str(exc))
            log.info("broker_market_data_unsubscribed", symbol=symbol)
            reply.set_result(symbol)
        return True

    def quotes(self, message: QuotesArrived) -> None:
        """Handle :class:`QuotesArrived`: store them and tell each subscriber."""
        for quote, sinks in self._market.update(message.quotes):
            for sink in sinks:
                try:
                    sink.tell(quote)
                except pykka.ActorDeadError as exc:  # a dead subscriber must not stop others
                    log.warning("broker_quote_not_delivered", symbol=quote.symbol, error=str(exc))
                    self._market.remove(quote.symbol, sink)

    def abandon(self, why: str) -> None:
        """The incarnation ends: subscribers still waiting for a start are refused."""
        for symbol, waiting in self._starting.items():
            for subscribe in waiting:
                self._market.remove(symbol, subscribe.sink)
                subscribe.reply.set_exception(BrokerConnectionError(f"{symbol}: {why}"))
        self._starting.clear()
