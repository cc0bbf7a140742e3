"""Fills as plain tuples, read from the TRADE events' JSON, in execution-time order.

Reports rebuild positions from every fill ever recorded (100,000 rows is a normal
year), so this read is built for speed: the database returns each event's context as
text, orjson parses it, and a row is one plain tuple of the fields a fill needs (no
object per row; the recording time is read, in a second query, only for the events
that lack an execution time).
Extracting the fields in SQL instead (SQLite ``json_extract``, which parses the whole
context once per field on SQLite < 3.45) was ~3x slower; see ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

from datetime import datetime
from operator import itemgetter
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Table, Text, func, select
from sqlalchemy import cast as sql_cast

from tradingbot.events.model import TRADE
from tradingbot.storage.event_query import check_range
from tradingbot.storage.models import EventRow
from tradingbot.storage.transactions import Transactions

_EVENTS = cast(Table, EventRow.__table__)
_C = _EVENTS.c

FillRow = tuple[float, Any, Any, Any, Any, Any, Any, Any, Any, int]
"""One TRADE event's fill: ``(time, symbol, side, quantity, price, commission,
realized_pnl, exec_id, order_ref, seq)``. ``time`` is epoch seconds: the execution
time the broker reported (``exec_time``), else when the event was recorded; ``seq``
is the event's; the other fields are the context's values as stored (``None`` where
absent), unchecked."""

TIME = 0  # the index of a FillRow's time, for sorting
_YEAR_10000 = 253_402_300_800.0  # an exec_time from here on (or negative) is not a time
_GONE = -1.0  # the time of an untimed event deleted meanwhile: dropped
_CHUNK = 500  # event ids per IN (...) when reading the recording times


class TradeRepository:
    """Reads the fills recorded as TRADE events; one short read transaction each."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def fills(self, until: datetime, since: datetime | None = None) -> list[FillRow]:
        """Every TRADE event's fill stored before ``until`` (and from ``since``), in time
        order (fills with the same time in the order they were recorded)."""
        since_utc, until_utc = check_range(since, until)
        statement = (
            select(_C.seq, sql_cast(_C.context, Text))
            .where(_C.type == TRADE, _C.ts < until_utc)
            .order_by(_C.ts, _C.seq)
        )
        if since_utc is not None:
            statement = statement.where(_C.ts >= since_utc)
        loads = orjson.loads
        rows: list[FillRow] = []
        append = rows.append
        untimed: list[tuple[int, int]] = []  # (index in rows, seq) of rows without exec_time
        with self._tx.read_connection() as connection:
            # The DBAPI's own rows: no result processing is wanted, and skipping the
            # Row objects saves ~1 µs a fill.
            for seq, text in connection.execute(statement).cursor.fetchall():
                context = loads(text)
                if context.__class__ is not dict:
                    continue
                get = context.get
                at = get("exec_time")
                if (at.__class__ is not float and at.__class__ is not int) or not (
                    0 <= at < _YEAR_10000  # also rejects NaN
                ):
                    untimed.append((len(rows), seq))
                    at = 0.0
                append(
                    (
                        float(at),
                        get("symbol"),
                        get("side"),
                        get("quantity"),
                        get("price"),
                        get("commission"),
                        get("realized_pnl"),
                        get("exec_id"),
                        get("order_ref"),
                        seq,
                    )
                )
            if untimed:
                recorded = _recorded(connection, [seq for _, seq in untimed])
                for index, seq in untimed:
                    rows[index] = (recorded.get(seq, _GONE), *rows[index][1:])
                rows = [row for row in rows if row[TIME] != _GONE]
        rows.sort(key=itemgetter(TIME))  # stable: ties keep the recording order
        return rows

    def key(self, until: datetime) -> tuple[int, int]:
        """The count and the sum of ``seq`` of the TRADE events stored before ``until``:
        equal keys mean the same events (they are never deleted or changed)."""
        _, until_utc = check_range(None, until)
        statement = select(func.count(), func.coalesce(func.sum(_C.seq), 0)).where(
            _C.type == TRADE, _C.ts < until_utc
        )
        with self._tx.read_connection() as connection:
            count, total = connection.execute(statement).one()
        return int(count), int(total)

    def recorded(self, seqs: list[int]) -> dict[int, float]:
        """When the events ``seqs`` were recorded (their ``ts``), in epoch seconds."""
        with self._tx.read_connection() as connection:
            return _recorded(connection, seqs)


def _recorded(connection: Connection, seqs: list[int]) -> dict[int, float]:
    found: dict[int, float] = {}
    for start in range(0, len(seqs), _CHUNK):
        chunk = seqs[start : start + _CHUNK]
        for seq, ts in connection.execute(select(_C.seq, _C.ts).where(_C.seq.in_(chunk))):
            found[seq] = ts.timestamp()
    return found
