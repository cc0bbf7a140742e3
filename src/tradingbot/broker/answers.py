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
