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
from typing import TYPE_CHECKING, Any

import pykka
import structlog
from ib_async import IB, Stock

from tradingbot.broker import stream_starts
from tradingbot.broker.errors import UnknownSymbol
from tradingbot.broker.market import MarketData
from tradingbot.broker.messages import QuotesArrived, StreamStarted, Subscribe, Unsubscribe
from tradingbot.broker.stream_starts import StreamEvents, StreamStarts

if TYPE_CHECKING:
    from tradingbot.broker.client import Client

log = structlog.get_logger(__name__)

EVENTS = StreamEvents(
    subscribed="broker_market_data_subscribed",
    resubscribe_failed="broker_resubscribe_failed",
    request_failed="broker_market_data_request_failed",
    requested_again="broker_market_data_requested_again",
    cancel_failed="broker_market_data_cancel_failed",
    unsubscribed="broker_market_data_unsubscribed",
)


async def qualify(ib: IB, symbol: str, timeout_s: float) -> Stock:
    """The gateway's contract of stock ``symbol`` (on the loop); UnknownSymbol if none."""
    contract = Stock(symbol, "SMART", "USD")
    try:
        qualified = await asyncio.wait_for(ib.qualifyContractsAsync(contract), timeout_s)
    except TimeoutError:
        raise TimeoutError(f"{symbol}: no answer from the gateway within {timeout_s:g} s") from None
    if not qualified or qualified[0] is None or not contract.conId:
        raise UnknownSymbol(f"unknown symbol {symbol!r}: the gateway has no such contract")
    return contract


async def start_stream(
    ib: IB, contracts: dict[str, Any], market: MarketData, symbol: str, timeout_s: float
) -> None:
    """Qualify ``symbol`` at the gateway and request its market data (on the loop)."""
    contract = await qualify(ib, symbol, timeout_s)
    if not market.sinks(symbol):
        return  # the last subscriber left while the contract was qualified
    contracts[symbol] = contract
    ib.reqMktData(contract)


class Streams:
    """Market data of one incarnation (see the module docstring)."""

    def __init__(self, market: MarketData, request_timeout_s: float) -> None:
        self._market = market
        self._contracts: dict[str, Any] = {}  # symbol -> requested contract (loop thread only)
        self._starts: StreamStarts[Subscribe] = StreamStarts(
            lambda symbol, client: start_stream(
                client.ib, self._contracts, market, symbol, request_timeout_s
            ),
            StreamStarted,
            lambda symbol, subscribe: market.remove(symbol, subscribe.sink),
            EVENTS,
        )

    def symbols(self) -> list[str]:
        return self._market.symbols()

    def subscribe(self, message: Subscribe, client: Client) -> bool:
        """Handle :class:`Subscribe`; True when the snapshot changed (publish it)."""
        first = self._market.add(message.symbol, message.sink)
        return self._starts.subscribe(message, first, client)

    def start_all(self, client: Client) -> bool:
        """After a (re)connect: start the stream of every subscribed symbol again."""
        return self._starts.start_all(self._market.symbols(), client)

    def started(self, message: StreamStarted) -> bool:
        """Handle :class:`StreamStarted` of this incarnation; True: publish the snapshot."""
        return self._starts.started(message)

    def request_again(self, client: Client) -> None:
        """After 1101 (data lost): cancel and request again every running stream."""
        ib, contracts = client.ib, self._contracts

        async def again() -> list[str]:
            for contract in list(contracts.values()):
                ib.cancelMktData(contract)
                ib.reqMktData(contract)
            return sorted(contracts)

        stream_starts.request_again(client, again(), EVENTS)

    def unsubscribe(self, message: Unsubscribe, client: Client | None) -> bool:
        """Handle :class:`Unsubscribe`; the last subscriber out cancels the stream."""
        reply, symbol = message.reply, message.symbol
        if not self._market.remove(symbol, message.sink) or client is None:
            reply.set_result(symbol)
            return True
        contracts, ib = self._contracts, client.ib

        async def stop() -> None:
            contract = contracts.pop(symbol, None)
            if contract is not None and ib.isConnected():
                ib.cancelMktData(contract)

        stream_starts.cancel(client, stop(), symbol, reply, EVENTS)
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
        self._starts.abandon(why)
