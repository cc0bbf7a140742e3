"""Supervision events recorded as SYSTEM events, including after the event logger stopped."""

from __future__ import annotations

from typing import Any

from tradingbot.events import SYSTEM, Event
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.events.system import SystemEventRecorder
from tradingbot.supervision import (
    MessagesDropped,
    SupervisedActor,
    SupervisionEvent,
    SupervisionTree,
    supervisor,
    worker,
)


class Collector(SupervisedActor):
    """Stands in for the event logger: keeps what it is told."""

    def __init__(self, kept: list[Event]) -> None:
        super().__init__()
        self._kept = kept

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RecordEvents):
            self._kept.extend(message.events)
            return None
        return super().on_receive(message)


def test_a_drop_after_the_event_logger_stopped_does_not_recurse() -> None:
    """Recording a SYSTEM event once the event logger is gone is a dropped tell, itself a
    supervision event: it is logged, not recorded again (which would recurse forever)."""
    kept: list[Event] = []
    seen: list[SupervisionEvent] = []
    tree = SupervisionTree(
        supervisor("root", [worker("event_logger", lambda: Collector(kept))]),
        listeners=(seen.append,),
    )
    recorder = EventRecorder(tree.handle("event_logger"))
    tree.add_listener(SystemEventRecorder(recorder))
    tree.start()
    tree.stop()
    recorder.record(SYSTEM, "after the stop")  # dropped: a MessagesDropped event follows
    drops = [e for e in seen if isinstance(e, MessagesDropped)]
    # The original drop, and the drop of its own SYSTEM event: then the guard stops it.
    assert [d.actor for d in drops] == ["event_logger", "event_logger"]
    assert tree.handle("event_logger").dropped == 2
    assert all(e.type == SYSTEM for e in kept)
