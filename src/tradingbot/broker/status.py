"""Connection state of the broker, shared between the actor and its observers.

The broker actor writes a :class:`BrokerStatus`; health checks and order callers read
it from any thread without asking the actor (a hung or restarting actor must not hang
a health report). The object outlives actor incarnations: the runtime creates it once
and hands it to every incarnation, so the execution ids already turned into TRADE
events and the orders placed survive reconnects.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tradingbot.broker.answers import AccountPnL, Holding
from tradingbot.broker.errors import TradingBlocked
from tradingbot.broker.ids import order_ref_for

KILL_SWITCH_GATE = "kill_switch"  # the operator's pause, or the daily loss limit
LIVE_ACCOUNT_GATE = "live_account"  # a non-paper account needs TRADINGBOT_LIVE_TRADING=yes
RESTART_WINDOW_GATE = "restart_window"  # the IB Gateway's daily restart (tradingbot.trading)
RECONCILIATION_GATE = "reconciliation"  # our books and the broker's must agree
GATES = (KILL_SWITCH_GATE, LIVE_ACCOUNT_GATE, RESTART_WINDOW_GATE, RECONCILIATION_GATE)
REDUCE_ONLY_PASSES = (KILL_SWITCH_GATE, RESTART_WINDOW_GATE)  # gates a flatten's orders pass

ViewListener = Callable[["BrokerView", "BrokerView"], None]


class ConnectionState(enum.StrEnum):
    """disconnected → connecting → synced (→ degraded on 1100 or a missed probe)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    SYNCED = "synced"
    DEGRADED = "degraded"


UNRESOLVED = "Unresolved"
"""Status of an order sent before the connection dropped, until the gateway answers."""

FINAL_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
"""Gateway order statuses after which an order never changes again (the one list of them)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerView:
    """One consistent reading of the broker's connection (monotonic times in seconds)."""

    state: ConnectionState
    since: float
    down_since: float | None
    host: str = ""
    port: int = 0
    client_id: int = 0
    last_ok: float | None = None
    last_roundtrip_ms: float | None = None
    last_error: str | None = None
    connects: int = 0
    accounts: tuple[str, ...] = ()  # the managed accounts the gateway reported (last connect)

    def details(self, now: float) -> dict[str, Any]:
        """JSON-able facts for the tree snapshot."""
        return {
            "state": self.state.value,
            "host": self.host,
            "port": self.port,
            "client_id": self.client_id,
            "last_roundtrip_ms": self.last_roundtrip_ms,
            "last_roundtrip_age_s": None
            if self.last_ok is None
            else round(max(0.0, now - self.last_ok), 3),
            "last_error": self.last_error,
            "connects": self.connects,
            "accounts": list(self.accounts),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRecord:
    """What we know of one of our orders, keyed by our own id (the ``orderRef``)."""

    order_ref: str
    symbol: str
    side: str
    quantity: float
    order_type: str
    limit_price: float | None = None
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    order_id: int = 0
    perm_id: int = 0
    client_order_id: str | None = None
    strategy_id: str | None = None  # the strategy that placed it, and the SIGNAL behind it
    signal_id: str | None = None

    @property
    def unresolved(self) -> bool:
        return self.status == UNRESOLVED

    @property
    def sending(self) -> bool:
        """Stored and being sent: the gateway has given it no order id yet (a reduce-only
        order checks the position before it goes out)."""
        return self.order_id == 0 and self.status == "PendingSubmit"

    @property
    def ended_unsent(self) -> bool:
        """Cancelled before the gateway gave it an id: never sent (refused at the last
        moment, or cut off before ``placeOrder``); its end may still be on its way to
        our books."""
        return self.order_id == 0 and self.perm_id == 0 and self.status == "Cancelled"


class BrokerStatus:
    """Thread-safe broker state; every method may be called from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._order_changed = threading.Condition(self._lock)
        now = clock()
        self._view = BrokerView(state=ConnectionState.DISCONNECTED, since=now, down_since=now)
        self._exec_ids: set[str] = set()
        self._orders: dict[str, OrderRecord] = {}
        # Why new orders are refused, per gate (the reconciliation, the kill switch).
        self._blocked: dict[str, str] = {}
        # The account's positions (symbol -> signed shares) and P&L, as the gateway
        # streams them: what the pre-trade checks and the loss limit read.
        self._positions: dict[str, float] = {}
        self._open: dict[str, OrderRecord] = {}  # our orders not final (for the risk checks)
        self._pnl: AccountPnL | None = None
        self._holdings: dict[str, Holding] = {}  # symbol -> its valuation (broker/valuations.py)
        # Followed account values (tag -> (value, currency, received at UTC)).
        self._values: dict[str, tuple[float, str, datetime]] = {}
        self._listeners: tuple[ViewListener, ...] = ()

    def now(self) -> float:
        return self._clock()

    def view(self) -> BrokerView:
        with self._lock:
            return self._view

    def listen(self, listener: ViewListener) -> None:
        """Call ``listener(old, new)`` after every :meth:`update`, on the updating thread
        (the broker actor's), before ``update`` returns: a listener that closes a gate
        on what the gateway reported has closed it before anyone else reads the view."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def update(self, **changes: Any) -> BrokerView:
        """Change fields of the view; a new ``state`` restarts ``since`` (and ``down_since``)."""
        old, new = self._update(changes)
        for listener in self._listeners:
            listener(old, new)
        return new

    def _update(self, changes: dict[str, Any]) -> tuple[BrokerView, BrokerView]:
        with self._lock:
            old = self._view
            state = changes.get("state", old.state)
            if state != old.state:
                now = self._clock()
                changes["since"] = now
                if state == ConnectionState.SYNCED:
                    changes["down_since"] = None
                elif old.down_since is None and state != ConnectionState.DEGRADED:
                    changes["down_since"] = now
            self._view = replace(old, **changes)
            return old, self._view

    def known_fills(self, exec_ids: set[str]) -> None:
        """Execution ids already recorded (by an earlier run): not new fills when seen again."""
        with self._lock:
            self._exec_ids |= exec_ids

    def block_trading(self, reason: str, gate: str = RECONCILIATION_GATE) -> None:
        """Close ``gate``: new orders are refused (cancels still pass) until every gate is
        open again (:meth:`allow_trading`)."""
        with self._lock:
            self._blocked[gate] = reason

    def allow_trading(self, gate: str = RECONCILIATION_GATE) -> None:
        """Open ``gate``; orders flow when no other gate is closed."""
        with self._lock:
            self._blocked.pop(gate, None)

    def trading_blocked(self, gate: str | None = None) -> str | None:
        """Why new orders are refused (every closed gate's reason, kill switch first), or
        ``None`` when trading is allowed; with ``gate``, that gate's reason only."""
        with self._lock:
            if gate is not None:
                return self._blocked.get(gate)
            reasons = [self._blocked[g] for g in GATES if g in self._blocked]
            reasons += [r for g, r in self._blocked.items() if g not in GATES]
            return "; ".join(reasons) or None

    def gates(self) -> dict[str, str | None]:
        """Every gate's reason (``None``: open), in :data:`GATES` order, for the operator."""
        with self._lock:
            return {gate: self._blocked.get(gate) for gate in GATES}

    def order_gate(self, *, reduce_only: bool = False) -> str | None:
        """Why a new order is refused now, or ``None``. A reduce-only order (a flatten's
        closing order) passes the kill switch's gate and the restart window's (a scheduled
        pause must not stop an emergency flatten), never reconciliation's or the live
        account's."""
        if not reduce_only:
            return self.trading_blocked()
        with self._lock:
            reasons = [r for g, r in self._blocked.items() if g not in REDUCE_ONLY_PASSES]
            return "; ".join(reasons) or None

    def order_refusal(
        self, client_order_id: str | None, *, reduce_only: bool = False
    ) -> TradingBlocked | None:
        """The refusal of a new order while trading is blocked, else ``None``; a retry of
        a known idempotency key is no new order (it gets its order back)."""
        blocked = self.order_gate(reduce_only=reduce_only)
        if blocked is None:
            return None
        if client_order_id is not None and self.order(order_ref_for(client_order_id)) is not None:
            return None
        return TradingBlocked(f"order refused: trading is blocked ({blocked})")

    def fill_seen(self, exec_id: str) -> bool:
        """True when ``exec_id`` was already taken as a fill (being, or already, recorded)."""
        with self._lock:
            return exec_id in self._exec_ids

    def first_fill(self, exec_id: str) -> bool:
        """True the first time ``exec_id`` is seen (a replayed execution is not a new fill)."""
        with self._lock:
            if exec_id in self._exec_ids:
                return False
            self._exec_ids.add(exec_id)
            return True

    def _keep(self, record: OrderRecord) -> OrderRecord:
        """Store ``record`` (the lock is held), indexing it as open while not final."""
        self._orders[record.order_ref] = record
        if record.status in FINAL_STATUSES:
            self._open.pop(record.order_ref, None)
        else:
            self._open[record.order_ref] = record
        return record

    def forget_fill(self, exec_id: str) -> None:
        """``exec_id`` was not stored after all: a later report (or reconciliation) of the
        same execution must be taken as a new fill, not as one being recorded."""
        with self._lock:
            self._exec_ids.discard(exec_id)

    def put_order(self, record: OrderRecord) -> None:
        with self._lock:
            self._keep(record)
            self._order_changed.notify_all()

    def update_order(self, order_ref: str, **changes: Any) -> OrderRecord | None:
        with self._lock:
            record = self._orders.get(order_ref)
            if record is None:
                return None
            record = self._keep(replace(record, **changes))
            self._order_changed.notify_all()
            return record

    def apply_order_status(
        self, order_ref: str, status: str, filled: float, **changes: Any
    ) -> tuple[OrderRecord, OrderRecord] | None:
        """Apply a status report from the gateway; return (before, after), None if ignored.

        Ignored: an unknown order, and a late report from before a reconnect or restart
        (a final state never goes back, and a final fill count never shrinks). Called
        on the client's loop thread, so that a waiter wakes without an actor hop.
        """
        with self._lock:
            before = self._orders.get(order_ref)
            if before is None:
                return None
            if before.status in FINAL_STATUSES and (
                status not in FINAL_STATUSES or filled < before.filled
            ):
                return None
            after = self._keep(replace(before, status=status, filled=filled, **changes))
            self._order_changed.notify_all()
            return before, after

    def wait_for_order(
        self, order_ref: str, statuses: Collection[str], timeout_s: float
    ) -> OrderRecord | None:
        """Block until order ``order_ref`` has one of ``statuses``; None after ``timeout_s``.

        For callers that need an order's outcome (a strategy waiting for ``Filled``)
        without polling: every order update wakes the waiters.
        """
        deadline = time.monotonic() + timeout_s
        with self._order_changed:
            while True:
                record = self._orders.get(order_ref)
                if record is not None and record.status in statuses:
                    return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._order_changed.wait(remaining)

    def mark_unresolved(self) -> list[str]:
        """The connection is gone: every order not known to be final becomes unresolved."""
        with self._lock:
            refs = [
                ref
                for ref, record in self._orders.items()
                if record.status not in FINAL_STATUSES and record.status != UNRESOLVED
            ]
            for ref in refs:
                self._keep(replace(self._orders[ref], status=UNRESOLVED))
            if refs:
                self._order_changed.notify_all()
            return refs

    def unresolved_orders(self) -> list[str]:
        with self._lock:
            return [ref for ref, record in self._orders.items() if record.unresolved]

    def order(self, order_ref: str) -> OrderRecord | None:
        with self._lock:
            return self._orders.get(order_ref)

    def orders(self) -> list[OrderRecord]:
        with self._lock:
            return list(self._orders.values())

    # -- the account (written on the client's loop thread) ----------------------------------

    def set_positions(self, positions: Mapping[str, float]) -> None:
        """Every position of the account, as reported at a (re)connect."""
        with self._lock:
            self._positions = {s: q for s, q in positions.items() if q}

    def set_position(self, symbol: str, quantity: float) -> None:
        """One position changed (a fill, a reconnect); zero removes it."""
        with self._lock:
            if quantity:
                self._positions[symbol] = quantity
            else:
                self._positions.pop(symbol, None)

    def position(self, symbol: str) -> float:
        """Signed shares of ``symbol`` the gateway reports (0 when none)."""
        with self._lock:
            return self._positions.get(symbol, 0.0)

    def positions(self) -> dict[str, float]:
        with self._lock:
            return dict(self._positions)

    def working(self, symbol: str) -> float:
        """Signed shares of our orders in ``symbol`` not yet filled (open or unresolved)."""
        with self._lock:
            return sum(
                (r.quantity - r.filled) * (1 if r.side == "BUY" else -1)
                for r in self._open.values()
                if r.symbol == symbol
            )

    def open_orders(self) -> int:
        """How many of our orders are not final (open, pending or unresolved)."""
        with self._lock:
            return len(self._open)

    def set_pnl(self, pnl: AccountPnL) -> None:
        with self._lock:
            self._pnl = pnl

    def pnl(self) -> AccountPnL | None:
        """The account's latest P&L from the gateway (None before the first report)."""
        with self._lock:
            return self._pnl

    def set_holdings(self, holdings: Collection[Holding]) -> None:
        """Every holding's valuation, as the client had it at a (re)connect."""
        with self._lock:
            self._holdings = {h.symbol: h for h in holdings if h.quantity}

    def set_holding(self, holding: Holding) -> None:
        """One holding's new valuation (a zero quantity removes it)."""
        with self._lock:
            if holding.quantity:
                self._holdings[holding.symbol] = holding
            else:
                self._holdings.pop(holding.symbol, None)

    def holdings(self) -> dict[str, Holding]:
        """The positions' latest valuations by symbol (average cost, price, unrealized)."""
        with self._lock:
            return dict(self._holdings)

    def set_account_value(self, tag: str, value: float, currency: str, at: datetime) -> None:
        """One numeric account value the gateway streamed (``NetLiquidation``, ...)."""
        with self._lock:
            self._values[tag] = (value, currency, at)

    def account_value(self, tag: str) -> tuple[float, str, datetime] | None:
        """The latest streamed ``tag`` (value, currency, when received), or None."""
        with self._lock:
            return self._values.get(tag)
