"""What reconciliation reads from our own events: fills, orders, and what an acceptance adds.

Found by the mutation check: the rule tests built these records by hand, so a misread
field of a stored TRADE or ORDER event went unnoticed there.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tradingbot.broker.queries import Execution, GatewayOrder, Position
from tradingbot.recovery.reconcile import (
    Baseline,
    BrokerBooks,
    Discrepancy,
    OurFill,
    OurOrder,
    Outcome,
    boundary_of,
    expected_positions,
    our_orders,
    reconcile,
    snapshot_cutoff,
)

FILL = {
    "exec_id": "0001f4e8.65.01.01",
    "order_ref": "TB-7",
    "symbol": "AAPL",
    "side": "BUY",
    "quantity": 10,
    "price": "189.2",
    "commission": 1.25,
    "exec_time": 1_700_000_000.5,
    "reconciled": True,
}


def test_a_fill_is_read_from_its_trade_event_field_by_field() -> None:
    """Every field of a stored fill reaches reconciliation as recorded."""
    assert OurFill.from_context(FILL, recorded_at=1.0) == OurFill(
        exec_id="0001f4e8.65.01.01",
        order_ref="TB-7",
        symbol="AAPL",
        side="BUY",
        quantity=10.0,
        price=189.2,
        commission=1.25,
        exec_time=1_700_000_000.5,
        reconciled=True,
    )


def test_a_fill_without_optional_fields_gets_their_defaults() -> None:
    """No order_ref, commission, exec_time or reconciled flag: empty, zero, the recording
    time, and not reconciled."""
    bare = {k: v for k, v in FILL.items() if k in ("exec_id", "symbol", "side", "quantity")}
    fill = OurFill.from_context({**bare, "price": 10}, recorded_at=42.0)
    assert fill is not None
    assert (fill.order_ref, fill.commission, fill.exec_time, fill.reconciled) == (
        "",
        0.0,
        42.0,
        False,
    )


def test_a_context_that_is_not_a_fill_is_skipped() -> None:
    """A TRADE event without a quantity, or with a price that is not a number, is no fill."""
    assert OurFill.from_context({k: v for k, v in FILL.items() if k != "quantity"}, 1.0) is None
    assert OurFill.from_context({**FILL, "price": "n/a"}, 1.0) is None


def test_orders_are_read_from_their_placements_and_ends() -> None:
    """A placement opens an order (ref from the context, else the trade id); a final event
    ends it with its status (Filled when none was recorded); other actions change nothing;
    a placement without a symbol or with a bad quantity is skipped, and the rest still read."""
    contexts = [
        (
            None,
            {
                "order_ref": "TB-1",
                "action": "place",
                "symbol": "AAPL",
                "side": "BUY",
                "quantity": 5,
            },
        ),
        ("TB-2", {"symbol": "MSFT", "side": "SELL", "quantity": "3"}),  # before "action"
        (
            None,
            {
                "order_ref": "TB-3",
                "action": "place",
                "symbol": "NVDA",
                "side": "BUY",
                "quantity": "lots",
            },
        ),
        (None, {"symbol": "AMD", "side": "BUY", "quantity": 1}),  # no reference at all
        (None, {"order_ref": "TB-4", "action": "place", "side": "BUY", "quantity": 1}),
        (None, {"order_ref": "TB-1", "action": "cancel"}),
        (None, {"order_ref": "TB-1", "action": "final", "status": "Cancelled", "symbol": "AAPL"}),
        ("TB-2", {"action": "final"}),
        (
            None,
            {
                "order_ref": "TB-5",
                "action": "place",
                "symbol": "TSLA",
                "side": "SELL",
                "quantity": 2,
            },
        ),
    ]
    assert our_orders(contexts) == [
        OurOrder(
            order_ref="TB-1", symbol="AAPL", side="BUY", quantity=5.0, final_status="Cancelled"
        ),
        OurOrder(order_ref="TB-2", symbol="MSFT", side="SELL", quantity=3.0, final_status="Filled"),
        OurOrder(order_ref="TB-5", symbol="TSLA", side="SELL", quantity=2.0),
    ]


def test_accepting_an_outcome_adds_only_the_broker_orders_it_reported() -> None:
    """An acceptance carries the accepted orders forward and adds the permIds of external and
    unknown bot orders; other discrepancies and ones without a permId add nothing."""
    outcome = Outcome(
        discrepancies=(
            Discrepancy(kind="external_order", detail="manual order", perm_id=11),
            Discrepancy(kind="unknown_bot_order", detail="lost order", perm_id=12),
            Discrepancy(kind="external_order", detail="no perm id"),
            Discrepancy(kind="orphaned_order", detail="ours only", perm_id=13),
        ),
        to_import=(),
        closed_orders=(),
        carried_orders=frozenset({5}),
    )
    assert outcome.acceptable_orders() == frozenset({5, 11, 12})


T0 = 1_800_000_000.0


def _execution(exec_id: str, symbol: str, side: str, qty: float, ref: str, t: float) -> Execution:
    return Execution(
        exec_id=exec_id,
        order_ref=ref,
        account="DU1",
        symbol=symbol,
        side=side,
        quantity=qty,
        price=99.5,
        time=datetime.fromtimestamp(t, UTC),
        order_id=4,
        perm_id=40,
        commission=1.0,
        currency="USD",
        realized_pnl=0.0,
    )


def _order(
    ref: str, perm_id: int, *, status: str = "Submitted", client_id: int = 1
) -> GatewayOrder:
    return GatewayOrder(
        order_ref=ref,
        account="DU1",
        symbol="MSFT",
        side="BUY",
        quantity=2,
        order_type="LMT",
        limit_price=100.0,
        status=status,
        filled=2.0 if status == "Filled" else 0.0,
        order_id=perm_id // 10,
        perm_id=perm_id,
        client_id=client_id,
    )


def _position(symbol: str, qty: float, cost: float) -> Position:
    return Position(account="DU1", symbol=symbol, con_id=1, quantity=qty, avg_cost=cost)


def test_the_report_names_every_discrepancy_with_its_figures() -> None:
    """Each kind of difference reaches the operator's report with its symbol, order, execution,
    permId and both quantities or costs; an acceptance would carry the broker's orders."""
    baseline = Baseline(
        positions={"AAPL": (10.0, 150.0), "IBM": (4.0, 100.0), "GE": (5.0, 100.0)},
        cutoff=snapshot_cutoff(T0),
        accepted_orders=frozenset({31}),
    )
    broker = BrokerBooks(
        positions=[
            _position("AAPL", 13, 150.0),
            _position("GE", 5, 110.0),
            _position("TSLA", 1, 200.0),
        ],
        open_orders=[
            _order("TB-unknown", 21),
            _order("", 22, client_id=0),
            _order("TB-carried", 31),
        ],
        completed_orders=[_order("TB-done", 23, status="Filled")],
        executions=[
            _execution("ext-1", "NVDA", "SELL", 3, "", T0 + 20),
            _execution("mine-1", "AAPL", "BUY", 1, "TB-9", T0 + 30),
            _execution("wip-1", "AAPL", "BUY", 1, "TB-8", T0 + 31),
        ],
    )
    fill = OurFill.from_context({**FILL, "exec_time": T0 + 5, "quantity": 2}, recorded_at=T0)
    assert fill is not None
    outcome = reconcile(
        baseline=baseline,
        fills=[fill],
        in_flight={"wip-1"},
        orders=[
            OurOrder(order_ref="TB-done", symbol="MSFT", side="BUY", quantity=2.0),
            OurOrder(order_ref="TB-gone", symbol="AMD", side="SELL", quantity=7.0),
        ],
        broker=broker,
        cost_tolerance=0.001,
    )
    found = [
        (d.kind, d.detail, d.symbol, d.order_ref, d.exec_id, d.perm_id, d.ours, d.broker)
        for d in outcome.discrepancies
    ]
    print(found)
    assert found == EXPECTED
    assert outcome.carried_orders == frozenset({31})
    assert outcome.acceptable_orders() == frozenset({21, 22, 31})
    assert dict(outcome.broker_positions) == {
        "AAPL": (13, 150.0),
        "GE": (5, 110.0),
        "TSLA": (1, 200.0),
    }
    assert [e.exec_id for e in outcome.to_import] == ["ext-1", "mine-1"]
    # The imported sale of 3 NVDA at 99.5 with its 1.0 commission: a short at 99.5 + 1/3.
    assert outcome.expected_positions["NVDA"] == (-3.0, pytest.approx(99.5 + 1 / 3))


EXPECTED: list[object] = [
    (
        "external_fill",
        "SELL 3 NVDA @ 99.5 (order 4, not the bot's)",
        "NVDA",
        "",
        "ext-1",
        0,
        None,
        3,
    ),
    ("missing_fill", "BUY 1 AAPL @ 99.5", "AAPL", "TB-9", "mine-1", 0, None, 1),
    ("fill_while_down", "BUY 1 AAPL @ 99.5", "AAPL", "TB-8", "wip-1", 0, None, 1),
    ("fill_while_down", "BUY 2 AAPL @ 189.2", "AAPL", "TB-7", "0001f4e8.65.01.01", 0, 2.0, None),
    ("position_mismatch", "AAPL: ours 14, broker 13", "AAPL", "", "", 0, 14.0, 13),
    (
        "cost_mismatch",
        "GE: average cost ours 100.0000, broker 110.0000",
        "GE",
        "",
        "",
        0,
        100.0,
        110.0,
    ),
    ("position_missing", "IBM: ours 4, broker 0", "IBM", "", "", 0, 4.0, 0.0),
    ("position_missing", "NVDA: ours -3, broker 0", "NVDA", "", "", 0, -3.0, 0.0),
    ("external_position", "TSLA: ours 0, broker 1", "TSLA", "", "", 0, 0.0, 1),
    (
        "order_closed",
        "BUY 2 MSFT: Filled at the broker while the bot was away",
        "MSFT",
        "TB-done",
        "",
        0,
        2.0,
        2.0,
    ),
    (
        "orphaned_order",
        "SELL 7 AMD: open in our books, neither open nor completed at the broker",
        "AMD",
        "TB-gone",
        "",
        0,
        7.0,
        None,
    ),
    (
        "unknown_bot_order",
        "BUY 2 MSFT LMT (Submitted, client 1, order id 2)",
        "MSFT",
        "TB-unknown",
        "",
        21,
        None,
        2,
    ),
    (
        "external_order",
        "BUY 2 MSFT LMT (Submitted, client 0, order id 2)",
        "MSFT",
        "",
        "",
        22,
        None,
        2,
    ),
]


def test_the_snapshot_boundary_holds_executions_at_and_after_its_cutoff_and_untimed_ones() -> None:
    """Executions from the cutoff second on, and any without a time, are decided by id."""
    cutoff = snapshot_cutoff(T0)
    at_cutoff = _execution("at", "AAPL", "BUY", 1, "TB-1", cutoff)
    before = _execution("before", "AAPL", "BUY", 1, "TB-1", cutoff - 1)
    untimed = replace(_execution("untimed", "AAPL", "BUY", 1, "TB-1", cutoff), time=None)
    assert boundary_of([at_cutoff, before, untimed], T0) == frozenset({"at", "untimed"})


def test_executions_the_baseline_holds_are_neither_imported_nor_counted_again() -> None:
    """A broker execution from before the cutoff, and our own fill the boundary lists by id,
    are inside the baseline: nothing to import, no position moved twice."""
    cutoff = snapshot_cutoff(T0)
    baseline = Baseline(positions={"AAPL": (2.0, 100.0)}, cutoff=cutoff, boundary=frozenset({"b"}))
    ours = OurFill.from_context({**FILL, "exec_id": "b", "exec_time": cutoff + 30}, T0)
    assert ours is not None
    outcome = reconcile(
        baseline=baseline,
        fills=[ours],
        orders=[],
        broker=BrokerBooks(
            positions=[_position("AAPL", 2, 100.0)],
            open_orders=[],
            completed_orders=[],
            executions=[_execution("old", "AAPL", "BUY", 1, "TB-1", cutoff - 3600)],
        ),
        cost_tolerance=0.01,
    )
    assert outcome.to_import == ()
    assert outcome.discrepancies == ()
    assert dict(outcome.expected_positions) == {"AAPL": (2.0, 100.0)}


def test_a_baseline_position_bought_at_no_cost_is_still_expected() -> None:
    """A position with a zero average cost (shares received for free) stays in our books."""
    assert expected_positions({"GIFT": (5.0, 0.0), "FLAT": (0.0, 12.0)}, []) == {"GIFT": (5.0, 0.0)}


def test_imported_fills_take_their_place_in_time_among_ours() -> None:
    """A fill we lack and a later fill of ours that flips the position: applied in time
    order, the short opens at our fill's price (in the other order it would carry the
    commission of a short opened first)."""
    cutoff = snapshot_cutoff(T0)
    ours = OurFill.from_context(
        {**FILL, "exec_id": "ours", "symbol": "XYZ", "side": "SELL", "quantity": 15,
         "price": 110.0, "exec_time": cutoff + 120},
        T0,
    )  # fmt: skip
    assert ours is not None
    outcome = reconcile(
        baseline=Baseline(cutoff=cutoff),
        fills=[ours],
        orders=[],
        broker=BrokerBooks(
            positions=[_position("XYZ", -5, 110.0)],
            open_orders=[],
            completed_orders=[],
            executions=[_execution("lacked", "XYZ", "BUY", 10, "TB-1", cutoff + 60)],
        ),
        cost_tolerance=0.0001,
    )
    assert outcome.expected_positions["XYZ"] == (-5.0, pytest.approx(110.0))
    assert outcome.clean
