"""Market data subscriptions through the broker actor, against the simulator's tick stream."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest
from brokerharness import BrokerHarness, wait_until

from support.ib_errors import IbErrorGuard
from tradingbot.broker import (
    BrokerConnectionError,
    BrokerNotReady,
    ConnectionState,
    UnknownSymbol,
    subscribe_market_data,
    unsubscribe_market_data,
)
from tradingbot.broker.market import Quote
from tradingbot.gateway import SimulatorThread


class QuoteQueue:
    """A subscriber: every quote told to it lands in a queue."""

    def __init__(self) -> None:
        self.quotes: queue.Queue[Quote] = queue.Queue()

    def tell(self, message: Any) -> None:
        assert isinstance(message, Quote)
        self.quotes.put(message)

    def next(self, symbol: str, after: float = 0.0, timeout_s: float = 10.0) -> Quote:
        """The next quote of ``symbol`` received after ``after`` (monotonic)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no quote of {symbol} within {timeout_s} s")
            try:
                quote = self.quotes.get(timeout=remaining)
            except queue.Empty:
                continue
            if quote.symbol == symbol and quote.received_at > after:
                return quote

    def drain(self) -> list[Quote]:
        found = []
        while True:
            try:
                found.append(self.quotes.get_nowait())
            except queue.Empty:
                return found


def streams(sim: SimulatorThread) -> list[str]:
    return sim.call(lambda s: sorted(sym for x in s._sessions for sym in x.market_data.values()))


def test_a_subscriber_receives_the_gateways_quotes(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """A market-data subscriber receives the gateway's bid, ask and last around its price, and the
    actor tree shows the subscribed symbol."""
    broker.wait_state(ConnectionState.SYNCED)
    handle, sink = broker.tree.handle("broker"), QuoteQueue()
    assert subscribe_market_data(handle, broker.status, "AAPL", sink) == "AAPL"
    first = sink.next("AAPL")
    later = sink.next("AAPL", after=first.received_at)
    while later.ask is None or later.last is None:  # a batch may carry the bid alone
        later = sink.next("AAPL", after=later.received_at)
    for quote in (later,):
        assert quote.bid is not None
        assert quote.ask is not None
        assert quote.last is not None
        assert quote.bid_size
        assert quote.ask_size
    price = sim.call(lambda s: s.brokerage.prices.price("AAPL"))
    assert later.bid is not None
    assert later.ask is not None
    assert later.bid <= price * 1.05
    assert later.ask >= price * 0.95
    assert broker.node().details["market_data_symbols"] == ["AAPL"]


def test_two_subscribers_share_one_stream_until_the_last_leaves(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """Two subscribers to one symbol share one gateway stream, which is cancelled when the last one
    leaves, and then no quote arrives."""
    broker.wait_state(ConnectionState.SYNCED)
    handle, one, two = broker.tree.handle("broker"), QuoteQueue(), QuoteQueue()
    subscribe_market_data(handle, broker.status, "MSFT", one)
    subscribe_market_data(handle, broker.status, "MSFT", two)
    one.next("MSFT")
    two.next("MSFT")
    assert streams(sim) == ["MSFT"]
    unsubscribe_market_data(handle, broker.status, "MSFT", one)
    assert streams(sim) == ["MSFT"]
    two.next("MSFT")
    unsubscribe_market_data(handle, broker.status, "MSFT", two)
    wait_until(lambda: streams(sim) == [], message="the stream to be cancelled at the gateway")
    two.drain()
    time.sleep(0.3)  # several tick intervals of the simulator (0.05 s): nothing may arrive
    assert two.drain() == []


def test_the_subscription_survives_a_lost_connection(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """After the gateway drops the connection, the broker reconnects and the subscriber receives
    quotes again without subscribing anew."""
    broker.wait_state(ConnectionState.SYNCED)
    handle, sink = broker.tree.handle("broker"), QuoteQueue()
    subscribe_market_data(handle, broker.status, "AAPL", sink)
    sink.next("AAPL")
    connects = broker.status.view().connects
    sim.call(lambda s: s.close_all_connections())
    wait_until(
        lambda: broker.status.view().connects > connects and broker.state == ConnectionState.SYNCED,
        timeout_s=15,
        message="the broker to reconnect",
    )
    reconnected = time.monotonic()
    assert sink.next("AAPL", after=reconnected).symbol == "AAPL"
    assert streams(sim) == ["AAPL"]


def test_an_unknown_symbol_is_refused_by_the_gateway(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """Subscribing to a symbol the gateway does not know fails with an error naming it, and no
    stream is left open."""
    broker.wait_state(ConnectionState.SYNCED)
    handle, sink = broker.tree.handle("broker"), QuoteQueue()
    # Not a plausible US stock symbol (the simulator serves any 1-5 letter symbol).
    with pytest.raises(UnknownSymbol, match="unknown symbol 'NOSUCHSYM'"):
        subscribe_market_data(handle, broker.status, "NOSUCHSYM", sink)
    assert streams(sim) == []
    assert broker.node().details["market_data_symbols"] == []


@pytest.mark.parametrize("symbol", ["", "aapl", "A" * 21, "AAPL\r\n", "AA;PL"])
def test_a_malformed_symbol_is_refused_before_anything_is_sent(
    broker: BrokerHarness, symbol: str
) -> None:
    """A malformed symbol is refused with one clear message before anything reaches the gateway."""
    broker.wait_state(ConnectionState.SYNCED)
    with pytest.raises(ValueError, match="symbol: 1-20 upper-case letters"):
        subscribe_market_data(broker.tree.handle("broker"), broker.status, symbol, QuoteQueue())


def test_subscribing_while_disconnected_is_refused_at_once(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """Subscribing while the gateway is unreachable is refused at once instead of waiting."""
    broker.wait_state(ConnectionState.SYNCED)
    sim.run(sim.call(lambda s: s.refuse_connections(30.0)))
    broker.wait_state(ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
    with pytest.raises(BrokerNotReady, match="subscribe refused"):
        subscribe_market_data(broker.tree.handle("broker"), broker.status, "AAPL", QuoteQueue())


def test_a_subscription_waiting_on_a_frozen_gateway_does_not_stall_the_broker(
    sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """While a subscription waits for a frozen gateway's answer, the broker still probes:
    it reports the freeze as usual, and the waiting subscriber is refused when the
    connection is given up instead of hanging."""
    ib_errors.allow(r"TimeoutError|timed out|Peer closed connection")
    harness = BrokerHarness(sim.port, request_timeout_s=120.0)  # the answer never comes
    harness.start()
    try:
        harness.wait_state(ConnectionState.SYNCED)
        handle = harness.tree.handle("broker")
        sim.call(lambda s: s.freeze())
        outcome: list[BaseException] = []

        def subscribe() -> None:
            try:
                subscribe_market_data(handle, harness.status, "AAPL", QuoteQueue(), 120.0)
            except (BrokerConnectionError, TimeoutError) as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=subscribe, daemon=True)
        waiter.start()
        wait_until(lambda: harness.market.symbols() == ["AAPL"], message="the subscribe handled")
        harness.wait_state(ConnectionState.DEGRADED, ConnectionState.DISCONNECTED)
        waiter.join(30.0)
        assert [type(e) for e in outcome] == [BrokerConnectionError]
    finally:
        sim.call(lambda s: s.unfreeze())
        harness.stop()
