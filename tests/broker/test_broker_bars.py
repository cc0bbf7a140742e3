"""Historical and streamed bars through the broker actor, against the simulator's bars."""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from brokerharness import BrokerHarness, wait_until

from support.ib_errors import IbErrorGuard
from support.simulator import running_simulator
from tradingbot.broker import (
    Bar,
    BarsUnavailable,
    BrokerNotReady,
    ConnectionState,
    UnknownSymbol,
    historical_bars,
    subscribe_bars,
    unsubscribe_bars,
)
from tradingbot.gateway import SimulatorThread, build_simulator
from tradingbot.gateway.brokerage import Brokerage
from tradingbot.gateway.prices import PriceModel
from tradingbot.gateway.server import GatewaySimulator

SPEED = 30.0  # simulated seconds per real second: a simulated minute every 2 s
REQ_REAL_TIME_BARS = 50  # TWS request message id (ib_async.client)


class BarQueue:
    """A subscriber: every bar told to it lands in a queue."""

    def __init__(self) -> None:
        self.bars: queue.Queue[Bar] = queue.Queue()

    def tell(self, message: Any) -> None:
        assert isinstance(message, Bar)
        self.bars.put(message)

    def next(self, timeout_s: float = 20.0) -> Bar:
        try:
            return self.bars.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no bar within {timeout_s} s") from None

    def drain(self) -> list[Bar]:
        found = []
        while True:
            try:
                found.append(self.bars.get_nowait())
            except queue.Empty:
                return found


class FastClock:
    """The simulator's clock running ``SPEED`` times faster than the wall clock."""

    def __init__(self) -> None:
        self._origin = datetime.now(UTC)
        self._started = time.monotonic()

    def __call__(self) -> datetime:
        return self._origin + timedelta(seconds=(time.monotonic() - self._started) * SPEED)


@pytest.fixture
def fast_sim() -> Iterator[SimulatorThread]:
    """A simulator whose clock runs fast, sending a real-time bar every 0.1 s."""
    brokerage = Brokerage(prices=PriceModel(0), clock=FastClock())
    simulator = GatewaySimulator(brokerage, tick_interval_s=0.05)
    simulator.realtime_bar_s = 0.1
    with running_simulator(simulator) as thread:
        yield thread


@pytest.fixture
def fast_broker(fast_sim: SimulatorThread) -> Iterator[BrokerHarness]:
    """A broker connected to ``fast_sim``."""
    harness = BrokerHarness(fast_sim.port)
    harness.start()
    yield harness
    harness.stop()


def bar_streams(sim: SimulatorThread) -> list[str]:
    """The symbols with a real-time bar stream open at the simulator."""
    return sim.call(
        lambda s: sorted(r.symbol for x in s._sessions for r in x.streams.realtime.values())
    )


def test_historical_minute_bars_cover_the_duration_in_utc(
    broker: BrokerHarness, sim: SimulatorThread
) -> None:
    """Historical one-minute bars of the last hour arrive oldest first, one minute apart, in UTC,
    and the last one closes at the simulator's current price."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    bars = historical_bars(handle, broker.status, "AAPL", bar_size="1 min", duration="3600 S")
    assert 59 <= len(bars) <= 62
    assert all(b.symbol == "AAPL" and b.seconds == 60 for b in bars)
    assert all(b.start.tzinfo is not None and b.start.utcoffset() == timedelta(0) for b in bars)
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    steps = {later.start - earlier.start for earlier, later in itertools.pairwise(bars)}
    assert steps == {timedelta(minutes=1)}
    assert datetime.now(UTC) - bars[-1].start < timedelta(minutes=2)
    price = sim.call(lambda s: s.brokerage.prices.price("AAPL"))
    assert bars[-1].close == pytest.approx(price, rel=0.01)


def test_historical_daily_bars_are_one_per_session(broker: BrokerHarness) -> None:
    """Daily bars of the last ten days come one per session, each starting at 00:00 UTC of its
    date, with a volume."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    bars = historical_bars(handle, broker.status, "MSFT", bar_size="1 day", duration="10 D")
    assert 9 <= len(bars) <= 11
    assert all(b.seconds == 86400 and b.start.hour == 0 and b.start.minute == 0 for b in bars)
    assert all(b.volume > 0 for b in bars)
    assert [b.start for b in bars] == sorted({b.start for b in bars})


def test_historical_bars_end_where_asked(broker: BrokerHarness) -> None:
    """Bars requested up to a past moment end before that moment."""
    broker.wait_state(ConnectionState.SYNCED)
    handle, end = broker.tree.handle("broker"), datetime.now(UTC) - timedelta(days=2)
    bars = historical_bars(
        handle, broker.status, "AAPL", bar_size="5 mins", duration="3600 S", end=end
    )
    assert bars
    assert all(b.seconds == 300 for b in bars)
    assert bars[-1].start < end
    assert bars[0].start >= end - timedelta(hours=1, minutes=5)


def test_a_refused_history_request_raises_and_is_never_an_empty_answer(
    broker: BrokerHarness, ib_errors: IbErrorGuard
) -> None:
    """A bar request the gateway refuses (intraday bars over 60 days) raises with the gateway's
    reason instead of answering an empty list."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    with pytest.raises(BarsUnavailable, match=r"error 162: .*duration too long"):
        historical_bars(handle, broker.status, "AAPL", bar_size="1 min", duration="60 D")
    assert broker.state == ConnectionState.SYNCED


def test_history_of_an_unknown_symbol_is_refused(
    broker: BrokerHarness, ib_errors: IbErrorGuard
) -> None:
    """Historical bars of a symbol the gateway does not know raise UnknownSymbol naming it."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    with pytest.raises(UnknownSymbol, match="NOSUCHSYM"):
        historical_bars(handle, broker.status, "NOSUCHSYM")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"bar_size": "1 minute"}, "bar_size: expected one of"),
        ({"bar_size": "1 week"}, "bar_size: expected one of"),
        ({"duration": "1D"}, "duration: a positive integer"),
        ({"duration": "0 D"}, "duration: a positive integer"),
        ({"what_to_show": "trades"}, "what_to_show: expected one of"),
        ({"end": datetime(2026, 1, 5, 12, 0)}, "end: a timezone-aware datetime"),
    ],
)
def test_malformed_history_arguments_are_refused_before_anything_is_sent(
    broker: BrokerHarness, sim: SimulatorThread, arguments: dict[str, Any], message: str
) -> None:
    """A malformed bar size, duration, price kind or naive end time is refused with one clear
    message naming the argument, and nothing reaches the gateway."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    with pytest.raises(ValueError, match=message):
        historical_bars(handle, broker.status, "AAPL", **arguments)
    assert sim.call(lambda s: s.requests_received[20]) == 0


def test_history_times_out_when_the_gateway_does_not_answer(
    sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """A bar request the gateway never answers raises TimeoutError after the caller's timeout."""
    harness = BrokerHarness(sim.port, probe_interval_s=30.0)
    harness.start()
    try:
        harness.wait_state(ConnectionState.SYNCED)
        handle = harness.tree.handle("broker")
        sim.call(lambda s: s.freeze())
        with pytest.raises(TimeoutError, match="AAPL bars: no answer from the gateway"):
            historical_bars(handle, harness.status, "AAPL", timeout_s=0.5)
    finally:
        sim.call(lambda s: s.unfreeze())
        harness.stop()


def test_five_second_subscribers_receive_each_real_time_bar(
    fast_broker: BrokerHarness, fast_sim: SimulatorThread
) -> None:
    """A 5-second bar subscriber receives the gateway's real-time bars as they come, around the
    simulator's price, and the actor tree shows the stream."""
    fast_broker.wait_state(ConnectionState.SYNCED)
    handle, sink = fast_broker.tree.handle("broker"), BarQueue()
    assert subscribe_bars(handle, fast_broker.status, "AAPL", sink, seconds=5) == "AAPL"
    first, second = sink.next(), sink.next()
    assert first.symbol == second.symbol == "AAPL"
    assert first.seconds == second.seconds == 5
    assert second.start >= first.start
    assert first.low <= first.close <= first.high
    price = fast_sim.call(lambda s: s.brokerage.prices.price("AAPL"))
    assert second.close == pytest.approx(price, rel=0.05)
    assert fast_broker.node().details["bar_streams"] == ["AAPL/5"]
    assert bar_streams(fast_sim) == ["AAPL"]


def test_minute_bars_are_whole_minutes_folded_from_the_real_time_bars(
    fast_broker: BrokerHarness,
) -> None:
    """A one-minute subscriber receives each minute once it closes: starting on the minute, one
    minute apart, with the high and low of the 5-second bars inside it."""
    fast_broker.wait_state(ConnectionState.SYNCED)
    handle, minutes, fives = fast_broker.tree.handle("broker"), BarQueue(), BarQueue()
    subscribe_bars(handle, fast_broker.status, "MSFT", fives, seconds=5)
    subscribe_bars(handle, fast_broker.status, "MSFT", minutes)
    first, second = minutes.next(), minutes.next()
    assert (first.seconds, second.seconds) == (60, 60)
    assert first.start.second == 0
    assert second.start - first.start == timedelta(minutes=1)
    inside = [b for b in fives.drain() if second.start <= b.start < second.start + timedelta(60)]
    assert inside
    assert second.open == inside[0].open
    assert second.close == inside[-1].close
    assert second.high == max(b.high for b in inside)
    assert second.low == min(b.low for b in inside)


def test_bar_lengths_share_one_gateway_stream_until_the_last_leaves(
    fast_broker: BrokerHarness, fast_sim: SimulatorThread
) -> None:
    """Subscribers of two bar lengths of one symbol share one gateway stream, which is cancelled
    at the gateway when the last one leaves."""
    fast_broker.wait_state(ConnectionState.SYNCED)
    handle, one, two = fast_broker.tree.handle("broker"), BarQueue(), BarQueue()
    subscribe_bars(handle, fast_broker.status, "IBM", one, seconds=5)
    subscribe_bars(handle, fast_broker.status, "IBM", two, seconds=10)
    one.next()
    two.next()
    assert bar_streams(fast_sim) == ["IBM"]
    assert fast_broker.node().details["bar_streams"] == ["IBM/5", "IBM/10"]
    unsubscribe_bars(handle, fast_broker.status, "IBM", one, seconds=5)
    assert bar_streams(fast_sim) == ["IBM"]
    two.next()
    unsubscribe_bars(handle, fast_broker.status, "IBM", two, seconds=10)
    wait_until(lambda: bar_streams(fast_sim) == [], message="the bar stream to be cancelled")
    wait_until(lambda: fast_broker.node().details["bar_streams"] == [], message="the snapshot")


def test_the_bar_subscription_survives_a_lost_connection(
    fast_broker: BrokerHarness, fast_sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """After the gateway drops the connection, the broker reconnects and the minute-bar subscriber
    receives bars again without subscribing anew."""
    fast_broker.wait_state(ConnectionState.SYNCED)
    handle, sink = fast_broker.tree.handle("broker"), BarQueue()
    subscribe_bars(handle, fast_broker.status, "AAPL", sink)
    before = sink.next()
    connects = fast_broker.status.view().connects
    fast_sim.call(lambda s: s.close_all_connections())
    wait_until(
        lambda: (
            fast_broker.status.view().connects > connects
            and fast_broker.state == ConnectionState.SYNCED
        ),
        timeout_s=15,
        message="the broker to reconnect",
    )
    sink.drain()
    after = sink.next()
    assert after.start > before.start
    assert after.seconds == 60
    assert bar_streams(fast_sim) == ["AAPL"]


def test_bar_subscription_to_an_unknown_symbol_is_refused(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """Subscribing to bars of a symbol the gateway does not know fails with an error naming it,
    and no stream is left open."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    with pytest.raises(UnknownSymbol, match="unknown symbol 'NOSUCHSYM'"):
        subscribe_bars(handle, broker.status, "NOSUCHSYM", BarQueue())
    assert bar_streams(sim) == []
    assert broker.node().details["bar_streams"] == []


@pytest.mark.parametrize(
    ("symbol", "seconds", "message"),
    [
        ("aapl", 60, "symbol: 1-20 upper-case"),
        ("AAPL", 7, "seconds: a multiple of 5"),
        ("AAPL", 0, "seconds: a multiple of 5"),
        ("AAPL", 7200, "seconds: a multiple of 5"),
    ],
)
def test_a_malformed_bar_subscription_is_refused(
    broker: BrokerHarness, symbol: str, seconds: int, message: str
) -> None:
    """A malformed symbol or bar length is refused with one clear message naming it."""
    broker.wait_state(ConnectionState.SYNCED)
    handle = broker.tree.handle("broker")
    with pytest.raises(ValueError, match=message):
        subscribe_bars(handle, broker.status, symbol, BarQueue(), seconds=seconds)


def test_bars_are_refused_while_the_broker_is_not_synced(
    broker: BrokerHarness, sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """While the gateway is unreachable, bar requests and subscriptions are refused at once."""
    broker.wait_state(ConnectionState.SYNCED)
    sim.run(sim.call(lambda s: s.refuse_connections(30.0)))
    broker.wait_state(ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
    handle = broker.tree.handle("broker")
    with pytest.raises(BrokerNotReady, match="bars refused"):
        historical_bars(handle, broker.status, "AAPL")
    with pytest.raises(BrokerNotReady, match="subscribe refused"):
        subscribe_bars(handle, broker.status, "AAPL", BarQueue())


def test_the_simulators_default_bars_reach_a_subscriber() -> None:
    """With the simulator's own clock and 5-second bars shortened, a 5-second subscriber receives
    real-time bars (no fast clock needed)."""
    sim = SimulatorThread(build_simulator(seed=1, tick_interval_s=0.05), port=0)
    sim.start()
    sim.call(lambda s: setattr(s, "realtime_bar_s", 0.2))
    harness = BrokerHarness(sim.port)
    harness.start()
    try:
        harness.wait_state(ConnectionState.SYNCED)
        sink = BarQueue()
        subscribe_bars(harness.tree.handle("broker"), harness.status, "AAPL", sink, seconds=5)
        assert sink.next().symbol == "AAPL"
    finally:
        harness.stop()
        sim.stop()


def test_bars_are_requested_again_after_data_lost(
    fast_broker: BrokerHarness, fast_sim: SimulatorThread, ib_errors: IbErrorGuard
) -> None:
    """After 1101 (connectivity restored, data lost) the broker requests the real-time bars
    again, and the minute-bar subscriber keeps receiving whole minutes."""
    fast_broker.wait_state(ConnectionState.SYNCED)
    handle, sink = fast_broker.tree.handle("broker"), BarQueue()
    subscribe_bars(handle, fast_broker.status, "AAPL", sink)
    before = sink.next()
    requested = fast_sim.call(lambda s: s.requests_received[REQ_REAL_TIME_BARS])
    fast_sim.call(lambda s: s.connectivity_lost())
    fast_broker.wait_state(ConnectionState.DEGRADED)
    fast_sim.call(lambda s: s.connectivity_restored(data_lost=True))
    wait_until(
        lambda: fast_sim.call(lambda s: s.requests_received[REQ_REAL_TIME_BARS]) > requested,
        message="the real-time bars to be requested again",
    )
    sink.drain()
    after = sink.next()
    assert after.start > before.start
    assert after.start.second == 0
    assert bar_streams(fast_sim) == ["AAPL"]
