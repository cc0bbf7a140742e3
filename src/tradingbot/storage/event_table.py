"""The ``events`` table: idempotent batched writes, filtered keyset pages, retention.

Writes are idempotent by the events' client-generated UUIDs: storing a batch twice, or
replaying a spool that overlaps what was already stored, stores each event once.

Reads are "newest first" (``ts DESC, seq DESC``) with keyset pagination (see
:mod:`tradingbot.storage.cursor`). Every page is served by index range scans that read
at most ``limit + 1`` index entries per range, whatever the table size:

- no type/severity filter: one backward scan of ``(ts, seq)`` (or of the partial
  ``(strategy_id, ts, seq)``/``(trade_id, ts, seq)`` index when filtering on one);
- types and/or a minimum severity: one range of ``(type, severity, ts, seq)`` per
  (type, severity) pair, or of ``(severity, ts, seq)`` per severity when only a minimum
  severity is given; the ranges' first ``limit + 1`` keys are merged, then the rows
  fetched by primary key. This relies on the CHECK constraint that limits ``severity``
  to the five :class:`Severity` values. Above :data:`MAX_RANGES` pairs (many types,
  which match many rows anyway) the types only filter one backward scan of ``(ts, seq)``,
  or one range of ``(severity, ts, seq)`` per severity;
- a ``trade_id`` filter: one scan of the ``trade_id`` index (a trade has few events);
  a ``strategy_id`` filter: one backward scan of the ``strategy_id`` index, with types
  and severity only filtering it (a strategy's own events are mostly what is asked for:
  its signals, orders and fills).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    delete,
    func,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from tradingbot.events.model import ORDER, TRADE, Event, EventValidationError, Severity
from tradingbot.storage import jsoncodec
from tradingbot.storage.cursor import CursorPosition, decode_cursor, encode_cursor
from tradingbot.storage.errors import InvalidQuery
from tradingbot.storage.event_query import (
    EventPage,
    EventQuery,
    EventSummary,
    check_range,
    check_severity,
    check_time,
    check_type_names,
)
from tradingbot.storage.models import EventRow
from tradingbot.storage.transactions import Transactions

# Types retention never deletes, whatever the caller asks.
PROTECTED_TYPES = frozenset({TRADE, ORDER})
DEFAULT_RETENTION_BATCH = 10_000
# Most index ranges one page query is split into (25 = 5 types x 5 severities).
MAX_RANGES = 25

_EVENTS = cast(Table, EventRow.__table__)
_C = _EVENTS.c
_NEWEST_FIRST = (_C.ts.desc(), _C.seq.desc())
# Built once: a fresh statement costs its construction and SQLAlchemy's cache key walk
# (~70 µs measured), on every durable event (a SIGNAL, an ORDER before its send).
_INSERT_PG = (
    postgresql.insert(_EVENTS)
    .on_conflict_do_nothing(index_elements=[_C.event_id])
    .returning(_C.seq)
)
_INSERT_SQLITE = (
    sqlite.insert(_EVENTS).on_conflict_do_nothing(index_elements=[_C.event_id]).returning(_C.seq)
)


class EventRepository:
    """Stores and reads events; every method is one short transaction (retention: several).

    Methods raise :class:`~tradingbot.storage.StorageUnavailable` when the database
    cannot be reached, :class:`~tradingbot.storage.SchemaOutOfDate` before the upgrade,
    :class:`~tradingbot.storage.InvalidQuery` for a bad parameter (naming it) and
    :class:`~tradingbot.storage.StorageError` for anything else the database refuses.
    They are safe to call from any thread.
    """

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def insert_many(self, events: Sequence[Event]) -> int:
        """Store ``events`` in one transaction; return how many were new.

        Events whose id is already stored, or repeated in ``events``, are skipped (the
        first occurrence wins), so retrying a batch is always safe. Context is stored as
        orjson encodes it and NUL characters become U+FFFD (see
        :mod:`~tradingbot.storage.jsoncodec`). An event whose context cannot be encoded
        raises :class:`~tradingbot.events.EventValidationError` naming it, before
        anything is written.
        """
        rows = _rows(events)
        if not rows:
            return 0
        with self._tx.write_connection() as connection:
            postgres = connection.dialect.name == "postgresql"
            result = connection.execute(_INSERT_PG if postgres else _INSERT_SQLITE, rows)
            return len(result.all())

    def get(self, event_id: uuid.UUID) -> Event | None:
        """The event with this id, or ``None``."""
        key = _event_key(event_id)
        with self._tx.read_connection() as connection:
            row = connection.execute(select(_EVENTS).where(_C.event_id == key)).first()
        return None if row is None else _to_event(row)

    def count(self) -> int:
        """How many events are stored."""
        with self._tx.read_connection() as connection:
            return int(connection.execute(select(func.count()).select_from(_EVENTS)).scalar_one())

    def query(self, query: EventQuery) -> EventPage:
        """One page of the events matching ``query``, newest first.

        Pass ``next_cursor`` back (with the same filters) for the next page. A walk
        through the pages returns every matching event stored before its first page
        exactly once; events stored later appear only on a fresh first page.
        """
        position = None if query.cursor is None else decode_cursor(query.cursor)
        fetch = query.limit + 1  # one more than the page, to know whether another follows
        with self._tx.read_connection() as connection:
            if position is None:
                high_water = connection.execute(select(func.max(_C.seq))).scalar_one()
                if high_water is None:
                    return EventPage(events=[], next_cursor=None)
                rows = list(connection.execute(_page(query, [_C.seq <= high_water], fetch)))
            else:
                high_water = position.high_water
                rows = []
                for bounds in _after(position, connection.dialect.name):
                    rows += connection.execute(_page(query, bounds, fetch - len(rows)))
                    if len(rows) == fetch:
                        break
        events = [_to_event(row) for row in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = rows[query.limit - 1]
            next_cursor = encode_cursor(
                CursorPosition(ts=last.ts, seq=last.seq, high_water=int(high_water))
            )
        return EventPage(events=events, next_cursor=next_cursor)

    def summary(self, since: datetime | None = None, until: datetime | None = None) -> EventSummary:
        """Counts by type and by severity of the events in ``[since, until)``."""
        since_utc, until_utc = check_range(since, until)
        statement = select(_C.type, _C.severity, func.count()).group_by(_C.type, _C.severity)
        if since_utc is not None:
            statement = statement.where(_C.ts >= since_utc)
        if until_utc is not None:
            statement = statement.where(_C.ts < until_utc)
        with self._tx.read_connection() as connection:
            counts = connection.execute(statement).all()
        by_type: dict[str, int] = {}
        by_severity = {member.name: 0 for member in Severity}
        for type_, severity, number in counts:
            by_type[type_] = by_type.get(type_, 0) + number
            name = Severity(severity).name
            by_severity[name] += number
        return EventSummary(
            total=sum(by_type.values()),
            by_type=dict(sorted(by_type.items())),
            by_severity=by_severity,
        )

    def contexts(
        self, type: str, since: datetime
    ) -> list[tuple[str | None, dict[str, Any], datetime]]:
        """(trade_id, context, ts) of the ``type`` events stored since ``since``, oldest first.

        For reconciliation, which rebuilds our orders and fills from the ORDER and TRADE
        events (a day holds thousands of them, not millions).
        """
        since_utc, _ = check_range(since, None)
        statement = (
            select(_C.trade_id, _C.context, _C.ts)
            .where(_C.type == type, _C.ts >= since_utc)
            .order_by(_C.ts, _C.seq)
        )
        with self._tx.read_connection() as connection:
            rows = connection.execute(statement).all()
        return [(trade_id, dict(context or {}), ts) for trade_id, context, ts in rows]

    def trade_exec_ids(self, since: datetime) -> set[str]:
        """Execution ids of the TRADE events stored since ``since`` (fills already recorded).

        The broker skips these when the gateway reports them again after a restart, so
        a fill reaches the event stream (and its e-mail) once.
        """
        return {
            str(context["exec_id"])
            for _, context, _ in self.contexts(TRADE, since)
            if context.get("exec_id")
        }

    def delete_older_than(
        self,
        before: datetime,
        *,
        max_severity: Severity = Severity.INFO,
        keep_types: Collection[str] = (TRADE, ORDER),
        batch_size: int = DEFAULT_RETENTION_BATCH,
    ) -> int:
        """Delete events older than ``before`` up to ``max_severity``; return how many.

        Events of ``keep_types``, and always TRADE and ORDER events, are kept. Deletes
        run oldest first in transactions of at most ``batch_size`` events, so writers
        wait at most one batch; an interruption leaves a consistent, partly pruned table.
        """
        cutoff = check_time(before, "before")
        ceiling = check_severity(max_severity, "max_severity")
        kept = PROTECTED_TYPES.union(check_type_names(keep_types, "keep_types"))
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidQuery(f"batch_size: expected a positive integer, got {batch_size!r}")
        victims = (
            select(_C.seq)
            .where(_C.ts < cutoff, _C.severity <= int(ceiling), _C.type.not_in(sorted(kept)))
            .order_by(_C.ts, _C.seq)
            .limit(batch_size)
        )
        statement = delete(_EVENTS).where(_C.seq.in_(victims))
        total = 0
        while True:
            with self._tx.write_connection() as connection:
                deleted = connection.execute(statement).rowcount
            total += deleted
            if deleted < batch_size:
                return total


def _rows(events: Sequence[Event]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[uuid.UUID] = set()
    for event in events:
        if not isinstance(event, Event):
            raise TypeError(f"events: expected Event instances, got {type(event).__name__}")
        if event.id in seen:
            continue
        seen.add(event.id)
        try:
            jsoncodec.encode(event.context)
        except TypeError as error:  # orjson.JSONEncodeError
            raise EventValidationError(
                f"context: event {event.id} is not JSON-serialisable: {error}"
            ) from None
        rows.append(
            {
                "event_id": str(event.id),
                "ts": event.timestamp,
                "type": event.type,
                "severity": int(event.severity),
                "message": jsoncodec.text_without_nul(event.message),
                "source": jsoncodec.text_without_nul(event.source),
                "strategy_id": _optional_text(event.strategy_id),
                "trade_id": _optional_text(event.trade_id),
                "user_id": _optional_text(event.user_id),
                "context": event.context,
            }
        )
    return rows


def _optional_text(value: str | None) -> str | None:
    return None if value is None else jsoncodec.text_without_nul(value)


def _event_key(event_id: uuid.UUID) -> str:
    try:
        return str(event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id)))
    except ValueError:
        raise InvalidQuery(f"event_id: expected a UUID, got {event_id!r}") from None


def _after(position: CursorPosition, dialect: str) -> list[list[ColumnElement[bool]]]:
    """Bounds selecting the walk's rows after ``position``, in newest-first order.

    PostgreSQL seeks straight to a row-value comparison. SQLite does not (in a backward
    scan it reads every row at ``ts`` first), so there the position is split into two
    exact seeks: the rest of the rows at ``ts``, then the older ones. SQLite also seeks
    on only one of two bounds on ``seq``, so the first set leaves out the high-water
    bound (implied: ``seq < position.seq <= high_water``).
    """
    walk = _C.seq <= position.high_water
    if dialect == "postgresql":
        return [[tuple_(_C.ts, _C.seq) < (position.ts, position.seq), walk]]
    return [[_C.ts == position.ts, _C.seq < position.seq], [_C.ts < position.ts, walk]]


def _page(query: EventQuery, bounds: list[ColumnElement[bool]], fetch: int) -> Select[Any]:
    """The statement reading the first ``fetch`` matching rows within ``bounds``."""
    common = list(bounds)
    if query.since is not None:
        common.append(_C.ts >= query.since)
    if query.until is not None:
        common.append(_C.ts < query.until)
    if query.strategy_id is not None:
        common.append(_C.strategy_id == query.strategy_id)
    if query.trade_id is not None:
        common.append(_C.trade_id == query.trade_id)
    ranges = _ranges(query)
    if len(ranges) == 1:
        return select(_EVENTS).where(*common, *ranges[0]).order_by(*_NEWEST_FIRST).limit(fetch)
    keys = [
        select(_C.ts, _C.seq)
        .where(*common, *conditions)
        .order_by(*_NEWEST_FIRST)
        .limit(fetch)
        .subquery()
        for conditions in ranges
    ]
    merged = union_all(*(select(key.c.ts, key.c.seq) for key in keys)).subquery()
    top = select(merged.c.seq).order_by(merged.c.ts.desc(), merged.c.seq.desc()).limit(fetch)
    return select(_EVENTS).where(_C.seq.in_(top)).order_by(*_NEWEST_FIRST)


def _ranges(query: EventQuery) -> list[list[ColumnElement[bool]]]:
    """The type/severity conditions of each index range the page is read from."""
    severities = [s for s in Severity if query.min_severity is None or s >= query.min_severity]
    every_severity = len(severities) == len(Severity)
    # Filters written as expressions no index offers (type || '', severity + 0), for the
    # cases where another index must drive: else a planner may fetch every row of the
    # matching types and sort them all for one page.
    by_type: list[ColumnElement[bool]] = []
    by_severity: list[ColumnElement[bool]] = []
    if query.types:
        by_type.append((_C.type + "").in_(query.types))
    if not every_severity:
        by_severity.append((_C.severity + 0) >= int(severities[0]))
    if query.trade_id is not None or query.strategy_id is not None:
        # The trade_id (or strategy_id) index drives; type and severity only filter that
        # trade's few rows (that strategy's rows, newest first): reading every event of
        # the types, of every strategy, to keep one strategy's would grow with the table.
        return [[*by_type, *by_severity]]
    if query.types:
        pairs = [(type_, severity) for type_ in query.types for severity in severities]
        if len(pairs) <= MAX_RANGES:
            return [[_C.type == type_, _C.severity == int(severity)] for type_, severity in pairs]
        # Many types match many rows: scan (ts, seq), or (severity, ts, seq) per severity.
        if every_severity:
            return [by_type]
        return [[_C.severity == int(severity), *by_type] for severity in severities]
    if not every_severity:
        return [[_C.severity == int(severity)] for severity in severities]
    return [[]]


def _to_event(row: Row[Any]) -> Event:
    return Event(
        id=uuid.UUID(row.event_id),
        timestamp=row.ts,
        type=row.type,
        severity=Severity(row.severity),
        message=row.message,
        source=row.source,
        strategy_id=row.strategy_id,
        trade_id=row.trade_id,
        user_id=row.user_id,
        context=row.context,
    )
