"""Pre-trade risk limits in the broker's order path: the real ib_async client against the
simulator, with a :class:`RiskBook` as the runtime hands it to the broker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from brokerharness import BrokerHarness

from support.waiting import wait_until
from tradingbot.broker import (
    AccountPnL,
    BrokerConnectionError,
    ConnectionState,
    OrderRequest,
    RiskBook,
    RiskRefused,
    place_order,
)
from tradingbot.broker.answers import Holding
from tradingbot.broker.messages import PlaceOrder
from tradingbot.events import ORDER, RISK, Event
from tradingbot.gateway import SimulatorThread
from tradingbot.trading.risk import RiskLimits

LIMITS = RiskLimits(
    max_position_shares=100,
    max_position_usd=20_000,
    max_order_usd=10_000,
    max_open_orders=5,
    max_orders_per_minute=10,
    price_band_pct=5,
    daily_loss_limit_usd=1_000,
    warn_at=0.8,
)


class Inbox:
    """Stands in for the loss limit's monitor: keeps every P&L report told to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[Any] = []

    def tell(self, message: Any) -> None:
        with self._lock:
            self.messages.append(message)

    def last(self) -> Any:
        with self._lock:
            return self.messages[-1] if self.messages else None


@pytest.fixture
def book() -> RiskBook:
    return RiskBook(LIMITS)


@pytest.fixture
def pnls() -> Inbox:
    return Inbox()


@pytest.fixture
def guarded(sim: SimulatorThread, book: RiskBook, pnls: Inbox) -> Iterator[BrokerHarness]:
    """A broker with risk limits, synced with the simulator."""
    harness = BrokerHarness(sim.port, risk=book, pnl_sink=pnls)
    harness.start()
    harness.wait_state(ConnectionState.SYNCED)
    yield harness
    harness.stop()


def _place(broker: BrokerHarness, request: OrderRequest) -> str:
    return place_order(broker.tree.handle("broker"), broker.status, request, 15.0)


def _at_gateway(sim: SimulatorThread) -> list[str]:
    return sim.call(lambda s: sorted(o.order_ref for o in s.brokerage.orders.values()))


def _risk(broker: BrokerHarness, event: str) -> list[Event]:
    return [e for e in broker.sink.of_type(RISK) if e.context.get("event") == event]


def _filled(broker: BrokerHarness, ref: str) -> None:
    record = broker.status.wait_for_order(ref, {"Filled"}, timeout_s=15)
    assert record is not None, f"order {ref} did not fill"


def test_a_refused_order_never_reaches_the_simulator_and_leaves_one_risk_event(
    guarded: BrokerHarness, sim: SimulatorThread
) -> None:
    """An order worth more than the order limit is refused naming the limit, the value and
    the order; nothing reaches the gateway and no ORDER event is written, one RISK is."""
    with pytest.raises(RiskRefused, match="max_order_usd") as refused:
        _place(guarded, OrderRequest("AAPL", "BUY", 30, client_order_id="too-big"))
    assert refused.value.limit == "max_order_usd"
    assert refused.value.value > LIMITS.max_order_usd
    assert "BUY 30 AAPL MKT" in str(refused.value)
    assert _at_gateway(sim) == []
    assert guarded.sink.of_type(ORDER) == []
    [event] = guarded.sink.of_type(RISK)
    assert event.severity.name == "WARNING"
    assert event.source == "risk"
    context = event.context
    assert (context["event"], context["limit"], context["maximum"]) == (
        "risk_refused",
        "max_order_usd",
        10_000,
    )
    assert context["order"]["symbol"] == "AAPL"
    assert context["order"]["client_order_id"] == "too-big"
    assert context["last_price"] > 0  # from a snapshot: nobody subscribed to AAPL


def test_a_limit_price_outside_the_band_is_refused(
    guarded: BrokerHarness, sim: SimulatorThread
) -> None:
    """A fat-fingered limit price (half the market) is refused by the price band."""
    market = sim.call(lambda s: s.brokerage.prices.price("MSFT"))
    request = OrderRequest("MSFT", "BUY", 1, "LMT", round(market * 0.5, 2))
    with pytest.raises(RiskRefused, match="price_band_pct"):
        _place(guarded, request)
    assert _at_gateway(sim) == []


def test_an_order_that_closes_a_position_passes_limits_it_would_break(
    guarded: BrokerHarness, book: RiskBook, sim: SimulatorThread
) -> None:
    """With limits tightened below a held position, the market order that closes it still
    goes out and fills; one share more (which would open a short) is refused."""
    bought = _place(guarded, OrderRequest("AAPL", "BUY", 5))
    _filled(guarded, bought)
    wait_until(lambda: guarded.status.position("AAPL") == 5, message="the position of 5 AAPL")
    book.limits = replace(LIMITS, max_order_usd=1.0, max_orders_per_minute=1, max_open_orders=1)

    sold = _place(guarded, OrderRequest("AAPL", "SELL", 5))
    _filled(guarded, sold)
    wait_until(lambda: guarded.status.position("AAPL") == 0, message="the position to close")
    with pytest.raises(RiskRefused, match="max_order_usd"):
        _place(guarded, OrderRequest("AAPL", "SELL", 1))
    assert _at_gateway(sim) == sorted([bought, sold])


def test_a_limit_nearly_used_is_reported_once_a_day(guarded: BrokerHarness, book: RiskBook) -> None:
    """Two orders each using over 80 % of the order limit pass; the nearing limit is one
    RISK WARNING naming it, not one per order."""
    book.limits = replace(LIMITS, max_order_usd=3_000)  # 5 AAPL near 488 use about 81 %
    for key in ("near-1", "near-2"):
        _filled(guarded, _place(guarded, OrderRequest("AAPL", "BUY", 5, client_order_id=key)))
    wait_until(lambda: _risk(guarded, "risk_nearing"), message="the nearing RISK event")
    nearing = _risk(guarded, "risk_nearing")
    assert [e.context["limit"] for e in nearing] == ["max_order_usd"]
    assert nearing[0].severity.name == "WARNING"
    assert _risk(guarded, "risk_refused") == []


def test_a_retry_while_the_quote_is_fetched_sends_one_order(
    guarded: BrokerHarness, sim: SimulatorThread
) -> None:
    """The same key placed twice in a row, while its first placing waits for a snapshot
    quote, is one order at the gateway and both callers get its id."""
    request = OrderRequest("MSFT", "BUY", 2, client_order_id="twice-1")
    first, second = PlaceOrder(request), PlaceOrder(request)
    guarded.tree.tell("broker", first)
    guarded.tree.tell("broker", second)
    assert first.reply.result(15) == second.reply.result(15) == "TB-twice-1"
    # The reply comes once the order left the client; the gateway reads one connection in
    # order, so once a later probe order is there, a second copy would be there too.
    probe = PlaceOrder(OrderRequest("MSFT", "BUY", 1, client_order_id="twice-probe"))
    guarded.tree.tell("broker", probe)
    assert probe.reply.result(15) == "TB-twice-probe"
    wait_until(lambda: "TB-twice-probe" in _at_gateway(sim), message="the probe at the gateway")
    assert _at_gateway(sim) == ["TB-twice-1", "TB-twice-probe"]
    placed = [e for e in guarded.sink.of_type(ORDER) if e.context["action"] == "place"]
    assert [e.context["order_ref"] for e in placed] == ["TB-twice-1", "TB-twice-probe"]


def test_a_retry_of_an_order_refused_while_its_quote_was_fetched_is_refused_too(
    guarded: BrokerHarness, sim: SimulatorThread
) -> None:
    """The same key placed twice while its first placing waits for a quote, and the first is
    refused by a limit: the retry is judged afresh and refused too; nothing is sent."""
    request = OrderRequest("AAPL", "BUY", 30, client_order_id="too-big-twice")
    first, second = PlaceOrder(request), PlaceOrder(request)
    guarded.tree.tell("broker", first)
    guarded.tree.tell("broker", second)
    for placing in (first, second):
        with pytest.raises(RiskRefused, match="max_order_usd"):
            placing.reply.result(15)
    assert guarded.node().restarts == 0
    assert _at_gateway(sim) == []
    assert guarded.sink.of_type(ORDER) == []


def test_an_order_waiting_for_its_quote_when_the_broker_crashes_is_refused_at_once(
    guarded: BrokerHarness, sim: SimulatorThread
) -> None:
    """The gateway never answers the quote an order's risk check waits for, and the broker
    actor crashes: the order is refused at once (its quote request ends with the client),
    and nothing is sent."""
    sim.call(lambda s: s.freeze())
    waiting = PlaceOrder(OrderRequest("AAPL", "BUY", 1, client_order_id="no-quote"))
    guarded.tree.tell("broker", waiting)
    guarded.tree.crash("broker")
    with pytest.raises(BrokerConnectionError):  # not a wait until the caller's timeout
        waiting.reply.result(10)
    sim.call(lambda s: s.unfreeze())
    guarded.wait_state(ConnectionState.SYNCED, timeout_s=15)
    assert _at_gateway(sim) == []
    assert guarded.sink.of_type(ORDER) == []


def test_the_account_pnl_is_followed_and_told(guarded: BrokerHarness, pnls: Inbox) -> None:
    """After the sync the account's P&L streams into the status (for the dashboard) and
    to the loss limit's monitor."""
    report = wait_until(pnls.last, message="a P&L report")
    assert isinstance(report, AccountPnL)
    assert report.account
    pnl = guarded.status.pnl()
    assert pnl is not None
    assert pnl.account == report.account


def test_a_position_is_valued_live_and_unsubscribed_once_closed(
    guarded: BrokerHarness, sim: SimulatorThread
) -> None:
    """After a fill the status holds the position's average cost, its market price and
    its unrealized and day's P&L, refreshed as the gateway streams them, and the
    account's NetLiquidation; once the position is closed it is gone and its P&L
    subscription is cancelled."""
    _filled(guarded, _place(guarded, OrderRequest("MSFT", "BUY", 2)))

    def valued() -> Holding | None:
        held = guarded.status.holdings().get("MSFT")
        live = held is not None and held.market_price is not None and held.daily is not None
        return held if live and held.quantity == 2 else None

    held = wait_until(valued, message="the MSFT holding's live valuation")
    assert held.avg_cost > 0
    assert held.market_price is not None
    assert held.market_value == pytest.approx(held.market_price * 2)
    assert held.unrealized is not None
    wait_until(
        lambda: guarded.status.holdings()["MSFT"].received_at > held.received_at,
        message="a newer valuation from the stream",
    )
    equity = guarded.status.account_value("NetLiquidation")
    assert equity is not None
    assert equity[1] == "USD"
    cancels = sim.call(lambda s: s.requests_received[CANCEL_PNL_SINGLE])
    _filled(guarded, _place(guarded, OrderRequest("MSFT", "SELL", 2)))
    wait_until(lambda: "MSFT" not in guarded.status.holdings(), message="the holding to go")
    wait_until(
        lambda: sim.call(lambda s: s.requests_received[CANCEL_PNL_SINGLE]) == cancels + 1,
        message="the position's P&L subscription to be cancelled",
    )


CANCEL_PNL_SINGLE = 95  # TWS request message id (ib_async.client)


REQ_PNL, CANCEL_PNL = 92, 93  # TWS request message ids (ib_async.client)


def test_the_pnl_is_asked_for_again_after_data_was_lost(
    guarded: BrokerHarness, sim: SimulatorThread, pnls: Inbox
) -> None:
    """After 1101 (data lost) the broker cancels and requests the account's P&L again
    (one subscription, not two) and reports keep reaching the monitor."""
    wait_until(pnls.last, message="a first P&L report")

    def asked() -> tuple[int, int]:
        return sim.call(lambda s: (s.requests_received[REQ_PNL], s.requests_received[CANCEL_PNL]))

    before = asked()
    assert before[0] >= 1
    sim.call(lambda s: s.connectivity_lost())
    guarded.wait_state(ConnectionState.DEGRADED)
    sim.call(lambda s: s.connectivity_restored(data_lost=True))
    wait_until(lambda: asked() == (before[0] + 1, before[1] + 1), message="one P&L renewal")
    guarded.wait_state(ConnectionState.SYNCED)
    seen = len(pnls.messages)
    wait_until(lambda: len(pnls.messages) > seen, message="P&L reports after the renewal")
