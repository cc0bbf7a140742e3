"""What the pre-trade checks remember: orders in the last minute, once-a-day warnings."""

from __future__ import annotations

from datetime import date

from tradingbot.broker import RiskBook
from tradingbot.trading.risk import RiskLimits

LIMITS = RiskLimits(
    max_position_shares=100,
    max_position_usd=10_000,
    max_order_usd=5_000,
    max_open_orders=3,
    max_orders_per_minute=5,
    price_band_pct=5,
    daily_loss_limit_usd=1_000,
)


class Clocks:
    """A monotonic clock and a trading day the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.day = date(2026, 12, 7)


def _book(clocks: Clocks) -> RiskBook:
    return RiskBook(LIMITS, "DU1", clock=lambda: clocks.now, today=lambda: clocks.day)


def test_orders_count_for_sixty_seconds() -> None:
    """An order counts towards the per-minute limit for 60 s, then no longer."""
    clocks = Clocks()
    book = _book(clocks)
    book.placed()
    clocks.now += 30
    book.placed()
    assert book.orders_last_minute() == 2
    clocks.now += 30.5
    assert book.orders_last_minute() == 1
    clocks.now += 30
    assert book.orders_last_minute() == 0


def test_orders_of_an_earlier_run_are_counted_by_their_age() -> None:
    """Orders placed 10 s and 50 s before a restart count; one 70 s old does not."""
    clocks = Clocks()
    book = _book(clocks)
    book.seed_placed([10.0, 50.0, 70.0])
    assert book.orders_last_minute() == 2
    clocks.now += 15
    assert book.orders_last_minute() == 1


def test_a_warning_is_first_once_a_day_and_again_the_next_day() -> None:
    """A limit is reported near once per day; the next day it may be again."""
    clocks = Clocks()
    book = _book(clocks)
    assert book.first_today("max_order_usd")
    assert not book.first_today("max_order_usd")
    assert book.first_today("max_open_orders")
    clocks.day = date(2026, 12, 8)
    assert book.first_today("max_order_usd")


def test_what_an_earlier_run_did_today_is_not_done_again() -> None:
    """A warning seeded from today's stored events is not repeated; yesterday's is."""
    clocks = Clocks()
    book = _book(clocks)
    book.seed_today(clocks.day, ["max_order_usd"])
    book.seed_today(date(2026, 12, 6), ["max_open_orders"])
    assert not book.first_today("max_order_usd")
    assert book.first_today("max_open_orders")
