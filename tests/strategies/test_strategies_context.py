"""Order identities of strategies: deterministic, short enough, and recognisable later."""

from __future__ import annotations

from tradingbot.broker.ids import order_ref_for, strategy_of
from tradingbot.broker.messages import CLIENT_ORDER_ID
from tradingbot.strategies.context import client_order_id, owns

SIGNAL = "7d0f7a4e-5b7e-4c39-9d0a-3f1f0c9b2a11"


def test_the_same_decision_always_gets_the_same_order_id() -> None:
    """Strategy, signal and key decide the id; a different key or signal gives another."""
    first = client_order_id("ma_cross", SIGNAL, "BUY:AAPL:10:None")
    assert first == client_order_id("ma_cross", SIGNAL, "BUY:AAPL:10:None")
    assert first != client_order_id("ma_cross", SIGNAL, "BUY:AAPL:11:None")
    assert first != client_order_id("ma_cross", SIGNAL.replace("7", "8"), "BUY:AAPL:10:None")
    assert first != client_order_id("other", SIGNAL, "BUY:AAPL:10:None")


def test_the_longest_strategy_id_still_makes_a_valid_client_order_id() -> None:
    """A 23-character strategy id fits the broker's 40-character idempotency key."""
    key = client_order_id("a" * 23, SIGNAL, "x")
    assert CLIENT_ORDER_ID.fullmatch(key)


def test_an_order_reference_names_its_strategy_and_nothing_else_does() -> None:
    """A strategy's order is recognised by its reference (after a restart too); others are not."""
    ref = order_ref_for(client_order_id("ma_cross", SIGNAL, "x"))
    assert strategy_of(ref) == "ma_cross"
    assert owns("ma_cross", ref)
    assert not owns("ma", ref)
    for other in ("TB-k1", "TB-flatten.2026-12-06.DU1.AAPL", "TB-ma_cross.zz", "manual-1"):
        assert strategy_of(other) is None
