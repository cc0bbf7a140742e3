"""A supervision tree holding one broker actor, with events collected in memory."""

from __future__ import annotations

from typing import Any, TypeVar

from support.memory_events import MemorySink
from support.waiting import wait_until
from tradingbot.broker import BrokerActor, BrokerSettings, BrokerStatus, ConnectionState, RiskBook
from tradingbot.broker.market import MarketData
from tradingbot.events.recorder import EventRecorder
from tradingbot.gateway import SimulatorThread
from tradingbot.supervision import ActorSnapshot, Backoff, SupervisionTree, supervisor, worker
from tradingbot.tellable import Tellable

T = TypeVar("T")

BACKOFF = Backoff(min_s=0.2, max_s=1.0, reset_after_s=60.0)


class BrokerHarness:
    def __init__(
        self,
        port: int,
        *,
        risk: RiskBook | None = None,
        pnl_sink: Tellable | None = None,
        **settings: Any,
    ) -> None:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "client_id": 7,
            "connect_timeout_s": 2.0,
            "probe_interval_s": 0.2,
            "probe_timeout_s": 0.3,
            "max_probe_misses": 3,
            **settings,
        }
        self.settings = BrokerSettings(**options)
        self.status = BrokerStatus()
        self.market = MarketData()
        self.sink = MemorySink()
        self.recorder = EventRecorder(self.sink)
        self.tree = SupervisionTree(
            supervisor(
                "root",
                [
                    worker(
                        "broker",
                        lambda: BrokerActor(
                            self.settings,
                            self.status,
                            self.recorder,
                            self.market,
                            risk=risk,
                            pnl_sink=pnl_sink,
                        ),
                        backoff=BACKOFF,
                        start_timeout_s=10.0,
                    )
                ],
            ),
            listeners=(),
        )

    def start(self) -> None:
        self.tree.start()

    def stop(self) -> None:
        self.tree.stop()

    def node(self) -> ActorSnapshot:
        node = self.tree.snapshot().find("broker")
        assert node is not None
        return node

    @property
    def state(self) -> ConnectionState:
        return self.status.view().state

    def wait_state(self, *states: ConnectionState, timeout_s: float = 10.0) -> None:
        wait_until(
            lambda: self.state in states and self.node().details.get("state") in states,
            timeout_s,
            f"broker state in {[s.value for s in states]} (now {self.state.value})",
        )


def at_gateway(sim: SimulatorThread, ref: str) -> list[str]:
    """Statuses of the simulator's orders carrying ``ref`` (the brokerage keeps them all)."""
    return sim.call(lambda s: [o.status for o in s.brokerage.orders.values() if o.order_ref == ref])
