"""Events: what the bot did (signals, orders, fills, risk decisions, crashes), durably."""

from tradingbot.events.model import (
    BUILTIN_TYPES,
    DURABLE_TYPES,
    ORDER,
    RISK,
    SIGNAL,
    SYSTEM,
    TRADE,
    Event,
    EventValidationError,
    Severity,
    check_type,
)

__all__ = [
    "BUILTIN_TYPES",
    "DURABLE_TYPES",
    "ORDER",
    "RISK",
    "SIGNAL",
    "SYSTEM",
    "TRADE",
    "Event",
    "EventValidationError",
    "Severity",
    "check_type",
]
