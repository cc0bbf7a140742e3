"""The simulated brokerage: accounts, positions, orders and fills, with no I/O.

Everything here is synchronous and deterministic for a given seed and call order; the
server turns the returned objects into wire messages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .prices import PriceModel

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_SYMBOLS",
    "Accepted",
    "Account",
    "Brokerage",
    "CommissionSchedule",
    "Execution",
    "Instrument",
    "OrderRequest",
    "Position",
    "Rejection",
    "SimOrder",
]

DEFAULT_ACCOUNT = "DU1234567"
DEFAULT_SYMBOLS: dict[str, str] = {
    "AAPL": "NASDAQ",
    "MSFT": "NASDAQ",
    "AMZN": "NASDAQ",
    "GOOG": "NASDAQ",
    "NVDA": "NASDAQ",
    "TSLA": "NASDAQ",
    "META": "NASDAQ",
    "IBM": "NYSE",
    "JPM": "NYSE",
    "XOM": "NYSE",
    "SPY": "ARCA",
    "QQQ": "NASDAQ",
    "IWM": "ARCA",
}

# Error codes the simulator answers with (as the real gateway does).
NO_SECURITY_DEFINITION = 200
ORDER_REJECTED = 201
DUPLICATE_ORDER_ID = 103
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


@dataclass(slots=True, kw_only=True)
class SimOrder:
    """An order the brokerage accepted."""

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
class Accepted:
    """An accepted (new or modified) order and the fills it got right away."""

    order: SimOrder
    fills: list[Execution]


@dataclass(frozen=True, slots=True)
class CommissionSchedule:
    """IB-style per-share commission with a minimum per order fill."""

    per_share: float = 0.005
    minimum: float = 1.0

    def commission(self, shares: float) -> float:
        """Commission in account currency for ``shares`` shares."""
        return round(max(self.minimum, abs(shares) * self.per_share), 4)


@dataclass(slots=True)
class _ClientState:
    next_order_id: int = 1
    used_ids: set[int] = field(default_factory=set)


class Brokerage:
    """Accounts, positions, orders and executions kept across client sessions."""

    def __init__(
        self,
        *,
        prices: PriceModel | None = None,
        accounts: dict[str, float] | None = None,
        symbols: dict[str, str] | None = None,
        commissions: CommissionSchedule | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.prices = prices or PriceModel()
        self.commissions = commissions or CommissionSchedule()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.accounts: dict[str, Account] = {
            acct: Account(acct, cash) for acct, cash in (accounts or {DEFAULT_ACCOUNT: 1e6}).items()
        }
        self._instruments: dict[str, Instrument] = {}
        self._by_con_id: dict[int, Instrument] = {}
        for symbol, exchange in (symbols or DEFAULT_SYMBOLS).items():
            self.add_symbol(symbol, exchange)
        self.positions: dict[tuple[str, int], Position] = {}
        self.orders: dict[int, SimOrder] = {}  # by permId
        self._by_client: dict[tuple[int, int], SimOrder] = {}
        self.executions: list[Execution] = []
        self._clients: dict[int, _ClientState] = {}
        self._next_perm_id = 1_000_000_001
        self._next_exec = 1
        self._reject_next: str | None = None

    # -- reference data -------------------------------------------------------------

    def add_symbol(self, symbol: str, primary_exchange: str = "NASDAQ") -> Instrument:
        """Make ``symbol`` tradable; contract ids are assigned in order, from 100001."""
        existing = self._instruments.get(symbol)
        if existing is not None:
            return existing
        inst = Instrument(symbol, 100_001 + len(self._instruments), primary_exchange)
        self._instruments[symbol] = inst
        self._by_con_id[inst.con_id] = inst
        return inst

    def lookup(self, *, symbol: str = "", con_id: int = 0) -> Instrument | None:
        """Find an instrument by contract id (if nonzero) or symbol."""
        if con_id:
            return self._by_con_id.get(con_id)
        return self._instruments.get(symbol.upper())

    @property
    def account_ids(self) -> list[str]:
        """Managed accounts, in creation order."""
        return list(self.accounts)

    def seed_position(
        self, account_id: str, symbol: str, quantity: float, avg_cost: float
    ) -> Position:
        """Add a starting position (from a seed file or a test)."""
        inst = self.lookup(symbol=symbol) or self.add_symbol(symbol.upper())
        pos = Position(account_id, inst, quantity, avg_cost)
        self.positions[(account_id, inst.con_id)] = pos
        return pos

    def load_seed(self, path: Path) -> None:
        """Load accounts, symbols, prices and positions from a JSON seed file.

        Format: ``{"accounts": {"DU1": {"cash": 1e5, "positions": [{"symbol": "AAPL",
        "quantity": 10, "avg_cost": 150.0}]}}, "symbols": {"AAPL": {"price": 190.0,
        "exchange": "NASDAQ"}}, "executions": [{"time": "2025-01-06T14:30:00+00:00",
        "symbol": "AAPL", "side": "BUY", "quantity": 10, "price": 189.5, "client_id": 1,
        "order_ref": "TB-1", "account": "DU1"}]}``. Seeded accounts replace the default
        account. Executions are the day's history, replayed in order as filled market
        orders at their time and price (they move positions and cash like live fills).
        """
        data: dict[str, Any] = json.loads(path.read_text())
        for symbol, spec in data.get("symbols", {}).items():
            self.add_symbol(symbol.upper(), str(spec.get("exchange", "NASDAQ")))
            if "price" in spec:
                self.prices.set_price(symbol.upper(), float(spec["price"]))
        accounts: dict[str, Any] = data.get("accounts", {})
        if accounts:
            self.accounts = {}
            self.positions = {}
        for acct, spec in accounts.items():
            self.accounts[acct] = Account(acct, float(spec.get("cash", 0.0)))
            for pos in spec.get("positions", []):
                self.seed_position(
                    acct, str(pos["symbol"]), float(pos["quantity"]), float(pos["avg_cost"])
                )
        for fill in data.get("executions", []):
            self.replay_fill(fill)

    def replay_fill(self, fill: dict[str, Any]) -> Execution:
        """One historical fill: a market order filled at ``fill``'s time and price."""
        symbol = str(fill["symbol"]).upper()
        client_id = int(fill.get("client_id", 0))
        when = datetime.fromisoformat(str(fill["time"]))
        if when.tzinfo is None:
            raise ValueError(f"execution time {fill['time']!r} needs a UTC offset")
        self.lookup(symbol=symbol) or self.add_symbol(symbol)
        self.prices.set_price(symbol, float(fill["price"]))
        clock, self._clock = self._clock, lambda: when
        try:
            result = self.place(
                client_id,
                OrderRequest(
                    order_id=self.next_order_id(client_id),
                    con_id=0,
                    symbol=symbol,
                    sec_type="STK",
                    exchange="SMART",
                    currency="USD",
                    action=str(fill["side"]).upper(),
                    quantity=float(fill["quantity"]),
                    order_type="MKT",
                    lmt_price=None,
                    tif="DAY",
                    account=str(fill.get("account") or next(iter(self.accounts))),
                    order_ref=str(fill.get("order_ref", "")),
                ),
            )
        finally:
            self._clock = clock
        if isinstance(result, Rejection):
            raise ValueError(f"execution {fill!r} rejected: {result.message}")
        return self.executions[-1]

    # -- order ids -------------------------------------------------------------------

    def _client(self, client_id: int) -> _ClientState:
        return self._clients.setdefault(client_id, _ClientState())

    def next_order_id(self, client_id: int) -> int:
        """The next valid order id for ``client_id`` (continues across sessions)."""
        return self._client(client_id).next_order_id

    def reject_next_order(self, reason: str = "Simulated rejection") -> None:
        """Fault: the next new order from any client is rejected with error 201."""
        self._reject_next = reason

    # -- orders ----------------------------------------------------------------------

    def place(self, client_id: int, req: OrderRequest) -> Accepted | Rejection:
        """Accept, modify or reject an order; marketable orders fill at once."""
        state = self._client(client_id)
        existing = self._by_client.get((client_id, req.order_id))
        if existing is not None:
            if existing.is_done:
                return Rejection(DUPLICATE_ORDER_ID, "Duplicate order id")
            return self._modify(existing, req)
        if req.order_id in state.used_ids or req.order_id <= 0:
            return Rejection(DUPLICATE_ORDER_ID, "Duplicate order id")
        inst = self.lookup(symbol=req.symbol, con_id=req.con_id)
        if inst is None or req.sec_type not in ("STK", ""):
            return Rejection(
                NO_SECURITY_DEFINITION, "No security definition has been found for the request"
            )
        problem = self._validate(req)
        if problem is None and self._reject_next is not None:
            problem, self._reject_next = self._reject_next, None
        if problem is not None:
            state.used_ids.add(req.order_id)
            state.next_order_id = max(state.next_order_id, req.order_id + 1)
            return Rejection(ORDER_REJECTED, f"Order rejected - reason:{problem}")
        state.used_ids.add(req.order_id)
        state.next_order_id = max(state.next_order_id, req.order_id + 1)
        account = req.account or next(iter(self.accounts))
        order = SimOrder(
            order_id=req.order_id,
            client_id=client_id,
            perm_id=self._next_perm_id,
            account_id=account,
            instrument=inst,
            exchange=req.exchange or "SMART",
            action=req.action,
            quantity=req.quantity,
            order_type=req.order_type,
            lmt_price=req.lmt_price,
            tif=req.tif or "DAY",
            order_ref=req.order_ref,
        )
        self._next_perm_id += 1
        self.orders[order.perm_id] = order
        self._by_client[(client_id, order.order_id)] = order
        fill = self._try_fill(order)
        return Accepted(order, [fill] if fill else [])

    def _validate(self, req: OrderRequest) -> str | None:
        if not math.isfinite(req.quantity) or req.quantity <= 0:
            return f"Order quantity must be positive, got {req.quantity:g}"
        if req.action not in ("BUY", "SELL"):
            return f"Invalid action {req.action!r}"
        if req.order_type not in ("MKT", "LMT"):
            return f"Order type {req.order_type!r} is not supported by the simulator"
        if req.order_type == "LMT" and (req.lmt_price is None or req.lmt_price <= 0):
            return "Limit price must be positive"
        if req.account and req.account not in self.accounts:
            return f"Unknown account {req.account}"
        return None

    def _modify(self, order: SimOrder, req: OrderRequest) -> Accepted | Rejection:
        problem = self._validate(req)
        if problem is not None:
            return Rejection(ORDER_REJECTED, f"Order rejected - reason:{problem}")
        order.quantity = req.quantity
        order.lmt_price = req.lmt_price
        order.order_type = req.order_type
        fill = self._try_fill(order)
        return Accepted(order, [fill] if fill else [])

    def cancel(self, client_id: int, order_id: int) -> SimOrder | Rejection:
        """Cancel a resting order of this client."""
        order = self._by_client.get((client_id, order_id))
        if order is None or order.is_done:
            return Rejection(
                CANCEL_NOT_FOUND, f"OrderId {order_id} that needs to be cancelled is not found."
            )
        order.status = "Cancelled"
        self._complete(order, "Cancelled")
        return order

    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        """Resting orders, of one client or of all (``None``)."""
        return [
            o
            for o in self.orders.values()
            if not o.is_done and (client_id is None or o.client_id == client_id)
        ]

    def completed_orders(self) -> list[SimOrder]:
        """Filled and cancelled orders of every client, oldest first."""
        return [o for o in self.orders.values() if o.is_done]

    def match_resting(self) -> list[Execution]:
        """Fill every resting limit order that became marketable at current prices."""
        return [fill for o in self.open_orders() if (fill := self._try_fill(o)) is not None]

    def _marketable_price(self, order: SimOrder) -> float | None:
        price = self.prices.price(order.instrument.symbol)
        if order.order_type == "MKT":
            return price
        limit = order.lmt_price or 0.0
        if order.action == "BUY" and price <= limit:
            return price
        if order.action == "SELL" and price >= limit:
            return price
        return None

    def _try_fill(self, order: SimOrder) -> Execution | None:
        price = self._marketable_price(order)
        if price is None or order.remaining <= 0:
            return None
        return self._fill(order, order.remaining, price)

    def _fill(self, order: SimOrder, shares: float, price: float) -> Execution:
        commission = self.commissions.commission(shares)
        realized = self._book(order, shares, price, commission)
        prior = order.filled * order.avg_fill_price
        order.filled += shares
        order.avg_fill_price = round((prior + shares * price) / order.filled, 6)
        order.last_fill_price = price
        now = self._clock()
        if order.remaining <= 0:
            order.status = "Filled"
            self._complete(order, "Filled")
        exec_id = f"0000e1a7.{self._next_exec:08x}.01.01"
        self._next_exec += 1
        execution = Execution(
            exec_id=exec_id,
            order=order,
            time=now,
            shares=shares,
            price=price,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            commission=commission,
            realized_pnl=realized,
        )
        self.executions.append(execution)
        return execution

    def _complete(self, order: SimOrder, status: str) -> None:
        order.completed_time = self._clock().strftime("%Y%m%d %H:%M:%S UTC")
        order.completed_status = status

    def _book(self, order: SimOrder, shares: float, price: float, commission: float) -> float:
        """Update cash and position; return the realized P&L of this fill."""
        account = self.accounts[order.account_id]
        signed = shares if order.action == "BUY" else -shares
        account.cash -= signed * price + commission
        key = (order.account_id, order.instrument.con_id)
        pos = self.positions.get(key)
        if pos is None:
            pos = Position(order.account_id, order.instrument, 0.0, 0.0)
            self.positions[key] = pos
        realized = 0.0
        if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
            total = pos.quantity * pos.avg_cost + signed * price + math.copysign(commission, signed)
            pos.quantity += signed
            pos.avg_cost = total / pos.quantity
        else:
            closed = min(abs(signed), abs(pos.quantity))
            direction = 1.0 if pos.quantity > 0 else -1.0
            realized = round((price - pos.avg_cost) * closed * direction - commission, 4)
            pos.quantity += signed
            if pos.quantity == 0:
                pos.avg_cost = 0.0
            elif (pos.quantity > 0) != (direction > 0):
                pos.avg_cost = price  # flipped through zero: the rest opens at this price
        pos.realized_pnl += realized
        account.realized_pnl += realized
        return realized

    # -- account views ---------------------------------------------------------------

    def account_positions(self, account_id: str | None = None) -> list[Position]:
        """Positions of one account or of all."""
        return [
            p for p in self.positions.values() if account_id is None or p.account_id == account_id
        ]

    def account_values(self, account_id: str) -> list[tuple[str, str, str]]:
        """(key, value, currency) rows as in IB account updates."""
        account = self.accounts[account_id]
        market_value = sum(
            p.quantity * self.prices.price(p.instrument.symbol)
            for p in self.account_positions(account_id)
        )
        net_liq = account.cash + market_value
        rows = [
            ("AccountType", "INDIVIDUAL", ""),
            ("AccountCode", account_id, ""),
            ("AccountReady", "true", ""),
            ("TotalCashValue", f"{account.cash:.2f}", "USD"),
            ("CashBalance", f"{account.cash:.2f}", "USD"),
            ("NetLiquidation", f"{net_liq:.2f}", "USD"),
            ("GrossPositionValue", f"{abs(market_value):.2f}", "USD"),
            ("AvailableFunds", f"{net_liq:.2f}", "USD"),
            ("BuyingPower", f"{max(0.0, net_liq) * 4:.2f}", "USD"),
            ("RealizedPnL", f"{account.realized_pnl:.2f}", "USD"),
            ("Currency", "USD", "USD"),
        ]
        return rows
