"""A supervision tree holding one broker actor, with events collected in memory."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from support.waiting import wait_until
from tradingbot.broker import BrokerActor, BrokerSettings, BrokerStatus, ConnectionState
from tradingbot.broker.market import MarketData
from tradingbot.events import Event
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.supervision import ActorSnapshot, Backoff, SupervisionTree, supervisor, worker

T = TypeVar("T")

BACKOFF = Backoff(min_s=0.2, max_s=1.0, reset_after_s=60.0)


class MemorySink:
    """Stands in for the event logger: keeps events, acknowledges durable ones at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []

    def tell(self, message: Any) -> None:
        assert isinstance(message, RecordEvents)
        with self._lock:
            self.events.extend(message.events)
        if message.ack is not None:
            message.ack.set_result(None)

    def of_type(self, type_: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.type == type_]


class BrokerHarness:
    def __init__(self, port: int, **settings: Any) -> None:
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
                        lambda: BrokerActor(self.settings, self.status, self.recorder, self.market),
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
