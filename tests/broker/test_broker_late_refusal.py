"""An order refused at the last moment (a gate closed while its ORDER event was being
stored): the gateway never sees it, and its end is stored durably, so a crash right after
cannot leave it open in our books for reconciliation to report as an orphaned order."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from brokerharness import BrokerHarness, wait_until

from support.memory_events import MemorySink
from tradingbot.broker import ConnectionState, OrderRequest, TradingBlocked, place_order
from tradingbot.broker.status import KILL_SWITCH_GATE, BrokerStatus
from tradingbot.events import ORDER, Event
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.gateway import SimulatorThread

PAUSE = "paused by the test while the ORDER event was being stored"


class PausingSink(MemorySink):
    """The event logger's stand-in: pauses trading as it stores an order's placement (the
    operator's pause arriving at that moment), and remembers which events were durable."""

    def __init__(self, status: BrokerStatus) -> None:
        super().__init__()
        self._status = status
        self.durable: set[str] = set()
        self._guard = threading.Lock()

    def tell(self, message: Any) -> None:
        assert isinstance(message, RecordEvents)
        if message.ack is not None:
            with self._guard:
                self.durable.update(str(e.id) for e in message.events)
        if any(e.type == ORDER and e.context.get("action") == "place" for e in message.events):
            self._status.block_trading(PAUSE, gate=KILL_SWITCH_GATE)
        super().tell(message)


def _final(sink: PausingSink) -> Event | None:
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
