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
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from tradingbot.broker.errors import TradingBlocked
from tradingbot.broker.ids import order_ref_for

KILL_SWITCH_GATE = "kill_switch"  # the operator's pause, or the daily loss limit
RECONCILIATION_GATE = "reconciliation"  # our books and the broker's must agree
GATES = (KILL_SWITCH_GATE, RECONCILIATION_GATE)


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

    @property
    def unresolved(self) -> bool:
        return self.status == UNRESOLVED


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

    def now(self) -> float:
        return self._clock()

    def view(self) -> BrokerView:
        with self._lock:
            return self._view

    def update(self, **changes: Any) -> BrokerView:
        """Change fields of the view; a new ``state`` restarts ``since`` (and ``down_since``)."""
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
            return self._view

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

    def order_refusal(self, client_order_id: str | None) -> TradingBlocked | None:
        """The refusal of a new order while trading is blocked, else ``None``; a retry of
        a known idempotency key is no new order (it gets its order back)."""
        blocked = self.trading_blocked()
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

    def put_order(self, record: OrderRecord) -> None:
        with self._lock:
            self._orders[record.order_ref] = record
            self._order_changed.notify_all()

    def update_order(self, order_ref: str, **changes: Any) -> OrderRecord | None:
        with self._lock:
            record = self._orders.get(order_ref)
            if record is None:
                return None
            record = self._orders[order_ref] = replace(record, **changes)
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
            after = self._orders[order_ref] = replace(
                before, status=status, filled=filled, **changes
            )
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
                self._orders[ref] = replace(self._orders[ref], status=UNRESOLVED)
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
