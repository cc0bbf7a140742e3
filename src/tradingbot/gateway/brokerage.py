"""The simulated brokerage: accounts, symbols, positions, margin and P&L, with no I/O.

Orders live in its ``OrderBook``; everything is synchronous and deterministic for a
given seed and call order; the server turns the returned objects into wire messages.

Symbols: the seeded ones (``DEFAULT_SYMBOLS`` or a seed file) get contract ids from
100001 in order; any other plausible US stock symbol (1-5 letters, optionally a class
suffix such as ``BRK.B``) is created on first use with a contract id derived from the
symbol alone (stable across runs). Anything else is error 200, as is a currency other
than USD or an exchange that does not list US stocks.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .calendar import AlwaysOpen, SessionCalendar
from .history import PricePath
from .model import (
    NO_SECURITY_DEFINITION,
    Accepted,
    Account,
    CommissionSchedule,
    Execution,
    Instrument,
    OrderRequest,
    Position,
    Rejection,
    SimOrder,
    StatusChange,
    WhatIf,
)
from .orders import OrderBook
from .prices import PriceModel

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_SYMBOLS",
    "INIT_MARGIN_RATE",
    "MAINT_MARGIN_RATE",
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
    "StatusChange",
    "WhatIf",
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

US_EXCHANGES = frozenset(
    {"SMART", "NYSE", "NASDAQ", "ISLAND", "ARCA", "AMEX", "BATS", "IEX", "NYSENAT", "CBOE"}
)
_PLAUSIBLE = re.compile(r"^[A-Z]{1,5}([. ][A-Z])?$")
# Reg T style: 50 % initial, 25 % maintenance margin on the gross position value.
INIT_MARGIN_RATE = 0.5
MAINT_MARGIN_RATE = 0.25
NO_DEFINITION_TEXT = "No security definition has been found for the request"


@dataclass(slots=True)
class _DayMark:
    """What a position cost for today's P&L: its value at the session start plus trades."""

    session: object
    cost: float = 0.0


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
        calendar: SessionCalendar | None = None,
        max_fill_shares: float | None = None,
    ) -> None:
        self.prices = prices or PriceModel()
        self.commissions = commissions or CommissionSchedule()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.prices.clock = self.now
        self.calendar: SessionCalendar = calendar or AlwaysOpen()
        self.history = PricePath(self.prices, self.calendar)
        self.accounts: dict[str, Account] = {
            acct: Account(acct, cash) for acct, cash in (accounts or {DEFAULT_ACCOUNT: 1e6}).items()
        }
        self._instruments: dict[str, Instrument] = {}
        self._by_con_id: dict[int, Instrument] = {}
        for symbol, exchange in (symbols or DEFAULT_SYMBOLS).items():
            self.add_symbol(symbol, exchange)
        self.positions: dict[tuple[str, int], Position] = {}
        self._day_marks: dict[tuple[str, int], _DayMark] = {}
        self.book = OrderBook(
            lookup=self._lookup_request,
            price=self.prices.price,
            default_account=lambda: next(iter(self.accounts)),
            account_exists=lambda acct: acct in self.accounts,
            book=self._book,
            commissions=self.commissions,
            clock=self.now,
            calendar=self.calendar,
            max_fill_shares=max_fill_shares,
        )

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

    def lookup(
        self, *, symbol: str = "", con_id: int = 0, currency: str = "", exchange: str = ""
    ) -> Instrument | None:
        """Find an instrument by contract id (if nonzero) or symbol; a plausible unseeded
        symbol is created; a currency or exchange that does not match finds nothing."""
        if con_id:
            inst = self._by_con_id.get(con_id)
        else:
            name = symbol.upper()
            inst = self._instruments.get(name)
            if inst is None and _PLAUSIBLE.match(name):
                inst = self._add_derived(name)
        if inst is None:
            return None
        if currency and currency.upper() != inst.currency:
            return None
        if exchange and exchange.upper() not in US_EXCHANGES | {inst.primary_exchange}:
            return None
        return inst

    def _add_derived(self, symbol: str) -> Instrument:
        crc = zlib.crc32(symbol.encode())
        con_id = 200_000_000 + crc % 100_000_000
        while con_id in self._by_con_id:  # a crc collision: the next free id
            con_id += 1
        inst = Instrument(symbol, con_id, "NYSE" if crc % 3 == 0 else "NASDAQ")
        self._instruments[symbol] = inst
        self._by_con_id[con_id] = inst
        return inst

    def _lookup_request(self, req: OrderRequest) -> Instrument | Rejection:
        inst = self.lookup(
            symbol=req.symbol, con_id=req.con_id, currency=req.currency, exchange=req.exchange
        )
        if inst is None or req.sec_type not in ("STK", ""):
            return Rejection(NO_SECURITY_DEFINITION, NO_DEFINITION_TEXT)
        return inst

    def now(self) -> datetime:
        """The simulator's clock (UTC)."""
        return self._clock()

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
        clock, self._clock = self._clock, lambda: when  # the book reads self.now
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
                    outside_rth=True,  # a replayed fill happened, session or not
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

    # -- orders (delegated to the order book) ------------------------------------------

    @property
    def orders(self) -> dict[int, SimOrder]:
        """Every order by permId."""
        return self.book.orders

    @property
    def executions(self) -> list[Execution]:
        """Every fill, oldest first."""
        return self.book.executions

    def next_order_id(self, client_id: int) -> int:
        """The next valid order id for ``client_id`` (continues across sessions)."""
        return self.book.next_order_id(client_id)

    def reject_next_order(self, reason: str = "Simulated rejection") -> None:
        """Fault: the next new order from any client is rejected with error 201."""
        self.book.reject_next_order(reason)

    def place(self, client_id: int, req: OrderRequest) -> Accepted | Rejection:
        """Accept, modify or reject an order; marketable orders fill at once."""
        return self.book.place(client_id, req)

    def cancel(self, client_id: int, order_id: int) -> list[Execution | StatusChange] | Rejection:
        """Cancel a resting order of this client and its children."""
        return self.book.cancel(client_id, order_id)

    def cancel_all(self) -> list[Execution | StatusChange]:
        """Cancel every open order of every client."""
        return self.book.cancel_all()

    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        """Resting orders, of one client or of all (``None``)."""
        return self.book.open_orders(client_id)

    def completed_orders(self) -> list[SimOrder]:
        """Filled and cancelled orders of every client, oldest first."""
        return self.book.completed_orders()

    def match_resting(self) -> list[Execution | StatusChange]:
        """Expire, trigger and fill resting orders at current prices (events in order)."""
        return self.book.match_resting()

    def what_if(self, client_id: int, req: OrderRequest) -> WhatIf | Rejection:
        """Margin and commission of ``req`` if it filled now; nothing changes."""
        order = self.book.build(client_id, req)
        if isinstance(order, Rejection):
            return order
        price = self.prices.price(order.instrument.symbol)
        if order.order_type in ("LMT", "STP LMT") and order.lmt_price:
            price = order.lmt_price
        signed = order.quantity if order.action == "BUY" else -order.quantity
        commission = self.commissions.commission(order.quantity)
        init, maint, equity = self.margin(order.account_id)
        pos = self.positions.get((order.account_id, order.instrument.con_id))
        held = pos.quantity if pos else 0.0
        market = self.prices.price(order.instrument.symbol)
        gross_change = abs(held + signed) * market - abs(held) * market
        return WhatIf(
            order=order,
            init_before=init,
            maint_before=maint,
            equity_before=equity,
            init_after=init + gross_change * INIT_MARGIN_RATE,
            maint_after=maint + gross_change * MAINT_MARGIN_RATE,
            equity_after=equity - commission - signed * (price - market),
            commission=commission,
        )

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
        mark = self._day_mark(pos)  # before the quantity changes
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
        mark.cost += signed * price + commission
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
        init, maint, equity = self.margin(account_id)
        _, unrealized, _ = self.pnl(account_id)
        excess = equity - maint
        available = equity - init
        rows = [
            ("AccountType", "INDIVIDUAL", ""),
            ("AccountCode", account_id, ""),
            ("AccountReady", "true", ""),
            ("TotalCashValue", f"{account.cash:.2f}", "USD"),
            ("CashBalance", f"{account.cash:.2f}", "USD"),
            ("NetLiquidation", f"{net_liq:.2f}", "USD"),
            ("GrossPositionValue", f"{abs(market_value):.2f}", "USD"),
            ("EquityWithLoanValue", f"{equity:.2f}", "USD"),
            ("InitMarginReq", f"{init:.2f}", "USD"),
            ("MaintMarginReq", f"{maint:.2f}", "USD"),
            ("ExcessLiquidity", f"{excess:.2f}", "USD"),
            ("Cushion", f"{excess / net_liq if net_liq > 0 else 0.0:.4f}", ""),
            ("DayTradesRemaining", "-1", ""),
            ("AvailableFunds", f"{available:.2f}", "USD"),
            ("BuyingPower", f"{max(0.0, available) * 4:.2f}", "USD"),
            ("UnrealizedPnL", f"{unrealized:.2f}", "USD"),
            ("RealizedPnL", f"{account.realized_pnl:.2f}", "USD"),
            ("Currency", "USD", "USD"),
        ]
        return rows

    def margin(self, account_id: str) -> tuple[float, float, float]:
        """(initial margin, maintenance margin, equity with loan) of an account."""
        account = self.accounts[account_id]
        gross = market = 0.0
        for p in self.account_positions(account_id):
            value = p.quantity * self.prices.price(p.instrument.symbol)
            gross += abs(value)
            market += value
        return gross * INIT_MARGIN_RATE, gross * MAINT_MARGIN_RATE, account.cash + market

    # -- P&L -------------------------------------------------------------------------

    def _session_key(self) -> object:
        return self.book.calendar.session_at_or_after(self.now()).day

    def _day_mark(self, pos: Position) -> _DayMark:
        """Today's cost basis of ``pos``: reset to its market value at a new session."""
        key = (pos.account_id, pos.instrument.con_id)
        session = self._session_key()
        mark = self._day_marks.get(key)
        if mark is None or mark.session != session:
            value = pos.quantity * self.prices.price(pos.instrument.symbol)
            mark = self._day_marks[key] = _DayMark(session, value)
        return mark

    def position_pnl(self, pos: Position) -> tuple[float, float, float, float]:
        """(daily, unrealized, realized, market value) of one position."""
        price = self.prices.price(pos.instrument.symbol)
        value = pos.quantity * price
        unrealized = value - pos.quantity * pos.avg_cost
        daily = value - self._day_mark(pos).cost
        return daily, unrealized, pos.realized_pnl, value

    def pnl(self, account_id: str) -> tuple[float, float, float]:
        """(daily, unrealized, realized) P&L of an account; daily resets each session."""
        daily = unrealized = 0.0
        for p in self.account_positions(account_id):
            d, u, _, _ = self.position_pnl(p)
            daily += d
            unrealized += u
        return daily, unrealized, self.accounts[account_id].realized_pnl
