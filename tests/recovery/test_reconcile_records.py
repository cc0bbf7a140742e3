"""What reconciliation reads from our own events: fills, orders, and what an acceptance adds.

Found by the mutation check: the rule tests built these records by hand, so a misread
field of a stored TRADE or ORDER event went unnoticed there.
"""

from __future__ import annotations

from tradingbot.recovery.reconcile import Discrepancy, OurFill, OurOrder, Outcome, our_orders

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
