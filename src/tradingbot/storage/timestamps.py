"""Timezone-aware UTC timestamps, identical on SQLite and PostgreSQL.

PostgreSQL stores ``timestamptz`` natively. SQLite has no timestamp type: SQLAlchemy
stores text and drops the offset, so :class:`UTCDateTime` converts every value to UTC
before it is written and marks it UTC when it is read. Either way the database holds
UTC and Python gets back an aware datetime whose ``tzinfo`` is :data:`datetime.UTC`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def require_utc(value: datetime, name: str) -> datetime:
    """Return ``value`` converted to UTC; raise ``ValueError`` if it is naive."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name}: naive datetime {value.isoformat()} has no time zone; "
            "pass an aware datetime such as datetime.now(UTC)"
        )
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware datetimes and returns UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = require_utc(value, "timestamp")
        if dialect.name == "sqlite":
            # SQLite's text format has no offset: store the UTC wall time.
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
