"""The order book: placing, grouping, triggering, filling and expiring orders.

Semantics (as the real gateway, within what the simulator models):

- ``transmit=False`` stages an order (PreSubmitted, never works); the next order of the
  group sent with ``transmit=True`` (its parent, or a child naming it as ``parentId``)
  transmits the whole group.
- A child (``parentId``) is held until its parent fills, then works; when one child of a
  parent executes, its siblings are reduced by the same share of their size, so a filled
  take-profit cancels the stop (a bracket). The orders of one ``ocaGroup`` follow their
  ``ocaType``: 1 (and 0, unset) cancels the others at a member's first execution; 2 and
  3 (reduce with / without block) reduce the others' quantity in proportion to what
  executed, cancelling those reduced to nothing. Matching is sequential, so no group
  overfills and "block" changes nothing here. Cancelling a parent cancels its children.
- ``max_fill_shares`` (off by default: whole fills) fills a larger order in several
  executions of at most that many shares, one per matching round (tick), each with its
  commission and the order's cumulative status.
- MKT, LMT, STP, STP LMT and TRAIL (``auxPrice`` amount or ``trailingPercent``) work
  against the simulated price; a triggered STP fills as a market order, a triggered STP
  LMT rests as a limit order.
- Outside the session only orders with ``outsideRth`` may fill; others are held until the
  open. ``tif`` DAY orders are cancelled at the session close, GTC orders stay, IOC
  orders are cancelled when not filled at once.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .calendar import SessionCalendar, is_open
from .model import (
    CANCEL_NOT_FOUND,
    DUPLICATE_ORDER_ID,
    ORDER_REJECTED,
    ZERO_QUANTITY,
    Accepted,
    CommissionSchedule,
    Execution,
    Instrument,
    OrderRequest,
    Rejection,
    SimOrder,
    StatusChange,
)

__all__ = ["ORDER_TYPES", "TIFS", "OrderBook"]

ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT", "TRAIL")
TIFS = ("DAY", "GTC", "IOC")
OCA_CANCEL, OCA_REDUCE_BLOCK, OCA_REDUCE = 1, 2, 3  # IB's ocaType values (0: unset = 1)

Event = Execution | StatusChange


def _change(order: SimOrder) -> StatusChange:
    return StatusChange(order, order.status)


@dataclass(slots=True)
class _ClientState:
    next_order_id: int = 1
    used_ids: set[int] = field(default_factory=set)


class OrderBook:
    """Every order of every client, kept across sessions, and the fills they got."""

    def __init__(
        self,
        *,
        lookup: Callable[[OrderRequest], Instrument | Rejection],
        price: Callable[[str], float],
        default_account: Callable[[], str],
        account_exists: Callable[[str], bool],
        book: Callable[[SimOrder, float, float, float], float],
        commissions: CommissionSchedule,
        clock: Callable[[], datetime],
        calendar: SessionCalendar,
        max_fill_shares: float | None = None,
    ) -> None:
        self._lookup = lookup
        self.max_fill_shares = max_fill_shares
        self._price = price
        self._default_account = default_account
        self._account_exists = account_exists
        self._book = book
        self.commissions = commissions
        self.clock = clock
        self.calendar = calendar
        self.orders: dict[int, SimOrder] = {}  # by permId
        self._by_client: dict[tuple[int, int], SimOrder] = {}
        self.executions: list[Execution] = []
        self._clients: dict[int, _ClientState] = {}
        self._next_perm_id = 1_000_000_001
        self._next_exec = 1
        # Execution ids are unique per gateway session, as IB's are: a simulator started
        # again (the embedded one at every bot start) must not reuse ids the bot has
        # stored, or its fills would be taken for ones already recorded.
        self._exec_prefix = f"{secrets.randbits(32):08x}"
        self._reject_next: str | None = None

    # -- ids and faults ----------------------------------------------------------------

    def _client(self, client_id: int) -> _ClientState:
        return self._clients.setdefault(client_id, _ClientState())

    def next_order_id(self, client_id: int) -> int:
        """The next valid order id for ``client_id`` (continues across sessions)."""
        return self._client(client_id).next_order_id

    def reject_next_order(self, reason: str = "Simulated rejection") -> None:
        """Fault: the next new order from any client is rejected with error 201."""
        self._reject_next = reason

    def _use_id(self, client_id: int, order_id: int) -> None:
        state = self._client(client_id)
        state.used_ids.add(order_id)
        state.next_order_id = max(state.next_order_id, order_id + 1)

    # -- validation --------------------------------------------------------------------

    def validate(self, req: OrderRequest) -> Rejection | None:
        """Why the gateway would refuse ``req`` (None when it is acceptable)."""
        if req.quantity == 0:
            return Rejection(ZERO_QUANTITY, "The order size cannot be zero.")
        problem = self._problem(req)
        if problem is not None:
            return Rejection(ORDER_REJECTED, f"Order rejected - reason:{problem}")
        return None

    def _problem(self, req: OrderRequest) -> str | None:
        if not math.isfinite(req.quantity) or req.quantity < 0:
            return f"Order quantity must be positive, got {req.quantity:g}"
        if req.action not in ("BUY", "SELL"):
            return f"Invalid action {req.action!r}"
        if req.order_type not in ORDER_TYPES:
            return f"Order type {req.order_type!r} is not supported by the simulator"
        if req.order_type in ("LMT", "STP LMT") and not (req.lmt_price or 0) > 0:
            return "Limit price must be positive"
        if req.order_type in ("STP", "STP LMT") and not (req.aux_price or 0) > 0:
            return "Stop price must be positive"
        if req.order_type == "TRAIL" and not ((req.aux_price or 0) > 0) ^ (
            (req.trailing_percent or 0) > 0
        ):
            return "A trailing stop needs exactly one of a trailing amount or a percent"
        if (req.tif or "DAY") not in TIFS:
            return f"Time in force {req.tif!r} is not supported by the simulator"
        if req.oca_type not in (0, OCA_CANCEL, OCA_REDUCE_BLOCK, OCA_REDUCE):
            return f"Invalid ocaType {req.oca_type} (1, 2 or 3)"
        if req.account and not self._account_exists(req.account):
            return f"Unknown account {req.account}"
        return None

    # -- placing -----------------------------------------------------------------------

    def build(self, client_id: int, req: OrderRequest) -> SimOrder | Rejection:
        """Check ``req`` as a new order and build it (not yet booked)."""
        state = self._client(client_id)
        if req.order_id in state.used_ids or req.order_id <= 0:
            return Rejection(DUPLICATE_ORDER_ID, "Duplicate order id")
        inst = self._lookup(req)
        if isinstance(inst, Rejection):
            return inst
        rejection = self.validate(req)
        if rejection is None and self._reject_next is not None and not req.what_if:
            reason, self._reject_next = self._reject_next, None
            rejection = Rejection(ORDER_REJECTED, f"Order rejected - reason:{reason}")
        if rejection is not None:
            if not req.what_if:
                self._use_id(client_id, req.order_id)
            return rejection
        parent = None
        if req.parent_id:
            parent = self._by_client.get((client_id, req.parent_id))
            if parent is None or parent.status == "Cancelled":
                self._use_id(client_id, req.order_id)
                return Rejection(ORDER_REJECTED, "Order rejected - reason:Parent order not found")
        return SimOrder(
            order_id=req.order_id,
            client_id=client_id,
            perm_id=0,
            account_id=req.account or self._default_account(),
            instrument=inst,
            exchange=req.exchange or "SMART",
            action=req.action,
            quantity=req.quantity,
            order_type=req.order_type,
            lmt_price=req.lmt_price,
            aux_price=req.aux_price,
            tif=req.tif or "DAY",
            order_ref=req.order_ref,
            oca_group=req.oca_group,
            oca_type=req.oca_type,
            oca_size=req.quantity,
            parent_id=req.parent_id,
            outside_rth=req.outside_rth,
            trailing_percent=req.trailing_percent,
            trail_stop_price=req.trail_stop_price,
        )

    def place(self, client_id: int, req: OrderRequest) -> Accepted | Rejection:
        """Accept, modify or reject an order; what happens at once is in the events."""
        existing = self._by_client.get((client_id, req.order_id))
        if existing is not None:
            if existing.is_done:
                return Rejection(DUPLICATE_ORDER_ID, "Duplicate order id")
            return self._modify(existing, req)
        order = self.build(client_id, req)
        if isinstance(order, Rejection):
            return order
        self._use_id(client_id, req.order_id)
        order.perm_id = self._next_perm_id
        self._next_perm_id += 1
        self.orders[order.perm_id] = order
        self._by_client[(client_id, order.order_id)] = order
        events: list[Event] = []
        if not req.transmit:
            order.staged = True
            order.status = "PreSubmitted"
            return Accepted(order, [_change(order)])
        root = order
        while root.parent_id:
            parent = self._by_client.get((client_id, root.parent_id))
            if parent is None:
                break
            root = parent
        group = [root, *self._descendants(root)]
        waiting = [m for m in group if m is order or m.staged]
        for member in group:
            member.staged = False
        for member in waiting:
            if member.status in ("PreSubmitted", "Submitted") and not member.held:
                self._arm(member, events)
        if not any(isinstance(e, StatusChange) and e.order is order for e in events):
            events.insert(0, _change(order))
        return Accepted(order, events)

    def _descendants(self, order: SimOrder) -> list[SimOrder]:
        children = [
            o
            for o in self.orders.values()
            if o.client_id == order.client_id and o.parent_id == order.order_id
        ]
        return [d for c in children for d in (c, *self._descendants(c))]

    def _parent(self, order: SimOrder) -> SimOrder | None:
        if not order.parent_id:
            return None
        return self._by_client.get((order.client_id, order.parent_id))

    def _arm(self, order: SimOrder, events: list[Event]) -> None:
        """A transmitted order starts working, or waits for its parent or the open."""
        if order.is_done or order.staged:
            return
        parent = self._parent(order)
        now = self.clock()
        if order.tif == "DAY" and order.expires_at is None:
            order.expires_at = self.calendar.session_at_or_after(now).close
        if parent is not None and parent.status != "Filled":
            order.held, order.status = True, "PreSubmitted"
            events.append(_change(order))
            return
        order.held, order.status = False, "Submitted"
        events.append(_change(order))
        self._work(order, events)
        if order.tif == "IOC" and not order.is_done:
            self._cancel(order, events)

    def _modify(self, order: SimOrder, req: OrderRequest) -> Accepted | Rejection:
        rejection = self.validate(req)
        if rejection is not None:
            return rejection
        order.quantity = order.oca_size = req.quantity
        order.lmt_price = req.lmt_price
        order.aux_price = req.aux_price
        order.order_type = req.order_type
        order.trailing_percent = req.trailing_percent
        events: list[Event] = [_change(order)]
        if order.staged and req.transmit:
            return self._transmit(order, events)
        if order.working:
            self._work(order, events)
        return Accepted(order, events)

    def _transmit(self, order: SimOrder, events: list[Event]) -> Accepted:
        """A staged order re-sent with ``transmit=True`` transmits its group."""
        order.staged = False
        for member in (order, *self._descendants(order)):
            member.staged = False
            self._arm(member, events)
        return Accepted(order, events)

    # -- cancelling --------------------------------------------------------------------

    def cancel(self, client_id: int, order_id: int) -> list[Event] | Rejection:
        """Cancel a resting order of this client (and its children)."""
        order = self._by_client.get((client_id, order_id))
        if order is None or order.is_done:
            return Rejection(
                CANCEL_NOT_FOUND, f"OrderId {order_id} that needs to be cancelled is not found."
            )
        events: list[Event] = []
        self._cancel(order, events)
        return events

    def cancel_all(self) -> list[Event]:
        """Global cancel: every open order of every client, each once."""
        events: list[Event] = []
        for order in self.open_orders():
            if not order.is_done:
                self._cancel(order, events)
        return events

    def _cancel(self, order: SimOrder, events: list[Event]) -> None:
        if order.is_done:
            return
        order.status = "Cancelled"
        self._complete(order, "Cancelled")
        events.append(_change(order))
        for child in self._descendants(order):
            if not child.is_done:
                child.status = "Cancelled"
                self._complete(child, "Cancelled")
                events.append(_change(child))

    # -- views -------------------------------------------------------------------------

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

    # -- matching ----------------------------------------------------------------------

    def match_resting(self) -> list[Event]:
        """Expire, release, trigger and fill at current prices; the events in order."""
        events: list[Event] = []
        now = self.clock()
        for order in self.open_orders():
            if order.is_done:
                continue
            if order.expires_at is not None and now >= order.expires_at:
                self._cancel(order, events)
            elif order.working:
                self._work(order, events)
        return events

    def _market_open(self, order: SimOrder) -> bool:
        return order.outside_rth or is_open(self.calendar, self.clock())

    def _work(self, order: SimOrder, events: list[Event]) -> None:
        price = self._price(order.instrument.symbol)
        if not self._market_open(order):
            return
        if not order.triggered and not self._triggered(order, price):
            return
        if order.order_type in ("LMT", "STP LMT"):
            limit = order.lmt_price or 0.0
            if (order.action == "BUY" and price > limit) or (
                order.action == "SELL" and price < limit
            ):
                return
        if order.remaining > 0:
            shares = order.remaining
            if self.max_fill_shares:
                shares = min(shares, self.max_fill_shares)
            events.append(self._fill(order, shares, price))
            self._after_fill(order, shares, events)

    def _triggered(self, order: SimOrder, price: float) -> bool:
        buy = order.action == "BUY"
        if order.order_type in ("STP", "STP LMT"):
            stop = order.aux_price or 0.0
            order.triggered = price >= stop if buy else price <= stop
        elif order.order_type == "TRAIL":
            amount = order.aux_price or price * (order.trailing_percent or 0.0) / 100.0
            candidate = round(price + amount if buy else price - amount, 2)
            prior = candidate if order.trail_stop_price is None else order.trail_stop_price
            trail = min(prior, candidate) if buy else max(prior, candidate)
            order.trail_stop_price = trail
            order.triggered = price >= trail if buy else price <= trail
        else:
            order.triggered = True
        return order.triggered

    def _after_fill(self, order: SimOrder, shares: float, events: list[Event]) -> None:
        """After ``shares`` of ``order`` executed: its group reacts (OCA, bracket
        siblings) and, once it is filled, its held children start working."""
        if order.oca_group:
            group = [
                o
                for o in self.open_orders(order.client_id)
                if o.oca_group == order.oca_group and o is not order
            ]
            if order.oca_type in (OCA_REDUCE_BLOCK, OCA_REDUCE):
                self._reduce(order, shares, group, events)
            else:
                for other in group:
                    self._cancel(other, events)
        parent = self._parent(order)
        if parent is not None:
            siblings = [
                o
                for o in self.open_orders(order.client_id)
                if o.parent_id == parent.order_id and o is not order
            ]
            self._reduce(order, shares, siblings, events)
        if order.is_done:
            for child in self._descendants(order):
                if child.parent_id == order.order_id and child.held:
                    self._arm(child, events)

    def _reduce(
        self, order: SimOrder, shares: float, others: list[SimOrder], events: list[Event]
    ) -> None:
        """Reduce ``others`` by the share of their size that ``order`` just executed
        (by the same number of shares when the sizes are equal); one with nothing left,
        or any once ``order`` is filled, is cancelled."""
        fraction = shares / order.oca_size if order.oca_size else 1.0
        for other in others:
            if other.is_done:
                continue
            cut = other.oca_size * fraction
            other.quantity = max(other.filled, round(other.quantity - cut, 6))
            if order.is_done or other.remaining <= 1e-9:
                self._cancel(other, events)
            else:
                events.append(_change(other))

    def _fill(self, order: SimOrder, shares: float, price: float) -> Execution:
        commission = self.commissions.commission(shares)
        realized = self._book(order, shares, price, commission)
        prior = order.filled * order.avg_fill_price
        order.filled += shares
        order.avg_fill_price = round((prior + shares * price) / order.filled, 6)
        order.last_fill_price = price
        if order.remaining <= 0:
            order.status = "Filled"
            self._complete(order, "Filled")
        exec_id = f"{self._exec_prefix}.{self._next_exec:08x}.01.01"
        self._next_exec += 1
        execution = Execution(
            exec_id=exec_id,
            order=order,
            time=self.clock(),
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
        order.completed_time = self.clock().strftime("%Y%m%d %H:%M:%S UTC")
        order.completed_status = status
