"""What the events repository is asked (:class:`EventQuery`) and what it answers.

:class:`EventQuery` validates itself when built, so a bad parameter is reported before
any database is touched, by an :class:`~tradingbot.storage.InvalidQuery` whose message
starts with the parameter's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradingbot.events.model import (
    MAX_ID_CHARS,
    Event,
    EventValidationError,
    Severity,
    check_type,
)
from tradingbot.storage.cursor import decode_cursor
from tradingbot.storage.errors import InvalidQuery

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TYPES = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class EventQuery:
    """A page of events, newest first, matching every given filter.

    - ``types``: any of these types (empty: every type).
    - ``min_severity``: this severity or above (a :class:`Severity`, or its name or value).
    - ``since`` (inclusive) / ``until`` (exclusive): timezone-aware datetimes.
    - ``strategy_id``, ``trade_id``: exact match.
    - ``limit``: page size, 1..1000.
    - ``cursor``: ``next_cursor`` of the previous page, with the same filters.

    Raises :class:`~tradingbot.storage.InvalidQuery` naming the parameter.
    """

    types: tuple[str, ...] = ()
    min_severity: Severity | None = None
    since: datetime | None = None
    until: datetime | None = None
    strategy_id: str | None = None
    trade_id: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def __post_init__(self) -> None:
        _set(self, "types", _check_types(self.types))
        if self.min_severity is not None:
            _set(self, "min_severity", check_severity(self.min_severity, "min_severity"))
        since, until = check_range(self.since, self.until)
        _set(self, "since", since)
        _set(self, "until", until)
        check_id(self.strategy_id, "strategy_id")
        check_id(self.trade_id, "trade_id")
        if (
            not isinstance(self.limit, int)
            or isinstance(self.limit, bool)
            or not 1 <= self.limit <= MAX_LIMIT
        ):
            raise InvalidQuery(f"limit: expected 1..{MAX_LIMIT}, got {self.limit!r}")
        if self.cursor is not None:
            decode_cursor(self.cursor)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventPage:
    """One page of events, newest first; ``next_cursor`` is ``None`` on the last page."""

    events: list[Event]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSummary:
    """Event counts over a time range.

    ``by_type`` has the types present (sorted); ``by_severity`` has every severity name,
    ``DEBUG`` to ``CRITICAL``, with 0 for the absent ones.
    """

    total: int
    by_type: dict[str, int]
    by_severity: dict[str, int]


def check_range(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``since``/``until`` in UTC; both aware, and ``since`` before ``until``."""
    since_utc = None if since is None else check_time(since, "since")
    until_utc = None if until is None else check_time(until, "until")
    if since_utc is not None and until_utc is not None and since_utc >= until_utc:
        raise InvalidQuery(
            f"since: must be before until, got since={since_utc.isoformat()} "
            f"until={until_utc.isoformat()}"
        )
    return since_utc, until_utc


def check_time(value: Any, name: str) -> datetime:
    """``value`` in UTC; :class:`InvalidQuery` unless it is an aware datetime."""
    if not isinstance(value, datetime):
        raise InvalidQuery(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidQuery(
            f"{name}: naive datetime {value.isoformat()} has no time zone; "
            "pass an aware datetime (UTC)"
        )
    return value.astimezone(UTC)


def check_id(value: Any, name: str) -> None:
    """``None``, or a non-blank string of at most 128 characters."""
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidQuery(f"{name}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidQuery(f"{name}: must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidQuery(f"{name}: at most {MAX_ID_CHARS} characters, got {len(value)}")


def check_type_names(values: Any, name: str) -> tuple[str, ...]:
    """A tuple of distinct event type names (order kept); :class:`InvalidQuery` otherwise."""
    if isinstance(values, str | bytes) or not _iterable(values):
        raise InvalidQuery(f"{name}: expected a collection of type names, got {values!r}")
    try:
        names = tuple(dict.fromkeys(values))
    except TypeError:
        raise InvalidQuery(f"{name}: expected type names, got {values!r}") from None
    for value in names:
        if value == "":
            raise InvalidQuery(f"{name}: empty type name")
        try:
            check_type(value)
        except EventValidationError:
            raise InvalidQuery(
                f"{name}: {value!r} is not a type name (upper-case identifier, "
                "at most 32 characters)"
            ) from None
    return names


def _check_types(values: Any) -> tuple[str, ...]:
    names = check_type_names(values, "types")
    if len(names) > MAX_TYPES:
        raise InvalidQuery(f"types: at most {MAX_TYPES} types, got {len(names)}")
    return names


def check_severity(value: Any, name: str) -> Severity:
    """``value`` as a :class:`Severity` (member, name or value); :class:`InvalidQuery` otherwise."""
    if isinstance(value, bool):
        raise InvalidQuery(f"{name}: expected a severity, got {value!r}")
    try:
        return Severity.parse(value)
    except (ValueError, TypeError, AttributeError):
        names = ", ".join(member.name for member in Severity)
        raise InvalidQuery(f"{name}: unknown severity {value!r}; expected one of {names}") from None


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _set(query: EventQuery, name: str, value: Any) -> None:
    object.__setattr__(query, name, value)
