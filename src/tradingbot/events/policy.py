"""Which events are persisted: configured types, plus anything at or above a severity."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tradingbot.events.model import ORDER, RISK, SIGNAL, TRADE, Event, Severity, check_type

DEFAULT_PERSISTED_TYPES = (TRADE, SIGNAL, ORDER, RISK)


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistPolicy:
    """Persist an event if its type is listed or its severity reaches ``min_severity``."""

    types: frozenset[str] = frozenset(DEFAULT_PERSISTED_TYPES)
    min_severity: Severity = Severity.WARNING

    @classmethod
    def of(cls, types: Iterable[str], min_severity: Severity) -> PersistPolicy:
        return cls(types=frozenset(check_type(t) for t in types), min_severity=min_severity)

    def persists(self, event: Event) -> bool:
        # TRADE, ORDER and SIGNAL are the trading record: always persisted, whatever the config.
        return event.durable or event.type in self.types or event.severity >= self.min_severity
