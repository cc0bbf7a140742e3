"""Fills as plain rows, extracted from the TRADE events' JSON by the database.

Reports rebuild positions from every fill ever recorded; reading 100,000 whole event
contexts into Python dictionaries would dominate their cost, so the database extracts
just the fields a fill needs (SQLite ``json_extract``, PostgreSQL ``->>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select

from tradingbot.events.model import TRADE
from tradingbot.storage.event_query import check_range
from tradingbot.storage.models import EventRow
from tradingbot.storage.transactions import Transactions

_EVENTS = cast(Table, EventRow.__table__)
_C = _EVENTS.c


@dataclass(frozen=True, slots=True)
class FillRow:
    """One TRADE event's fill fields (``None`` where the event lacks one)."""

    ts: datetime
    exec_time: float | None
    symbol: str | None
    side: str | None
    quantity: float | None
    price: float | None
    commission: float | None
    realized_pnl: float | None
    exec_id: str | None
    order_ref: str | None


class TradeRepository:
    """Reads the fills recorded as TRADE events; one short read transaction each."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def fills(self, until: datetime) -> list[FillRow]:
        """Every TRADE event's fill stored before ``until``, in time order."""
        _, until_utc = check_range(None, until)
        context = _C.context
        statement = (
            select(
                _C.ts,
                context["exec_time"].as_float(),
                context["symbol"].as_string(),
                context["side"].as_string(),
                context["quantity"].as_float(),
                context["price"].as_float(),
                context["commission"].as_float(),
                context["realized_pnl"].as_float(),
                context["exec_id"].as_string(),
                context["order_ref"].as_string(),
            )
            .where(_C.type == TRADE, _C.ts < until_utc)
            .order_by(_C.ts, _C.seq)
        )
        with self._tx.read_connection() as connection:
            rows = connection.execute(statement).all()
        return [
            FillRow(
                ts=row[0],
                exec_time=row[1],
                symbol=row[2],
                side=row[3],
                quantity=row[4],
                price=row[5],
                commission=row[6],
                realized_pnl=row[7],
                exec_id=row[8],
                order_ref=row[9],
            )
            for row in rows
        ]
