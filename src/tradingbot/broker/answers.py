"""What the gateway answers to queries, as plain frozen dataclasses.

Built on the ``ib_async`` loop thread (:mod:`tradingbot.broker.parsing`), so they cross
to any other thread without sharing a client object; reconciliation reads them as pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """One position at the gateway: ``quantity`` is signed (negative = short)."""

    account: str
    symbol: str
    con_id: int
    quantity: float
    avg_cost: float
    currency: str = "USD"


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioItem:
    """One position with the gateway's mark (account updates' portfolio row):
    ``quantity`` signed, ``avg_cost`` per share including commissions, ``market_price``
    the gateway's mark; a figure the gateway left unset is ``None``."""

    account: str
    symbol: str
    con_id: int
    quantity: float
    avg_cost: float
    market_price: float | None
    market_value: float | None
    unrealized_pnl: float | None
    realized_pnl: float | None
    currency: str = "USD"


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountPnL:
    """The account's P&L as the gateway streams it (``reqPnL``): ``daily`` is the day's
    P&L (today's realized plus the day's change of unrealized), what the loss limit reads."""

    account: str
    daily: float
    unrealized: float | None
    realized: float | None
    received_at: datetime  # UTC

    def as_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "daily": self.daily,
            "unrealized": self.unrealized,
            "realized": self.realized,
            "received_at": self.received_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    """One position as the gateway values it: average cost, market price, unrealized and
    day's P&L (``daily``); ``received_at`` says when the newest of these arrived
    (:mod:`tradingbot.broker.valuations`)."""

    account: str
    symbol: str
    quantity: float
    avg_cost: float
    market_price: float | None
    market_value: float | None
    unrealized: float | None
    realized: float | None
    received_at: datetime  # UTC
    daily: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "symbol": self.symbol,
            "quantity": self.quantity,
            "avg_cost": self.avg_cost,
            "market_price": self.market_price,
            "market_value": self.market_value,
            "unrealized": self.unrealized,
            "realized": self.realized,
            "daily": self.daily,
            "received_at": self.received_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountValue:
    """One account value (``NetLiquidation``, ``TotalCashValue``, ...) as the gateway sent it."""

    account: str
    tag: str
    value: str
    currency: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One execution (fill) with its commission report, when the gateway sent one."""

    exec_id: str
    order_ref: str
    account: str
    symbol: str
    side: str  # BUY or SELL
    quantity: float
    price: float
    time: datetime | None
    order_id: int
    perm_id: int
    commission: float | None
    currency: str
    realized_pnl: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayOrder:
    """An order as the gateway reports it, open or completed (ours by ``order_ref``)."""

    order_ref: str
    account: str
    symbol: str
    side: str
    quantity: float
    order_type: str
    limit_price: float | None
    status: str
    filled: float
    order_id: int
    perm_id: int
    client_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAllResult:
    """What a cancel-all found and did: the account's orders open at the gateway just
    before it (ours have a ``TB-`` ``order_ref``), and how it cancelled them: ``global``
    (the gateway's global cancel) or ``account`` (one cancel per order of our account,
    when the login manages other accounts too)."""

    open_orders: tuple[GatewayOrder, ...]
    scope: str
