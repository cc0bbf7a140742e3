"""The risk book at start: limits from the settings, today's memory from stored events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.bot_config import bot_config
from tradingbot.config import Config
from tradingbot.events import ORDER, RISK, Event
from tradingbot.storage import Database
from tradingbot.trading.loss_limit import TRIPPED_KEY
from tradingbot.trading.risk_setup import risk_book


def _config(tmp_path: Path) -> Config:
    return bot_config(tmp_path, RISK_MAX_ORDERS_PER_MINUTE="7")


def _event(type_: str, age: timedelta, now: datetime, **context: Any) -> Event:
    return Event(type=type_, message="m", context=context, timestamp=now - age)


def test_a_restart_remembers_todays_warnings_trip_and_recent_orders(
    database: Database, tmp_path: Path
) -> None:
    """Today's nearing warnings and loss-limit trip of this account are not repeated after
    a restart, and its orders of the last minute still count; other accounts' events,
    yesterday's and older orders do not."""
    now = datetime.now(UTC)
    second = timedelta(seconds=1)
    database.events.insert_many(
        [
            _event(
                RISK, 5 * second, now, event="risk_nearing", limit="max_order_usd", account="DU1"
            ),
            _event(
                RISK, 5 * second, now, event="risk_nearing", limit="max_open_orders", account="DU2"
            ),
            _event(
                RISK,
                timedelta(days=2),
                now,
                event="risk_nearing",
                limit="max_position_usd",
                account="DU1",
            ),
            _event(RISK, 3 * second, now, event="kill_switch_tripped", by="risk", account="DU1"),
            _event(ORDER, 20 * second, now, action="place", account="DU1"),
            _event(ORDER, 25 * second, now, action="place", account="DU2"),
            _event(ORDER, 10 * second, now, action="final", account="DU1"),
            _event(ORDER, 90 * second, now, action="place", account="DU1"),
        ]
    )
    book = risk_book(database, _config(tmp_path), "DU1", now=now)
    assert book.limits.max_orders_per_minute == 7
    assert book.account == "DU1"
    assert not book.first_today("max_order_usd")
    assert not book.first_today(TRIPPED_KEY)
    assert book.first_today("max_open_orders")
    assert book.first_today("max_position_usd")
    assert book.orders_last_minute() == 1


def test_a_first_start_remembers_nothing(database: Database, tmp_path: Path) -> None:
    """On an empty database every limit may warn and no order counts yet."""
    book = risk_book(database, _config(tmp_path), "")
    assert book.orders_last_minute() == 0
    assert book.first_today(TRIPPED_KEY)
