"""The public API to record an event, for strategies and actors.

```python
recorder = runtime.recorder.bind(source="my_strategy", strategy_id="mean-revert-1")
recorder.record(SIGNAL, "z-score crossed 2.0", context={"z": 2.04})
recorder.record_durable(ORDER, "BUY 10 AAPL LMT 189.20", trade_id="T-42")  # blocks until stored
```

``record`` never blocks: the event goes to the event logger actor by name (it survives
the actor's restarts). ``record_durable`` returns only once the event is committed to
the database or fsync'd to the spool — a caller holding the result knows it is durable.
Context bound with ``structlog.contextvars`` (``strategy_id``, ``trade_id``,
``user_id``) fills those fields when not given. Every event is also written as a log
line, and secrets are redacted before anything is stored or logged.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from tradingbot.events.model import Event, Severity
from tradingbot.tellable import Tellable

log = structlog.get_logger("tradingbot.events")

_CONTEXT_FIELDS = ("strategy_id", "trade_id", "user_id")


class EventNotDurable(RuntimeError):
    """A durable record could not be confirmed (timeout, or both database and spool failed)."""


@dataclass(frozen=True, slots=True)
class RecordEvents:
    """Command to the event logger: store these events; resolve ``ack`` once durable."""

    events: tuple[Event, ...]
    ack: concurrent.futures.Future[None] | None = None


Scrubber = Callable[[dict[str, Any]], None]  # redacts a mapping in place


def _no_scrub(data: dict[str, Any]) -> None:
    return None


class EventRecorder:
    """Records events; cheap to copy with :meth:`bind` for a fixed source or strategy."""

    def __init__(
        self,
        sink: Tellable,  # where recorded events go: the event logger's handle (by name)
        *,
        source: str = "",
        defaults: Mapping[str, str | None] | None = None,
        scrub: Scrubber = _no_scrub,
    ) -> None:
        self._sink = sink
        self._source = source
        self._defaults = dict(defaults or {})
        self._scrub = scrub

    def bind(self, *, source: str | None = None, **defaults: str | None) -> EventRecorder:
        """A recorder with a fixed ``source`` and default strategy_id, trade_id, user_id."""
        unknown = set(defaults) - set(_CONTEXT_FIELDS)
        if unknown:
            raise TypeError(f"bind() got unexpected fields: {', '.join(sorted(unknown))}")
        return EventRecorder(
            self._sink,
            source=self._source if source is None else source,
            defaults={**self._defaults, **defaults},
            scrub=self._scrub,
        )

    def build(
        self,
        type: str,
        message: str,
        *,
        severity: Severity | str | int = Severity.INFO,
        context: Mapping[str, Any] | None = None,
        strategy_id: str | None = None,
        trade_id: str | None = None,
        user_id: str | None = None,
        source: str | None = None,
        event_id: uuid.UUID | None = None,
    ) -> Event:
        """Validate and build an event (context variables fill the id fields).

        ``event_id`` makes recording idempotent: an event derived from a fact with its
        own identity (a fill's execution id) gets the same UUID every time it is seen,
        and the events table stores it once.
        """
        bound = structlog.contextvars.get_contextvars()
        ids = {
            "strategy_id": strategy_id,
            "trade_id": trade_id,
            "user_id": user_id,
        }
        for name in _CONTEXT_FIELDS:
            if ids[name] is None:
                ids[name] = self._defaults.get(name) or _as_str(bound.get(name))
        scrubbed: dict[str, Any] = {"message": message, "context": dict(context or {})}
        self._scrub(scrubbed)
        event = Event(
            type=type,
            message=scrubbed["message"],
            severity=Severity.parse(severity),
            source=source or self._source or _as_str(bound.get("actor")) or "",
            context=scrubbed["context"],
            strategy_id=ids["strategy_id"],
            trade_id=ids["trade_id"],
            user_id=ids["user_id"],
        )
        return event if event_id is None else dataclasses.replace(event, id=event_id)

    def record(self, type: str, message: str, *, log_line: bool = True, **fields: Any) -> Event:
        """Record an event without waiting; returns it (with its UUID).

        ``log_line=False`` skips the log line, for callers that already logged it.
        """
        event = self.build(type, message, **fields)
        if log_line:
            self._log(event)
        self._sink.tell(RecordEvents((event,)))
        return event

    def record_async(
        self, type: str, message: str, **fields: Any
    ) -> tuple[Event, concurrent.futures.Future[None]]:
        """Record an event; the future resolves once it is durable (or fails)."""
        event = self.build(type, message, **fields)
        self._log(event)
        ack: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._sink.tell(RecordEvents((event,), ack))
        return event, ack

    def record_durable(
        self, type: str, message: str, *, timeout_s: float = 10.0, **fields: Any
    ) -> Event:
        """Record an event and wait until it is committed or spooled; EventNotDurable if not."""
        event, ack = self.record_async(type, message, **fields)
        try:
            ack.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise EventNotDurable(
                f"event {event.id} not confirmed durable within {timeout_s:g} s"
            ) from None
        except Exception as exc:
            raise EventNotDurable(f"event {event.id} not stored: {exc}") from exc
        return event

    def _log(self, event: Event) -> None:
        log.log(
            int(event.severity),
            event.message,
            event_type=event.type,
            event_id=str(event.id),
            source=event.source,
            strategy_id=event.strategy_id,
            trade_id=event.trade_id,
            user_id=event.user_id,
            context=event.context,
        )


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)
