"""Our books rebuilt from fills: positions, realized P&L per fill, closed round trips.

Fills come from the durable TRADE events (kept forever by retention), oldest first.
Each fill's realized P&L is the broker's (IB reports it on closing executions, net of
commissions; the average cost of a position includes the opening commission); when a
fill carries none, it is computed the same way here. A *round trip* is one symbol's
position from flat back to flat (or through zero); its P&L is the sum of the realized
P&L of the fills that reduced it, whatever day they were on. See ``docs/reports.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradingbot.storage.trades import FillRow

EPSILON = 1e-9
BUY_SIDES = frozenset({"BOT", "BUY", "B"})
SELL_SIDES = frozenset({"SLD", "SELL", "S", "SSHORT"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution as recorded in a TRADE event."""

    time: datetime
    symbol: str
    side: str  # BOT or SLD
    quantity: float
    price: float
    commission: float = 0.0
    realized_pnl: float | None = None  # the broker's, when it sent one
    exec_id: str = ""
    order_ref: str = ""

    @property
    def signed(self) -> float:
        return self.quantity if self.side in BUY_SIDES else -self.quantity

    @classmethod
    def from_event(cls, context: Mapping[str, Any], ts: datetime) -> Fill | None:
        """The fill of a TRADE event's context (``None``: not a usable fill)."""
        try:
            side = str(context["side"]).upper()
            quantity = abs(float(context["quantity"]))
            price = float(context["price"])
            symbol = str(context["symbol"])
        except (KeyError, TypeError, ValueError):
            return None
        if side not in BUY_SIDES | SELL_SIDES or not quantity or not symbol:
            return None
        at = ts
        exec_time = context.get("exec_time")
        if isinstance(exec_time, int | float) and math.isfinite(exec_time):
            at = datetime.fromtimestamp(exec_time, UTC)
        return cls(
            time=at,
            symbol=symbol,
            side="BOT" if side in BUY_SIDES else "SLD",
            quantity=quantity,
            price=price,
            commission=_number(context.get("commission")) or 0.0,
            realized_pnl=_number(context.get("realized_pnl")),
            exec_id=str(context.get("exec_id") or ""),
            order_ref=str(context.get("order_ref") or ""),
        )

    @classmethod
    def from_row(cls, row: FillRow) -> Fill | None:
        """The fill of a stored TRADE event's extracted fields (``None``: not usable)."""
        side = (row.side or "").upper()
        if side not in BUY_SIDES | SELL_SIDES or not row.symbol:
            return None
        if row.quantity is None or row.price is None or not row.quantity:
            return None
        at = row.ts
        if row.exec_time is not None and math.isfinite(row.exec_time):
            at = datetime.fromtimestamp(row.exec_time, UTC)
        return cls(
            time=at,
            symbol=row.symbol,
            side="BOT" if side in BUY_SIDES else "SLD",
            quantity=abs(row.quantity),
            price=row.price,
            commission=_number(row.commission) or 0.0,
            realized_pnl=_number(row.realized_pnl),
            exec_id=row.exec_id or "",
            order_ref=row.order_ref or "",
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    # IB's "unset" (Double.MAX_VALUE) and anything absurd are not a P&L.
    return number if math.isfinite(number) and abs(number) < 1e100 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BookedFill:
    """A fill with its realized P&L and the position after it."""

    fill: Fill
    realized_pnl: float
    position_after: float
    closing: bool  # it reduced a position


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundTrip:
    """A position from flat to flat; ``pnl`` is the sum of its reducing fills' P&L."""

    symbol: str
    opened_at: datetime
    closed_at: datetime
    pnl: float

    @property
    def won(self) -> bool:
        return self.pnl > 0


@dataclass(slots=True)
class Position:
    """One symbol's open position; ``avg_cost`` includes the opening commissions."""

    symbol: str
    quantity: float = 0.0
    avg_cost: float = 0.0
    opened_at: datetime | None = None
    trip_pnl: float = 0.0


@dataclass(slots=True)
class Books:
    """Positions, booked fills and closed round trips, fed fills in time order."""

    positions: dict[str, Position] = field(default_factory=dict)
    booked: list[BookedFill] = field(default_factory=list)
    round_trips: list[RoundTrip] = field(default_factory=list)

    def add_all(self, fills: Iterable[Fill]) -> Books:
        for fill in sorted(fills, key=lambda f: f.time):
            self.add(fill)
        return self

    def add(self, fill: Fill) -> BookedFill:
        pos = self.positions.setdefault(fill.symbol, Position(fill.symbol))
        signed = fill.signed
        if abs(pos.quantity) < EPSILON or (pos.quantity > 0) == (signed > 0):
            booked = self._open(pos, fill, signed)
        else:
            booked = self._reduce(pos, fill, signed)
        self.booked.append(booked)
        if abs(pos.quantity) < EPSILON:
            del self.positions[fill.symbol]
        return booked

    @staticmethod
    def _open(pos: Position, fill: Fill, signed: float) -> BookedFill:
        if abs(pos.quantity) < EPSILON:
            pos.quantity, pos.avg_cost, pos.opened_at, pos.trip_pnl = 0.0, 0.0, fill.time, 0.0
        total = (
            pos.quantity * pos.avg_cost
            + signed * fill.price
            + math.copysign(fill.commission, signed)
        )
        pos.quantity += signed
        pos.avg_cost = total / pos.quantity
        realized = fill.realized_pnl or 0.0
        pos.trip_pnl += realized
        return BookedFill(
            fill=fill, realized_pnl=realized, position_after=pos.quantity, closing=False
        )

    def _reduce(self, pos: Position, fill: Fill, signed: float) -> BookedFill:
        closed = min(abs(signed), abs(pos.quantity))
        direction = 1.0 if pos.quantity > 0 else -1.0
        realized = fill.realized_pnl
        if realized is None:
            realized = (fill.price - pos.avg_cost) * closed * direction - fill.commission
        pos.trip_pnl += realized
        remainder = abs(signed) - closed
        pos.quantity += math.copysign(closed, signed)
        if abs(pos.quantity) < EPSILON:
            assert pos.opened_at is not None
            self.round_trips.append(
                RoundTrip(
                    symbol=pos.symbol,
                    opened_at=pos.opened_at,
                    closed_at=fill.time,
                    pnl=round(pos.trip_pnl, 6),
                )
            )
            pos.quantity = 0.0
            if remainder > EPSILON:  # through zero: the rest opens a new position
                pos.quantity = math.copysign(remainder, signed)
                pos.avg_cost, pos.opened_at, pos.trip_pnl = fill.price, fill.time, 0.0
        return BookedFill(
            fill=fill, realized_pnl=realized, position_after=pos.quantity, closing=True
        )
