"""The last signals of each strategy, for the strategies page: one read, then the hub.

A strategy's last signals are the newest SIGNAL events stored with its ``strategy_id``.
Reading them from the events table on every refresh of every open page would cost a
query per strategy each 1.5 s (and that query is not cheap on a large table: see
PERFORMANCE.md, Dashboard). So the book reads a strategy's signals once, the first time
they are asked for, and from then on adds each new SIGNAL event as the event hub
publishes it (once durable). The hub listener is attached before any read, and while a
strategy's first read runs its new signals are collected aside: a signal stored
meanwhile is in one of the two, and duplicates are dropped by id.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from tradingbot.events import SIGNAL, Event
from tradingbot.storage import Database, EventQuery


class SignalBook:
    """The ``keep`` newest signals per strategy (thread-safe: the hub's thread adds,
    request threads read)."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._signals: dict[str, deque[Event]] = {}  # newest first, per strategy read once
        self._reading: dict[str, list[Event]] = {}  # signals seen during a first read

    def on_events(self, events: Sequence[Event]) -> None:
        """Hub listener (the event logger's thread): add the SIGNALs of strategies read."""
        with self._lock:
            for event in events:
                if event.type != SIGNAL or not event.strategy_id:
                    continue
                kept = self._signals.get(event.strategy_id)
                if kept is not None and all(e.id != event.id for e in kept):
                    kept.appendleft(event)
                seen = self._reading.get(event.strategy_id)
                if seen is not None:
                    seen.append(event)

    def latest(self, database: Database, strategy_id: str) -> list[Event]:
        """The newest signals of ``strategy_id``, newest first (blocking on the first call
        per strategy: run it off the event loop; StorageError when unreadable)."""
        with self._lock:
            kept = self._signals.get(strategy_id)
            if kept is not None:
                return list(kept)
            self._reading.setdefault(strategy_id, [])
        try:
            page = database.events.query(
                EventQuery(types=(SIGNAL,), strategy_id=strategy_id, limit=self._keep)
            )
        except BaseException:
            with self._lock:
                self._reading.pop(strategy_id, None)
            raise
        with self._lock:
            seen = self._reading.pop(strategy_id, [])
            kept = self._signals.get(strategy_id)  # another request's first read, if any
            merged = {e.id: e for e in (*page.events, *seen, *(kept or ()))}
            newest = sorted(merged.values(), key=lambda e: e.timestamp, reverse=True)
            self._signals[strategy_id] = deque(newest[: self._keep], maxlen=self._keep)
            return newest[: self._keep]
