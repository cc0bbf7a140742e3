"""Orders stopped before ``placeOrder``: refused at the last moment (a gate closed while
their ORDER event was being stored), or cut off by a lost connection during a reduce-only
order's position check. The gateway never sees them, and their end is stored durably, so
nothing is left open in our books for reconciliation to report as an orphaned order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from brokerharness import BrokerHarness, wait_until

import tradingbot.broker.orders as orders_module
from support.ib_errors import IbErrorGuard
from support.memory_events import MemorySink
from tradingbot.broker import (
    BrokerConnectionError,
    ConnectionState,
    OrderRequest,
    TradingBlocked,
    place_order,
)
from tradingbot.broker.status import KILL_SWITCH_GATE, BrokerStatus
from tradingbot.events import ORDER, Event
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.gateway import SimulatorThread

PAUSE = "paused by the test while the ORDER event was being stored"


class DurableSink(MemorySink):
    """The event logger's stand-in: remembers which events were stored durably."""

    def __init__(self) -> None:
        super().__init__()
        self.durable: set[str] = set()
        self._guard = threading.Lock()

    def tell(self, message: Any) -> None:
        assert isinstance(message, RecordEvents)
        if message.ack is not None:
            with self._guard:
                self.durable.update(str(e.id) for e in message.events)
        super().tell(message)


class PausingSink(DurableSink):
    """Pauses trading as it stores an order's placement (the operator's pause arriving
    at that moment)."""

    def __init__(self, status: BrokerStatus) -> None:
        super().__init__()
        self._status = status

    def tell(self, message: Any) -> None:
        assert isinstance(message, RecordEvents)
        if any(e.type == ORDER and e.context.get("action") == "place" for e in message.events):
            self._status.block_trading(PAUSE, gate=KILL_SWITCH_GATE)
        super().tell(message)


def _final(sink: MemorySink) -> Event | None:
    ends = [e for e in sink.of_type(ORDER) if e.context.get("action") == "final"]
    return ends[0] if ends else None


def test_an_order_refused_at_the_last_moment_is_never_sent_and_its_end_is_durable(
    sim: SimulatorThread,
) -> None:
    """The pause lands while the ORDER event is stored: the caller gets TradingBlocked,
    the gateway receives no order, and the order's Cancelled end is a durable ORDER event
    saying it was never sent."""
    broker = BrokerHarness(sim.port)
    sink = PausingSink(broker.status)
    broker.sink = sink
    broker.recorder = EventRecorder(sink)
    broker.start()
    try:
        broker.wait_state(ConnectionState.SYNCED)
        with pytest.raises(TradingBlocked, match="trading is blocked"):
            place_order(
                broker.tree.handle("broker"),
                broker.status,
                OrderRequest("AAPL", "BUY", 5, client_order_id="late-refusal"),
                timeout_s=30,
            )
        end = wait_until(lambda: _final(sink), 10, "the order's final ORDER event")
        placed = [e for e in sink.of_type(ORDER) if e.context.get("action") == "place"]
        assert len(placed) == 1
        assert end.context["status"] == "Cancelled"
        assert (end.context["filled"], end.context["avg_fill_price"]) == (0, 0)
        assert end.context["order_ref"] == placed[0].context["order_ref"]
        assert end.trade_id == placed[0].trade_id == end.context["order_ref"]
        assert str(end.id) in sink.durable
        assert PAUSE in end.context["never_sent"]
        assert sim.call(lambda s: len(s.brokerage.orders)) == 0
        record = broker.status.order(str(placed[0].context["order_ref"]))
        assert record is not None
        assert record.status == "Cancelled"
        assert (record.order_id, record.perm_id, record.filled) == (0, 0, 0)  # never at the gateway
    finally:
        broker.stop()


def _assert_cut_off_order_ends_unsent(
    sim: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    check: Callable[[Any], Awaitable[None]],
) -> None:
    """Place a reduce-only order whose position check is ``check(ib)`` (it cuts the
    connection): the caller hears it was never sent; its Cancelled end is stored durably
    and, once the broker is back, nothing is unresolved and the gateway has no order."""

    async def position_check(ib: Any, *args: Any) -> None:
        await check(ib)

    monkeypatch.setattr(orders_module, "refuse_unless_reducing", position_check)
    broker = BrokerHarness(sim.port)
    sink = DurableSink()
    broker.sink = sink
    broker.recorder = EventRecorder(sink)
    broker.start()
    try:
        broker.wait_state(ConnectionState.SYNCED)
        request = OrderRequest("AAPL", "SELL", 5, client_order_id="cut-off", reduce_only=True)
        with pytest.raises(BrokerConnectionError, match="before the order was sent"):
            place_order(broker.tree.handle("broker"), broker.status, request, 30)
        end = wait_until(lambda: _final(sink), 15, "the order's final ORDER event")
        placed = [e for e in sink.of_type(ORDER) if e.context.get("action") == "place"]
        assert len(placed) == 1
        order_ref = str(placed[0].context["order_ref"])
        assert (end.context["order_ref"], end.context["status"]) == (order_ref, "Cancelled")
        assert "before the order was sent" in end.context["never_sent"]
        assert str(end.id) in sink.durable
        broker.wait_state(ConnectionState.SYNCED, timeout_s=15)
        record = broker.status.order(order_ref)
        assert record is not None
        assert (record.status, record.order_id, record.filled) == ("Cancelled", 0, 0)
        assert broker.status.unresolved_orders() == []
        assert sim.call(lambda s: len(s.brokerage.orders)) == 0
    finally:
        broker.stop()


def test_a_reduce_only_order_cut_off_in_its_position_check_ends_never_sent(
    sim: SimulatorThread, ib_errors: IbErrorGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flatten's reduce-only order still waiting for its position check when the gateway
    drops the connection was never sent: the caller hears so, and the next broker
    stores its Cancelled end durably instead of leaving it Unresolved (which the next
    reconciliation would report as an orphaned order and block trading on)."""
    ib_errors.allow(r"Peer closed connection|API connection failed|Connect call failed")

    async def cut_while_waiting(ib: Any) -> None:
        sim.call(lambda s: s.close_all_connections())
        await asyncio.Event().wait()  # the answer never comes: the broker's loop ends

    _assert_cut_off_order_ends_unsent(sim, monkeypatch, cut_while_waiting)


def test_an_order_whose_connection_closed_before_its_send_ends_never_sent(
    sim: SimulatorThread, ib_errors: IbErrorGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order reaching its send just after the client saw the connection close is not
    handed to placeOrder (which would refuse it, "Not connected", and leave it Unresolved):
    it ends Cancelled, never sent, with its end stored durably."""
    ib_errors.allow(r"Peer closed connection|API connection failed|Connect call failed")

    async def answered_after_the_close(ib: Any) -> None:
        # Resumed by the client's own disconnect handling: ahead of the broker's reaction.
        closed = asyncio.get_running_loop().create_future()
        ib.disconnectedEvent += lambda: closed.done() or closed.set_result(None)
        sim.call(lambda s: s.close_all_connections())
        await closed
        assert not ib.isConnected()

    _assert_cut_off_order_ends_unsent(sim, monkeypatch, answered_after_the_close)
