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

import structlog

from tradingbot.events.model import Event

log = structlog.get_logger(__name__)

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


class Listener:
    """A synchronous subscriber: ``callback`` runs on the publishing thread (the event
    logger's), so it must be quick and must not block; it typically tells an actor."""

    def __init__(self, hub: EventHub, callback: Callable[[Sequence[Event]], None]) -> None:
        self._hub = hub
        self._callback = callback

    def offer(self, events: Sequence[Event]) -> None:
        try:
            self._callback(events)
        except Exception:  # a listener's bug must never reach the event logger
            log.exception("event_listener_failed", listener=repr(self._callback))

    def close(self) -> None:
        self._hub.unsubscribe(self)


class EventHub:
    """Thread-safe publish/subscribe of durable events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription | Listener] = []

    def subscribe(self, accept: EventFilter, *, max_pending: int = 1000) -> Subscription:
        """Subscribe from a coroutine; events arrive on the running loop's queue."""
        subscription = Subscription(self, asyncio.get_running_loop(), accept, max_pending)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def listen(self, callback: Callable[[Sequence[Event]], None]) -> Listener:
        """Call ``callback`` with every published batch, on the publishing thread."""
        listener = Listener(self, callback)
        with self._lock:
            self._subscriptions.append(listener)
        return listener

    def unsubscribe(self, subscription: Subscription | Listener) -> None:
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
        """Live stream subscribers (in-process listeners are not counted)."""
        with self._lock:
            return sum(1 for s in self._subscriptions if isinstance(s, Subscription))
