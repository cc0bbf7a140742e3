"""The pre-trade risk rules, one by one: which order is refused, naming which limit."""

from __future__ import annotations

import pytest

from tradingbot.trading.risk import (
    OrderIntent,
    RiskInputs,
    RiskLimits,
    check_daily_loss,
    check_order,
)

LIMITS = RiskLimits(
    max_position_shares=100,
    max_position_usd=10_000,
    max_order_usd=5_000,
    max_open_orders=3,
    max_orders_per_minute=5,
    price_band_pct=5,
    daily_loss_limit_usd=1_000,
    warn_at=0.8,
)
CALM = RiskInputs(position=0, last_price=50.0, open_orders=0, orders_last_minute=0)


def _inputs(**changes: float | None) -> RiskInputs:
    values = {
        "position": CALM.position,
        "last_price": CALM.last_price,
        "open_orders": CALM.open_orders,
        "orders_last_minute": CALM.orders_last_minute,
    }
    values.update(changes)
    return RiskInputs(**values)  # type: ignore[arg-type]


def test_a_small_order_passes_and_nears_nothing() -> None:
    """A 10-share order at 50 with nothing open uses no limit past 80 %."""
    verdict = check_order(OrderIntent(symbol="AAPL", side="BUY", quantity=10), CALM, LIMITS)
    assert verdict.allowed
    assert verdict.nearing == ()


@pytest.mark.parametrize(
    ("order", "inputs", "limit", "phrase"),
    [
        pytest.param(
            OrderIntent(symbol="AAPL", side="BUY", quantity=1, limit_price=60.0),
            CALM,
            "price_band_pct",
            "20.0% from the last quote",
            id="fat-finger-limit",
        ),
        pytest.param(
            OrderIntent(symbol="AAPL", side="BUY", quantity=1),
            _inputs(last_price=None),
            "price_band",
            "no quote for AAPL",
            id="market-without-quote",
        ),
        pytest.param(
            OrderIntent(symbol="AAPL", side="BUY", quantity=101),
            CALM,
            "max_order_usd",
            "order value 5,050.00",
            id="order-value",
        ),
        pytest.param(
            OrderIntent(symbol="AAPL", side="BUY", quantity=20),
            _inputs(position=90),
            "max_position_shares",
            "position 110 AAPL",
            id="shares",
        ),
        pytest.param(
            OrderIntent(symbol="AAPL", side="SELL", quantity=20),
            _inputs(position=-90),
            "max_position_shares",
            "position -110",
            id="short-shares",
        ),
        pytest.param(
            OrderIntent(symbol="AAPL", side="BUY", quantity=10),
            _inputs(position=90, last_price=120.0),
            "max_position_usd",
            "position value 12,000",
            id="position-value",
        ),
        pytest.param(
            OrderIntent(symbol="AAPL", side="BUY", quantity=1),
            _inputs(open_orders=3),
            "max_open_orders",
            "3 orders open",
            id="open-orders",
        ),
        pytest.param(
            OrderIntent(symbol="AAPL", side="BUY", quantity=1),
            _inputs(orders_last_minute=5),
            "max_orders_per_minute",
            "5 orders in the last",
            id="rate",
        ),
    ],
)
def test_each_limit_refuses_the_order_that_breaks_it(
    order: OrderIntent, inputs: RiskInputs, limit: str, phrase: str
) -> None:
    """The refusal names the limit and says why in words an operator reads."""
    verdict = check_order(order, inputs, LIMITS)
    assert not verdict.allowed
    assert verdict.refused is not None
    assert verdict.refused.limit == limit
    assert phrase in (verdict.reason or "")


def test_an_order_that_reduces_a_position_is_never_refused_by_a_position_limit() -> None:
    """Selling out of an oversized position passes: risk limits must not trap the exit."""
    verdict = check_order(
        OrderIntent(symbol="AAPL", side="SELL", quantity=50), _inputs(position=150), LIMITS
    )
    assert verdict.allowed


def test_limits_at_eighty_percent_are_reported_as_nearing() -> None:
    """An order that brings the position to 85 of 100 shares reports that limit as near."""
    verdict = check_order(
        OrderIntent(symbol="AAPL", side="BUY", quantity=5), _inputs(position=80), LIMITS
    )
    assert verdict.allowed
    assert [use.limit for use in verdict.nearing] == ["max_position_shares"]


def test_a_limit_price_inside_the_band_passes() -> None:
    """A limit 4 % from the last quote is inside a 5 % band."""
    verdict = check_order(
        OrderIntent(symbol="AAPL", side="BUY", quantity=1, limit_price=52.0), CALM, LIMITS
    )
    assert verdict.allowed


@pytest.mark.parametrize(
    ("pnl", "tripped"), [(500.0, False), (-999.99, False), (-1000.0, True), (-5000.0, True)]
)
def test_the_daily_loss_limit_trips_at_the_limit(pnl: float, tripped: bool) -> None:
    """A day's loss at or above the limit trips; a profit or a smaller loss does not."""
    use, crossed = check_daily_loss(pnl, LIMITS)
    assert crossed is tripped
    assert use.value == max(0.0, -pnl)
