"""The event: what the bot did, as one immutable, uniquely identified record.

Every event carries a client-generated UUID, so a replay after a crash or a database
outage can never store it twice (the database has a unique constraint on it).
Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

# The built-in types; a strategy may declare more (upper-case identifiers).
TRADE = "TRADE"
SIGNAL = "SIGNAL"
ORDER = "ORDER"
RISK = "RISK"
SYSTEM = "SYSTEM"
BUILTIN_TYPES = (TRADE, SIGNAL, ORDER, RISK, SYSTEM)
# Types whose recording can be acknowledged only once durable (committed or spooled),
# and which are stored whatever the persistence settings: the trading record, and the
# strategies' decisions (a SIGNAL is stored before any order it causes).
DURABLE_TYPES = frozenset({TRADE, ORDER, SIGNAL})

_TYPE_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
MAX_MESSAGE_CHARS = 4000
MAX_ID_CHARS = 128


class Severity(enum.IntEnum):
    """Event severity, ordered like logging levels."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, value: str | int | Severity) -> Severity:
        """``"warning"``, ``"WARNING"``, ``30`` or ``Severity.WARNING``; ValueError otherwise."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(member.name for member in cls)
            raise ValueError(f"unknown severity {value!r}; expected one of {names}") from None


class EventValidationError(ValueError):
    """An event field is invalid; the message names the field."""


def check_type(value: str) -> str:
    """Return the event type if it is an upper-case identifier (``TRADE``, ``MY_SIGNAL``)."""
    if not isinstance(value, str) or not _TYPE_PATTERN.fullmatch(value):
        raise EventValidationError(
            f"type: expected an upper-case identifier of at most 32 characters, got {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One recorded event. ``context`` must be JSON-serialisable."""

    type: str
    message: str
    severity: Severity = Severity.INFO
    source: str = ""
    strategy_id: str | None = None
    trade_id: str | None = None
    user_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        check_type(self.type)
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity.parse(self.severity))
        if self.timestamp.tzinfo is None:
            raise EventValidationError("timestamp: expected a timezone-aware datetime")
        if self.timestamp.utcoffset() != UTC.utcoffset(None):
            object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))
        if len(self.message) > MAX_MESSAGE_CHARS:
            raise EventValidationError(
                f"message: at most {MAX_MESSAGE_CHARS} characters, got {len(self.message)}"
            )
        for name in ("source", "strategy_id", "trade_id", "user_id"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_ID_CHARS:
                raise EventValidationError(f"{name}: at most {MAX_ID_CHARS} characters")
        if not isinstance(self.context, dict):
            raise EventValidationError("context: expected a JSON object (dict)")
        try:
            orjson.dumps(self.context)
        except TypeError as exc:
            # Caught here, at the caller, not later inside the event logger's batch.
            raise EventValidationError(f"context: not JSON-serialisable: {exc}") from None

    @property
    def durable(self) -> bool:
        """True for the types that callers may wait on until stored (TRADE, ORDER, SIGNAL)."""
        return self.type in DURABLE_TYPES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the shape of ``GET /api/events`` items)."""
        return {
            "id": str(self.id),
            "timestamp": self.timestamp.isoformat(),
            "type": self.type,
            "severity": self.severity.name,
            "message": self.message,
            "source": self.source,
            "strategy_id": self.strategy_id,
            "trade_id": self.trade_id,
            "user_id": self.user_id,
            "context": self.context,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Inverse of :meth:`to_dict` (used by the spool); raises EventValidationError."""
        try:
            return cls(
                id=uuid.UUID(data["id"]),
                timestamp=datetime.fromisoformat(data["timestamp"]),
                type=data["type"],
                severity=Severity.parse(data["severity"]),
                message=data["message"],
                source=data.get("source") or "",
                strategy_id=data.get("strategy_id"),
                trade_id=data.get("trade_id"),
                user_id=data.get("user_id"),
                context=data.get("context") or {},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EventValidationError(f"not an event record: {exc}") from None
