"""The pre-trade risk rules, one by one: which order is refused, naming which limit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from support.bot_config import bot_environ
from tradingbot.config import ConfigError, load_config
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


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param(_inputs(last_price=None), id="no-quote"),
        pytest.param(_inputs(open_orders=3, orders_last_minute=5), id="counts-full"),
        pytest.param(_inputs(last_price=500.0), id="order-value"),
    ],
)
def test_a_market_order_that_closes_a_position_passes_every_limit(inputs: RiskInputs) -> None:
    """Closing a long of 150 with a market order passes without a quote, with the order
    counts full and at a value above the order limit: a flatten must always get out."""
    position = replace(inputs, position=150)
    verdict = check_order(OrderIntent(symbol="AAPL", side="SELL", quantity=150), position, LIMITS)
    assert verdict.allowed, verdict.reason


def test_an_order_that_flips_the_position_is_judged_like_any_other() -> None:
    """Selling 150 out of a long 100 opens a short of 50: the order value limit applies."""
    verdict = check_order(
        OrderIntent(symbol="AAPL", side="SELL", quantity=150),
        _inputs(position=100, last_price=50.0),
        LIMITS,
    )
    assert not verdict.allowed
    assert verdict.refused is not None
    assert verdict.refused.limit == "max_order_usd"


def test_a_reducing_limit_order_still_keeps_to_the_price_band() -> None:
    """A closing sell limit 40 % under the market is a fat finger: refused by the band."""
    verdict = check_order(
        OrderIntent(symbol="AAPL", side="SELL", quantity=10, limit_price=30.0),
        _inputs(position=10),
        LIMITS,
    )
    assert verdict.refused is not None
    assert verdict.refused.limit == "price_band_pct"


def test_the_limits_come_from_the_risk_settings(tmp_path: Path) -> None:
    """TRADINGBOT_RISK_* set the limits; unset ones keep their documented defaults."""
    config = load_config(
        environ={
            **bot_environ(tmp_path),
            "TRADINGBOT_RISK_MAX_ORDER_USD": "2500",
            "TRADINGBOT_RISK_WARN_AT": "0.9",
        }
    )
    limits = RiskLimits.from_config(config)
    assert (limits.max_order_usd, limits.warn_at) == (2500.0, 0.9)
    assert limits.daily_loss_limit_usd == 2000.0
    assert limits.max_orders_per_minute == 30


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RISK_MAX_ORDER_USD", "0"),
        ("RISK_PRICE_BAND_PCT", "500"),
        ("RISK_MAX_OPEN_ORDERS", "many"),
        ("RISK_WARN_AT", "1.5"),
        ("RISK_DAILY_LOSS_LIMIT_USD", "nan"),
    ],
)
def test_a_bad_risk_setting_is_refused_naming_it(tmp_path: Path, name: str, value: str) -> None:
    """An out-of-range or malformed limit is a configuration error naming the variable."""
    with pytest.raises(ConfigError, match=f"TRADINGBOT_{name}"):
        load_config(environ={**bot_environ(tmp_path), f"TRADINGBOT_{name}": value})
