"""Our books rebuilt from fills: positions, realized P&L per fill, closed round trips.

Fills come from the durable TRADE events (kept forever by retention) as plain rows
(:data:`~tradingbot.storage.trades.FillRow`), in time order. Each fill's realized P&L
is the broker's (IB reports it on closing executions, net of commissions; the average
cost of a position includes the opening commission); when a fill carries none, it is
computed the same way here. A *round trip* is one symbol's position from flat back to
flat (or through zero); its P&L is the sum of the realized P&L of the fills that
reduced it, whatever day they were on. See ``docs/reports.md``.

A report replays every fill ever recorded, so :meth:`Books.add` works on the row as
read (no object per fill) and times stay epoch seconds; only what a report shows
becomes a ``datetime`` (:func:`instant`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tradingbot.storage.trades import FillRow

EPSILON = 1e-9
BUY_SIDES = frozenset({"BOT", "BUY", "B"})
SELL_SIDES = frozenset({"SLD", "SELL", "S", "SSHORT"})

Booked = tuple[float, float, bool, float, str, float, float, "RoundTrip | None"]
"""What :meth:`Books.add` made of a fill: ``(realized_pnl, commission, closing,
position_after, side, quantity, price, round_trip)``; ``side`` is BOT or SLD,
``quantity`` > 0, ``closing`` says the fill reduced a position, ``round_trip`` is the
one it closed (a fill closes at most one)."""


def number(value: Any) -> float | None:
    """A JSON number as a float; ``None`` for anything else (IB's "unset"
    Double.MAX_VALUE and anything absurd included)."""
    if value.__class__ is float or value.__class__ is int:
        return float(value) if -1e100 < value < 1e100 else None  # also rejects NaN
    return None


def instant(epoch_s: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (what a report shows)."""
    return datetime.fromtimestamp(epoch_s, UTC)


class RoundTrip(NamedTuple):
    """A position from flat to flat; ``pnl`` is the sum of its reducing fills' P&L.
    Times are epoch seconds."""

    symbol: str
    opened_at: float
    closed_at: float
    pnl: float

    @property
    def won(self) -> bool:
        return self.pnl > 0


@dataclass(slots=True)
class Position:
    """One symbol's open position; ``avg_cost`` includes the opening commissions,
    ``opened_at`` is epoch seconds."""

    symbol: str
    quantity: float = 0.0
    avg_cost: float = 0.0
    opened_at: float = 0.0
    trip_pnl: float = 0.0


@dataclass(slots=True)
class Books:
    """Positions and closed round trips, fed fills in time order."""

    positions: dict[str, Position] = field(default_factory=dict)
    round_trips: list[RoundTrip] = field(default_factory=list)

    def add(self, row: FillRow) -> Booked | None:
        """Book one fill; ``None`` (and nothing booked) when the row is not a usable
        fill: no known side, no symbol, or no non-zero quantity and price."""
        at, symbol, side, quantity, price, commission, realized, _, _, _ = row
        # The common row holds floats and an upper-case side: check those inline.
        if side.__class__ is not str or symbol.__class__ is not str or not symbol:
            return None
        if side in BUY_SIDES:
            side = "BOT"
        elif side in SELL_SIDES:
            side = "SLD"
        else:
            side = side.upper()
            if side not in BUY_SIDES and side not in SELL_SIDES:
                return None
            side = "BOT" if side in BUY_SIDES else "SLD"
        if quantity.__class__ is not float or not -1e100 < quantity < 1e100:
            quantity = number(quantity)
        if price.__class__ is not float or not -1e100 < price < 1e100:
            price = number(price)
        if not quantity or price is None:
            return None
        if commission.__class__ is not float or not -1e100 < commission < 1e100:
            commission = number(commission) or 0.0
        if realized is not None and (
            realized.__class__ is not float or not -1e100 < realized < 1e100
        ):
            realized = number(realized)
        quantity = abs(quantity)
        signed = quantity if side == "BOT" else -quantity
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol, 0.0, 0.0, at)
        held = pos.quantity
        if (held >= EPSILON and signed < 0) or (held <= -EPSILON and signed > 0):
            return self._reduce(pos, at, signed, price, commission, realized, side)
        if held >= EPSILON or held <= -EPSILON:
            total = held * pos.avg_cost + signed * price + math.copysign(commission, signed)
        else:
            pos.quantity, pos.avg_cost, pos.opened_at, pos.trip_pnl = 0.0, 0.0, at, 0.0
            total = signed * price + math.copysign(commission, signed)
        after = pos.quantity = pos.quantity + signed
        pos.avg_cost = total / after
        realized = realized or 0.0
        pos.trip_pnl += realized
        if -EPSILON < after < EPSILON:
            del self.positions[symbol]
        return (realized, commission, False, after, side, quantity, price, None)

    def _reduce(
        self,
        pos: Position,
        at: float,
        signed: float,
        price: float,
        commission: float,
        realized: float | None,
        side: str,
    ) -> Booked:
        """Reduce (or close, or go through zero on) ``pos`` with a fill."""
        quantity = abs(signed)
        closed = min(quantity, abs(pos.quantity))
        direction = 1.0 if pos.quantity > 0 else -1.0
        if realized is None:
            realized = (price - pos.avg_cost) * closed * direction - commission
        pos.trip_pnl += realized
        remainder = quantity - closed
        pos.quantity += math.copysign(closed, signed)
        trip = None
        if abs(pos.quantity) < EPSILON:
            trip = RoundTrip(pos.symbol, pos.opened_at, at, round(pos.trip_pnl, 6))
            self.round_trips.append(trip)
            pos.quantity = 0.0
            if remainder > EPSILON:  # through zero: the rest opens a new position
                pos.quantity = math.copysign(remainder, signed)
                pos.avg_cost, pos.opened_at, pos.trip_pnl = price, at, 0.0
        after = pos.quantity
        if -EPSILON < after < EPSILON:
            del self.positions[pos.symbol]
        return (realized, commission, True, after, side, quantity, price, trip)
