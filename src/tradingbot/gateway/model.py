"""The simulator's plain data: instruments, accounts, positions, orders and fills.

No behaviour beyond small derived properties; ``Brokerage`` and ``OrderBook`` change
these objects and the server turns them into wire messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "CANCEL_NOT_FOUND",
    "DUPLICATE_ORDER_ID",
    "NO_SECURITY_DEFINITION",
    "ORDER_REJECTED",
    "ZERO_QUANTITY",
    "Accepted",
    "Account",
    "CommissionSchedule",
    "Execution",
    "Instrument",
    "OrderRequest",
    "Position",
    "Rejection",
    "SimOrder",
    "StatusChange",
    "WhatIf",
]

# Error codes the simulator answers with (as the real gateway does).
NO_SECURITY_DEFINITION = 200
ORDER_REJECTED = 201
DUPLICATE_ORDER_ID = 103
ZERO_QUANTITY = 434
CANCEL_NOT_FOUND = 10147


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable stock with its nonzero, unique contract id."""

    symbol: str
    con_id: int
    primary_exchange: str
    currency: str = "USD"


@dataclass(slots=True)
class Account:
    """A cash account."""

    account_id: str
    cash: float
    realized_pnl: float = 0.0


@dataclass(slots=True)
class Position:
    """A holding; ``avg_cost`` includes commissions, like IB's."""

    account_id: str
    instrument: Instrument
    quantity: float
    avg_cost: float
    realized_pnl: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """The part of a placeOrder message the simulator uses."""

    order_id: int
    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    currency: str
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    tif: str
    account: str
    order_ref: str
    aux_price: float | None = None
    oca_group: str = ""
    oca_type: int = 0
    transmit: bool = True
    parent_id: int = 0
    outside_rth: bool = False
    good_till_date: str = ""
    trail_stop_price: float | None = None
    trailing_percent: float | None = None
    what_if: bool = False


@dataclass(slots=True, kw_only=True)
class SimOrder:
    """An order the brokerage accepted.

    ``staged`` orders were sent with ``transmit=False`` and wait for the group's last
    order; ``held`` orders are transmitted but not yet working (a bracket child before
    its parent fills, a market order outside regular hours). Both show PreSubmitted.
    """

    order_id: int
    client_id: int
    perm_id: int
    account_id: str
    instrument: Instrument
    exchange: str
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    tif: str
    order_ref: str
    aux_price: float | None = None
    oca_group: str = ""
    oca_type: int = 0
    oca_size: float = 0.0  # the quantity an OCA reduction is proportional to
    parent_id: int = 0
    outside_rth: bool = False
    trailing_percent: float | None = None
    trail_stop_price: float | None = None
    triggered: bool = False
    staged: bool = False
    held: bool = False
    expires_at: datetime | None = None
    status: str = "Submitted"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    completed_time: str = ""
    completed_status: str = ""

    @property
    def remaining(self) -> float:
        """Quantity not yet filled."""
        return self.quantity - self.filled

    @property
    def is_done(self) -> bool:
        """Filled or cancelled."""
        return self.status in ("Filled", "Cancelled")

    @property
    def working(self) -> bool:
        """Transmitted, active and not done: the order can trigger and fill."""
        return not (self.staged or self.held or self.is_done)


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One fill, with its commission and realized P&L."""

    exec_id: str
    order: SimOrder
    time: datetime
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    commission: float
    realized_pnl: float

    @property
    def side(self) -> str:
        """``BOT`` or ``SLD`` as in IB executions."""
        return "BOT" if self.order.action == "BUY" else "SLD"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused request: the error code and text the gateway sends."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An order reached ``status`` (working, held, cancelled): to be published."""

    order: SimOrder
    status: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted (new or modified) order and what happened at once, in order:
    fills (``Execution``) and status changes of it and of its group."""

    order: SimOrder
    events: list[Execution | StatusChange] = field(default_factory=list)

    @property
    def fills(self) -> list[Execution]:
        """The fills among ``events``."""
        return [e for e in self.events if isinstance(e, Execution)]


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatIf:
    """The margin and commission preview of an order that is never executed."""

    order: SimOrder
    init_before: float
    maint_before: float
    equity_before: float
    init_after: float
    maint_after: float
    equity_after: float
    commission: float


@dataclass(frozen=True, slots=True)
class CommissionSchedule:
    """IB-style per-share commission with a minimum per order fill."""

    per_share: float = 0.005
    minimum: float = 1.0

    def commission(self, shares: float) -> float:
        """Commission in account currency for ``shares`` shares."""
        return round(max(self.minimum, abs(shares) * self.per_share), 4)
