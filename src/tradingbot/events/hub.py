"""Live fan-out of stored events to subscribers (the ``/api/events/stream`` WebSocket).

The event logger publishes each batch from its own thread once it is durable; every
subscriber has a bounded queue on its own asyncio loop. A subscriber that falls more
than ``max_pending`` events behind is marked overflowed instead of buffering without
bound; its consumer closes the connection with a clear reason.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from tradingbot.events.model import Event

EventFilter = Callable[[Event], bool]


class Subscription:
    """One subscriber: an asyncio queue fed from other threads, and an overflow flag."""

    def __init__(
        self, hub: EventHub, loop: asyncio.AbstractEventLoop, accept: EventFilter, max_pending: int
    ) -> None:
        self._hub = hub
        self._loop = loop
        self._accept = accept
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=max_pending)
        self.overflowed = False

    def offer(self, events: Sequence[Event]) -> None:
        """Called from the publishing thread."""
        wanted = [event for event in events if self._accept(event)]
        if wanted and not self.overflowed:
            self._loop.call_soon_threadsafe(self._put, wanted)

    def _put(self, events: list[Event]) -> None:
        for event in events:
            if self.overflowed:
                return
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.overflowed = True
                self._drain_and_wake()

    def _drain_and_wake(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)  # wakes the consumer, which sees ``overflowed``

    def close(self) -> None:
        self._hub.unsubscribe(self)


class EventHub:
    """Thread-safe publish/subscribe of durable events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []

    def subscribe(self, accept: EventFilter, *, max_pending: int = 1000) -> Subscription:
        """Subscribe from a coroutine; events arrive on the running loop's queue."""
        subscription = Subscription(self, asyncio.get_running_loop(), accept, max_pending)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    def publish(self, events: Sequence[Event]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            try:
                subscription.offer(events)
            except RuntimeError:  # its loop is closed: the subscriber is gone
                self.unsubscribe(subscription)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscriptions)
