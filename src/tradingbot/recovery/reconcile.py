"""Reconciliation: compare our books (database) with the broker's, list every difference.

Pure functions over plain data, so every rule is tested without a gateway; the
reconciler actor (:mod:`tradingbot.recovery.reconciler`) gathers the inputs and acts on
the result.

*Our books* are rebuilt from the database: the *baseline* (the broker's positions at the
latest clean or accepted reconciliation) plus every fill recorded since (TRADE events),
and our orders from the ORDER events (placed, and whether they ended). The broker's
books are fresh answers to positions, open orders, completed orders and executions —
a failed query fails the whole reconciliation, it is never read as "flat".

Blocking discrepancies keep trading blocked until an operator accepts them; the others
are reported (once) and need nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tradingbot.broker.answers import Execution, GatewayOrder, Position
from tradingbot.broker.ids import is_bot_order
from tradingbot.broker.status import FINAL_STATUSES

QUANTITY_EPSILON = 1e-9

# kind -> (blocking, what it means)
KINDS: dict[str, tuple[bool, str]] = {
    "position_mismatch": (True, "the broker holds another quantity than our books"),
    "position_missing": (True, "our books hold a position the broker does not (closed by hand?)"),
    "external_position": (True, "the broker holds a position our books do not know"),
    "cost_mismatch": (False, "average cost differs beyond the tolerance"),
    "missing_fill": (False, "a fill of our order was not recorded; imported"),
    "fill_while_down": (False, "a fill of our order happened while the bot was away"),
    "external_fill": (True, "a fill of an order not placed by the bot; imported"),
    "order_closed": (False, "an order open in our books ended at the broker meanwhile"),
    "orphaned_order": (True, "an order open in our books is unknown to the broker"),
    "unknown_bot_order": (True, "a bot order open at the broker is not in our books"),
    "external_order": (True, "an order open at the broker was not placed by the bot"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Discrepancy:
    """One difference between our books and the broker's."""

    kind: str
    detail: str
    symbol: str = ""
    order_ref: str = ""
    exec_id: str = ""
    perm_id: int = 0
    ours: float | None = None
    broker: float | None = None

    @property
    def blocking(self) -> bool:
        return KINDS[self.kind][0]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["blocking"] = self.blocking
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class OurFill:
    """A fill as recorded in a TRADE event."""

    exec_id: str
    order_ref: str
    symbol: str
    side: str
    quantity: float
    price: float
    commission: float
    exec_time: float  # epoch seconds (the event's recording time when the gateway sent none)
    reconciled: bool = False

    @classmethod
    def from_context(cls, context: Mapping[str, Any], recorded_at: float) -> OurFill | None:
        """From a TRADE event's context; None for a context that is not a fill."""
        try:
            return cls(
                exec_id=str(context["exec_id"]),
                order_ref=str(context.get("order_ref") or ""),
                symbol=str(context["symbol"]),
                side=str(context["side"]),
                quantity=float(context["quantity"]),
                price=float(context["price"]),
                commission=float(context.get("commission") or 0.0),
                exec_time=float(context.get("exec_time") or recorded_at),
                reconciled=bool(context.get("reconciled")),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True, kw_only=True)
class OurOrder:
    """An order in our books: placed (ORDER event), possibly ended (``final_status``)."""

    order_ref: str
    symbol: str
    side: str
    quantity: float
    final_status: str | None = None

    @property
    def open(self) -> bool:
        return self.final_status is None


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerBooks:
    """The broker's answers, all from one reconciliation."""

    positions: Sequence[Position]
    open_orders: Sequence[GatewayOrder]
    completed_orders: Sequence[GatewayOrder]
    executions: Sequence[Execution]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What reconciliation found and what to do about it."""

    discrepancies: tuple[Discrepancy, ...]
    to_import: tuple[Execution, ...]  # fills the broker has and our database lacks
    closed_orders: tuple[GatewayOrder, ...]  # our open orders that ended at the broker
    broker_positions: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    expected_positions: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    carried_orders: frozenset[int] = frozenset()  # accepted open orders still open

    def acceptable_orders(self) -> frozenset[int]:
        """PermIds an acceptance of this outcome adds to the accepted open orders."""
        kinds = ("external_order", "unknown_bot_order")
        return self.carried_orders | {
            d.perm_id for d in self.discrepancies if d.kind in kinds and d.perm_id
        }

    @property
    def blocking(self) -> list[Discrepancy]:
        return [d for d in self.discrepancies if d.blocking]

    @property
    def clean(self) -> bool:
        return not self.blocking


def our_orders(order_contexts: Iterable[tuple[str | None, Mapping[str, Any]]]) -> list[OurOrder]:
    """Our orders from ORDER event contexts (oldest first): placements and their ends."""
    placed: dict[str, OurOrder] = {}
    final: dict[str, str] = {}
    for trade_id, context in order_contexts:
        ref = str(context.get("order_ref") or trade_id or "")
        if not ref:
            continue
        action = context.get("action") or "place"  # events before "action" existed
        if action == "place" and "symbol" in context:
            try:
                placed[ref] = OurOrder(
                    order_ref=ref,
                    symbol=str(context["symbol"]),
                    side=str(context["side"]),
                    quantity=float(context["quantity"]),
                )
            except (KeyError, TypeError, ValueError):
                continue
        elif action == "final":
            final[ref] = str(context.get("status") or "Filled")
    return [
        OurOrder(
            order_ref=o.order_ref,
            symbol=o.symbol,
            side=o.side,
            quantity=o.quantity,
            final_status=final.get(ref),
        )
        for ref, o in placed.items()
    ]


def apply_fill(
    book: dict[str, tuple[float, float]],
    symbol: str,
    side: str,
    quantity: float,
    price: float,
    commission: float,
) -> None:
    """Move ``book`` by one fill, with the gateway's average-cost rule (commission included
    in the cost of an opening fill; unchanged by a reducing fill; a flip opens at the price)."""
    qty, cost = book.get(symbol, (0.0, 0.0))
    signed = quantity if side == "BUY" else -quantity
    if abs(qty) < QUANTITY_EPSILON or (qty > 0) == (signed > 0):
        total = qty * cost + signed * price + (commission if signed > 0 else -commission)
        qty += signed
        cost = total / qty
    else:
        direction = 1.0 if qty > 0 else -1.0
        qty += signed
        if abs(qty) < QUANTITY_EPSILON:
            qty, cost = 0.0, 0.0
        elif (qty > 0) != (direction > 0):
            cost = price
    if abs(qty) < QUANTITY_EPSILON:
        book.pop(symbol, None)
    else:
        book[symbol] = (qty, cost)


def expected_positions(
    baseline: Mapping[str, tuple[float, float]], fills: Iterable[OurFill]
) -> dict[str, tuple[float, float]]:
    """The baseline's positions moved by ``fills`` in execution order."""
    book = {s: p for s, p in baseline.items() if abs(p[0]) >= QUANTITY_EPSILON}
    for fill in sorted(fills, key=lambda f: (f.exec_time, f.exec_id)):
        apply_fill(book, fill.symbol, fill.side, fill.quantity, fill.price, fill.commission)
    return book


@dataclass(frozen=True, slots=True, kw_only=True)
class Baseline:
    """The broker's positions at the latest good reconciliation, and which executions they
    already contain: every one executed before ``cutoff`` (epoch seconds), and those in
    ``boundary`` (executions reported by the gateway have one-second resolution, so the
    last seconds before the snapshot are decided by execution id, not by time)."""

    positions: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    cutoff: float = 0.0
    boundary: frozenset[str] = frozenset()
    accepted_orders: frozenset[int] = frozenset()

    def includes(self, exec_id: str, exec_time: float | None) -> bool:
        """Whether the baseline's positions already contain this execution."""
        if exec_id in self.boundary:
            return True
        return exec_time is not None and exec_time < self.cutoff


CLOCK_MARGIN_S = 60  # execution times are the gateway's clock, truncated to seconds


def snapshot_cutoff(as_of: float) -> float:
    """The cutoff of a snapshot taken at ``as_of`` (our clock): executions reported with a
    time before it surely happened before the snapshot, even if the gateway's clock is off
    by up to :data:`CLOCK_MARGIN_S` (the executions after it are decided by id)."""
    return float(math.floor(as_of) - CLOCK_MARGIN_S)


def boundary_of(executions: Iterable[Execution], as_of: float) -> frozenset[str]:
    """Executions of a stable snapshot at ``as_of`` that its cutoff alone does not cover."""
    cutoff = snapshot_cutoff(as_of)
    return frozenset(
        e.exec_id for e in executions if e.time is None or e.time.timestamp() >= cutoff
    )


def reconcile(
    *,
    baseline: Baseline,
    fills: Sequence[OurFill],
    in_flight: Collection[str] = (),
    orders: Sequence[OurOrder],
    broker: BrokerBooks,
    cost_tolerance: float,
) -> Outcome:
    """Compare our books with the broker's.

    ``fills`` are every fill recorded in our database (the baseline decides which are
    new); ``in_flight`` the execution ids the broker actor has taken but may not have
    stored yet (counted, reported, not imported twice). Executions the broker reports
    that the baseline does not contain and our database lacks are imported, and count
    towards the expected positions.
    """
    found: list[Discrepancy] = []
    recorded = {f.exec_id for f in fills}
    after = [f for f in fills if not baseline.includes(f.exec_id, f.exec_time)]
    broker_new = [
        e
        for e in broker.executions
        if e.exec_id not in recorded
        and not baseline.includes(e.exec_id, None if e.time is None else e.time.timestamp())
    ]
    to_import = [e for e in broker_new if e.exec_id not in in_flight]
    for e in broker_new:
        ours = is_bot_order(e.order_ref)
        kind = "fill_while_down" if e.exec_id in in_flight else "missing_fill"
        found.append(
            Discrepancy(
                kind=kind if ours else "external_fill",
                detail=f"{e.side} {e.quantity:g} {e.symbol} @ {e.price:g}"
                + ("" if ours else f" (order {e.order_ref or e.order_id}, not the bot's)"),
                symbol=e.symbol,
                order_ref=e.order_ref,
                exec_id=e.exec_id,
                broker=e.quantity,
            )
        )
    for fill in after:
        if fill.reconciled:
            found.append(
                Discrepancy(
                    kind="fill_while_down",
                    detail=f"{fill.side} {fill.quantity:g} {fill.symbol} @ {fill.price:g}",
                    symbol=fill.symbol,
                    order_ref=fill.order_ref,
                    exec_id=fill.exec_id,
                    ours=fill.quantity,
                )
            )
    moves = [*after, *(fill_of(e) for e in broker_new)]
    expected = expected_positions(baseline.positions, moves)
    actual = {
        p.symbol: (p.quantity, p.avg_cost)
        for p in broker.positions
        if abs(p.quantity) >= QUANTITY_EPSILON
    }
    found.extend(_compare_positions(expected, actual, cost_tolerance))
    order_findings, closed = _compare_orders(orders, broker, baseline.accepted_orders)
    found.extend(order_findings)
    return Outcome(
        discrepancies=tuple(found),
        to_import=tuple(to_import),
        closed_orders=tuple(closed),
        broker_positions=actual,
        expected_positions=expected,
        carried_orders=frozenset(
            o.perm_id for o in broker.open_orders if o.perm_id in baseline.accepted_orders
        ),
    )


def fill_of(e: Execution) -> OurFill:
    """A broker execution as one of our fills (for the expected positions)."""
    return OurFill(
        exec_id=e.exec_id,
        order_ref=e.order_ref,
        symbol=e.symbol,
        side=e.side,
        quantity=e.quantity,
        price=e.price,
        commission=e.commission or 0.0,
        exec_time=e.time.timestamp() if e.time is not None else math.inf,
    )


def _compare_positions(
    expected: Mapping[str, tuple[float, float]],
    actual: Mapping[str, tuple[float, float]],
    cost_tolerance: float,
) -> list[Discrepancy]:
    found = []
    for symbol in sorted(set(expected) | set(actual)):
        ours_qty, ours_cost = expected.get(symbol, (0.0, 0.0))
        broker_qty, broker_cost = actual.get(symbol, (0.0, 0.0))
        if abs(ours_qty - broker_qty) >= QUANTITY_EPSILON:
            if abs(ours_qty) < QUANTITY_EPSILON:
                kind = "external_position"
            elif abs(broker_qty) < QUANTITY_EPSILON:
                kind = "position_missing"
            else:
                kind = "position_mismatch"
            found.append(
                Discrepancy(
                    kind=kind,
                    detail=f"{symbol}: ours {ours_qty:g}, broker {broker_qty:g}",
                    symbol=symbol,
                    ours=ours_qty,
                    broker=broker_qty,
                )
            )
        elif abs(ours_qty) >= QUANTITY_EPSILON and ours_cost:
            relative = abs(broker_cost - ours_cost) / abs(ours_cost)
            if relative > cost_tolerance:
                found.append(
                    Discrepancy(
                        kind="cost_mismatch",
                        detail=f"{symbol}: average cost ours {ours_cost:.4f}, "
                        f"broker {broker_cost:.4f}",
                        symbol=symbol,
                        ours=ours_cost,
                        broker=broker_cost,
                    )
                )
    return found


def _compare_orders(
    orders: Sequence[OurOrder], broker: BrokerBooks, accepted: frozenset[int]
) -> tuple[list[Discrepancy], list[GatewayOrder]]:
    found: list[Discrepancy] = []
    closed: list[GatewayOrder] = []
    open_at_broker = {o.order_ref: o for o in broker.open_orders if o.order_ref}
    completed = {o.order_ref: o for o in broker.completed_orders if o.order_ref}
    ours = {o.order_ref: o for o in orders}
    for order in orders:
        if not order.open or order.order_ref in open_at_broker:
            continue
        done = completed.get(order.order_ref)
        if done is not None and done.status in FINAL_STATUSES:
            closed.append(done)
            found.append(
                Discrepancy(
                    kind="order_closed",
                    detail=f"{order.side} {order.quantity:g} {order.symbol}: {done.status}"
                    " at the broker while the bot was away",
                    symbol=order.symbol,
                    order_ref=order.order_ref,
                    ours=order.quantity,
                    broker=done.filled,
                )
            )
        else:
            found.append(
                Discrepancy(
                    kind="orphaned_order",
                    detail=f"{order.side} {order.quantity:g} {order.symbol}: open in our books,"
                    " neither open nor completed at the broker",
                    symbol=order.symbol,
                    order_ref=order.order_ref,
                    ours=order.quantity,
                )
            )
    for theirs in broker.open_orders:
        ref = theirs.order_ref
        if ref in ours or theirs.perm_id in accepted:
            continue
        kind = "unknown_bot_order" if is_bot_order(ref) else "external_order"
        found.append(
            Discrepancy(
                kind=kind,
                detail=f"{theirs.side} {theirs.quantity:g} {theirs.symbol} {theirs.order_type}"
                f" ({theirs.status}, client {theirs.client_id}, order id {theirs.order_id})",
                symbol=theirs.symbol,
                order_ref=ref,
                perm_id=theirs.perm_id,
                broker=theirs.quantity,
            )
        )
    return found, closed
