"""The reconciliation rules, on plain data; the average-cost rule against the simulator's books."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradingbot.broker.answers import Execution, GatewayOrder, Position
from tradingbot.gateway.brokerage import DEFAULT_ACCOUNT, Brokerage, OrderRequest
from tradingbot.gateway.prices import PriceModel
from tradingbot.recovery.reconcile import (
    Baseline,
    BrokerBooks,
    OurFill,
    OurOrder,
    boundary_of,
    expected_positions,
    our_orders,
    reconcile,
    snapshot_cutoff,
)

T0 = 1_800_000_000.0  # the baseline snapshot (epoch seconds)


def execution(exec_id: str, symbol: str, side: str, qty: float, price: float, t: float,
              ref: str = "TB-x") -> Execution:  # fmt: skip
    return Execution(
        exec_id=exec_id,
        order_ref=ref,
        account="DU1",
        symbol=symbol,
        side=side,
        quantity=qty,
        price=price,
        time=datetime.fromtimestamp(t, UTC),
        order_id=1,
        perm_id=1,
        commission=1.0,
        currency="USD",
        realized_pnl=0.0,
    )


def fill(exec_id: str, symbol: str, side: str, qty: float, price: float, t: float,
         *, reconciled: bool = False) -> OurFill:  # fmt: skip
    return OurFill(
        exec_id=exec_id,
        order_ref="TB-x",
        symbol=symbol,
        side=side,
        quantity=qty,
        price=price,
        commission=1.0,
        exec_time=t,
        reconciled=reconciled,
    )


def position(symbol: str, qty: float, cost: float) -> Position:
    return Position(account="DU1", symbol=symbol, con_id=1, quantity=qty, avg_cost=cost)


def order(ref: str, status: str = "Submitted", *, client_id: int = 1) -> GatewayOrder:
    return GatewayOrder(
        order_ref=ref,
        account="DU1",
        symbol="MSFT",
        side="BUY",
        quantity=2,
        order_type="LMT",
        limit_price=100.0,
        status=status,
        filled=0.0 if status != "Filled" else 2.0,
        order_id=9,
        perm_id=9,
        client_id=client_id,
    )


def books(
    positions: list[Position] = [],  # noqa: B006  # never mutated
    open_orders: list[GatewayOrder] = [],  # noqa: B006
    completed: list[GatewayOrder] = [],  # noqa: B006
    executions: list[Execution] = [],  # noqa: B006
) -> BrokerBooks:
    return BrokerBooks(
        positions=positions,
        open_orders=open_orders,
        completed_orders=completed,
        executions=executions,
    )


def kinds(outcome: object) -> list[str]:
    return sorted(d.kind for d in outcome.discrepancies)  # type: ignore[attr-defined]


BASE = Baseline(positions={"AAPL": (10.0, 150.1)}, cutoff=snapshot_cutoff(T0))


def test_our_fills_since_the_baseline_explain_the_broker_position() -> None:
    """Our own fills after the last clean snapshot account for the broker's position: nothing is
    reported."""
    fills = [
        fill("e1", "AAPL", "BUY", 5, 160.0, T0 + 10),
        fill("e0", "AAPL", "BUY", 3, 1, T0 - 3600),
    ]
    broker = books(
        positions=[position("AAPL", 15, (10 * 150.1 + 5 * 160 + 1) / 15)],
        executions=[execution("e1", "AAPL", "BUY", 5, 160.0, T0 + 10)],
    )
    outcome = reconcile(baseline=BASE, fills=fills, orders=[], broker=broker, cost_tolerance=0.01)
    assert outcome.discrepancies == ()
    assert outcome.clean
    assert outcome.expected_positions["AAPL"][0] == 15  # e0 is inside the baseline already


@pytest.mark.parametrize(
    ("broker_qty", "kind"),
    [(12.0, "position_mismatch"), (0.0, "position_missing")],
)
def test_a_changed_or_closed_position_blocks(broker_qty: float, kind: str) -> None:
    """A position the broker changed or closed while we were down is reported and blocks trading."""
    broker = books(positions=[position("AAPL", broker_qty, 150.1)] if broker_qty else [])
    outcome = reconcile(baseline=BASE, fills=[], orders=[], broker=broker, cost_tolerance=0.01)
    [found] = outcome.discrepancies
    assert (found.kind, found.ours, found.broker, found.blocking) == (kind, 10.0, broker_qty, True)
    assert not outcome.clean


def test_an_external_position_blocks() -> None:
    """A position in a symbol we never traded is reported and blocks trading."""
    broker = books(positions=[position("AAPL", 10, 150.1), position("TSLA", -4, 250.0)])
    outcome = reconcile(baseline=BASE, fills=[], orders=[], broker=broker, cost_tolerance=0.01)
    [found] = outcome.discrepancies
    assert (found.kind, found.symbol, found.broker) == ("external_position", "TSLA", -4)


def test_average_cost_within_the_tolerance_passes_beyond_it_is_reported() -> None:
    """An average cost off by less than the tolerance passes; beyond it, it is reported without
    blocking."""
    near = books(positions=[position("AAPL", 10, 150.1 * 1.009)])
    assert reconcile(baseline=BASE, fills=[], orders=[], broker=near, cost_tolerance=0.01).clean
    far = books(positions=[position("AAPL", 10, 150.1 * 1.05)])
    outcome = reconcile(baseline=BASE, fills=[], orders=[], broker=far, cost_tolerance=0.01)
    assert kinds(outcome) == ["cost_mismatch"]
    assert outcome.clean  # reported, not blocking: quantities match


def test_a_missing_fill_is_imported_and_explains_the_position() -> None:
    """A fill of our order that we never recorded is imported, and then the position agrees."""
    broker = books(
        positions=[position("AAPL", 13, 150.0)],
        executions=[execution("e2", "AAPL", "BUY", 3, 149.0, T0 + 5)],
    )
    outcome = reconcile(baseline=BASE, fills=[], orders=[], broker=broker, cost_tolerance=0.05)
    assert kinds(outcome) == ["missing_fill"]
    assert [e.exec_id for e in outcome.to_import] == ["e2"]
    assert outcome.clean


def test_a_fill_being_recorded_by_the_broker_is_counted_not_imported() -> None:
    """A fill the broker actor is recording right now is reported as a fill while down, not imported
    twice."""
    broker = books(
        positions=[position("AAPL", 13, 150.0)],
        executions=[execution("e2", "AAPL", "BUY", 3, 149.0, T0 + 5)],
    )
    outcome = reconcile(
        baseline=BASE, fills=[], in_flight={"e2"}, orders=[], broker=broker, cost_tolerance=0.05
    )
    assert kinds(outcome) == ["fill_while_down"]
    assert outcome.to_import == ()
    assert outcome.clean


def test_an_external_fill_is_imported_and_blocks() -> None:
    """A fill without our order ref (a hand trade) is imported and blocks trading until someone
    looks."""
    broker = books(
        positions=[position("AAPL", 4, 150.1)],
        executions=[execution("m1", "AAPL", "SELL", 6, 170.0, T0 + 5, ref="")],
    )
    outcome = reconcile(baseline=BASE, fills=[], orders=[], broker=broker, cost_tolerance=0.01)
    assert kinds(outcome) == ["external_fill"]
    assert [e.exec_id for e in outcome.to_import] == ["m1"]
    assert not outcome.clean  # positions agree once imported, but a hand trade needs a look


def test_recorded_fills_of_a_reconnect_are_reported_once_per_baseline() -> None:
    """Fills recorded during a reconnect are reported once; after the next clean baseline they are
    not reported again."""
    fills = [fill("e3", "AAPL", "SELL", 10, 151.0, T0 + 3, reconciled=True)]
    outcome = reconcile(baseline=BASE, fills=fills, orders=[], broker=books(), cost_tolerance=0.01)
    assert kinds(outcome) == ["fill_while_down"]
    moved = Baseline(positions={}, cutoff=snapshot_cutoff(T0 + 120))
    again = reconcile(baseline=moved, fills=fills, orders=[], broker=books(), cost_tolerance=0.01)
    assert again.discrepancies == ()


def test_executions_in_the_snapshot_second_are_decided_by_id() -> None:
    """Times have one-second resolution: an execution in the snapshot's last second is in
    the baseline if (and only if) the snapshot saw it."""
    seen = execution("b1", "AAPL", "BUY", 1, 150.0, T0)
    later = execution("b2", "AAPL", "BUY", 1, 150.0, T0)  # same second, after the snapshot
    baseline = Baseline(
        positions={"AAPL": (10.0, 150.1)},
        cutoff=snapshot_cutoff(T0 + 0.4),
        boundary=boundary_of([seen], T0 + 0.4),
    )
    assert baseline.boundary == {"b1"}
    broker = books(positions=[position("AAPL", 11, 150.1)], executions=[seen, later])
    outcome = reconcile(baseline=baseline, fills=[], orders=[], broker=broker, cost_tolerance=0.01)
    assert [e.exec_id for e in outcome.to_import] == ["b2"]
    assert outcome.clean


def test_orders_open_in_our_books() -> None:
    """Open and closed orders are told apart in our books and compared with the broker's: closed,
    orphaned, unknown and external orders are each named."""
    ours = our_orders(
        [
            ("TB-a", {"order_ref": "TB-a", "action": "place", "symbol": "MSFT", "side": "BUY",
                      "quantity": 2}),
            ("TB-b", {"order_ref": "TB-b", "action": "place", "symbol": "MSFT", "side": "BUY",
                      "quantity": 2}),
            ("TB-c", {"order_ref": "TB-c", "action": "place", "symbol": "MSFT", "side": "BUY",
                      "quantity": 2}),
            ("TB-d", {"order_ref": "TB-d", "symbol": "MSFT", "side": "BUY", "quantity": 2}),
            ("TB-d", {"order_ref": "TB-d", "action": "final", "status": "Filled"}),
            ("TB-a", {"order_ref": "TB-a", "action": "cancel"}),
        ]
    )  # fmt: skip
    assert {o.order_ref: o.open for o in ours} == {
        "TB-a": True,
        "TB-b": True,
        "TB-c": True,
        "TB-d": False,
    }
    broker = books(
        open_orders=[order("TB-a"), order("TB-e"), order("", client_id=0), order("manual-1")],
        completed=[order("TB-b", "Cancelled")],
    )
    outcome = reconcile(baseline=Baseline(), fills=[], orders=ours, broker=broker,
                        cost_tolerance=0.01)  # fmt: skip
    found = {(d.kind, d.order_ref) for d in outcome.discrepancies}
    assert found == {
        ("order_closed", "TB-b"),  # cancelled while we were away: recorded, not blocking
        ("orphaned_order", "TB-c"),  # open with us, unknown to the broker
        ("unknown_bot_order", "TB-e"),
        ("external_order", ""),
        ("external_order", "manual-1"),
    }
    assert [o.order_ref for o in outcome.closed_orders] == ["TB-b"]
    assert not outcome.clean


def test_every_discrepancy_serialises_with_its_blocking_flag() -> None:
    """Every discrepancy stored in the result says whether it blocks trading."""
    broker = books(positions=[position("TSLA", 1, 1.0)])
    outcome = reconcile(baseline=Baseline(), fills=[], orders=[], broker=broker,
                        cost_tolerance=0.01)  # fmt: skip
    [data] = [d.as_dict() for d in outcome.discrepancies]
    assert data["kind"] == "external_position"
    assert data["blocking"] is True
    assert data["broker"] == 1


TRADES = st.lists(
    st.tuples(
        st.sampled_from(["BUY", "SELL"]),
        st.integers(min_value=1, max_value=50),
        st.floats(min_value=10, max_value=500).map(lambda p: round(p, 2)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(trades=TRADES)
def test_expected_positions_follow_the_gateways_average_cost_rule(
    trades: list[tuple[str, int, float]],
) -> None:
    """Replaying the simulator's own executions gives its positions: quantity exactly,
    average cost (commissions included, flips through zero) to a cent."""
    brokerage = Brokerage(prices=PriceModel(0))
    for i, (side, qty, price) in enumerate(trades, start=1):
        brokerage.prices.set_price("AAPL", price)
        brokerage.place(
            1,
            OrderRequest(
                order_id=i, con_id=0, symbol="AAPL", sec_type="STK", exchange="SMART",
                currency="USD", action=side, quantity=qty, order_type="MKT", lmt_price=None,
                tif="DAY", account=DEFAULT_ACCOUNT, order_ref=f"TB-{i}",
            ),
        )  # fmt: skip
    replayed = expected_positions(
        {},
        [
            OurFill(
                exec_id=e.exec_id,
                order_ref=e.order.order_ref,
                symbol="AAPL",
                side=e.order.action,
                quantity=e.shares,
                price=e.price,
                commission=e.commission,
                exec_time=float(n),
            )
            for n, e in enumerate(brokerage.executions)
        ],
    )
    [held] = brokerage.account_positions(DEFAULT_ACCOUNT) or [None]
    if held is None or held.quantity == 0:
        assert replayed == {}
    else:
        qty, cost = replayed["AAPL"]
        assert qty == held.quantity
        assert cost == pytest.approx(held.avg_cost, abs=0.01)


def test_unusable_trade_contexts_are_skipped() -> None:
    """A trade event without the fields of a fill is skipped, and a missing time or commission takes
    a default."""
    assert OurFill.from_context({"symbol": "AAPL"}, T0) is None
    made = OurFill.from_context(
        {"exec_id": "x", "symbol": "AAPL", "side": "BUY", "quantity": 1, "price": 2.0}, T0
    )
    assert made is not None
    assert (made.exec_time, made.commission) == (T0, 0.0)


def test_our_order_with_a_bad_context_is_skipped() -> None:
    """An order event with an unusable quantity is skipped instead of stopping the
    reconciliation."""
    assert our_orders([("TB-z", {"order_ref": "TB-z", "symbol": "X", "side": "BUY",
                                 "quantity": "lots"})]) == []  # fmt: skip
    assert OurOrder(order_ref="a", symbol="X", side="BUY", quantity=1).open
