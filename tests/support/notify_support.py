"""Helpers of the notifier tests: a hand-driven wall clock, settings, sample contexts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.smtp_server import SmtpServer
from tradingbot.events import TRADE as TRADE_TYPE
from tradingbot.events import Event
from tradingbot.notify import Notifier, NotifySettings, SmtpSettings, route
from tradingbot.storage import Database
from tradingbot.supervision import ManualClock

EPOCH = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)


class WallClock:
    """A UTC wall clock driven by a :class:`ManualClock`: time moves only by ``advance``."""

    def __init__(self) -> None:
        self.clock = ManualClock(0.0)

    def __call__(self) -> datetime:
        return EPOCH + timedelta(seconds=self.clock.monotonic())

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


def smtp_settings(server: SmtpServer, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "tls": "none",
        "timeout_s": 5.0,
    }
    values.update(overrides)
    return SmtpSettings(**values)


def notify_settings(tmp_path: Path, smtp: SmtpSettings | None, **overrides: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "smtp": smtp,
        "outbox_dir": tmp_path / "outbox",
        "sender": "Trading Bot <bot@example.com>",
        "recipients": ("ops@example.com",),
        "templates_dir": tmp_path / "templates",
        "retry_jitter_s": 0.0,
    }
    values.update(overrides)
    return NotifySettings(**values)


TRADE = {
    "symbol": "AAPL",
    "side": "BUY",
    "quantity": 10.0,
    "price": 189.2,
    "commission": 1.0,
    "currency": "USD",
    "realized_pnl": 0.0,
    "order_ref": "TB-42",
    "order_id": 7,
    "exec_id": "0001f4e8.65.01.01",
    "timestamp": "2025-01-06T14:30:00+00:00",
}


def alert(message: str = "actor_crashed broker: CrashDrill: drill") -> dict[str, Any]:
    return {
        "category": "SYSTEM",
        "severity": "ERROR",
        "message": message,
        "source": "broker",
        "timestamp": "2025-01-06T14:30:00+00:00",
        "details": {"event": "actor_crashed"},
    }


DAILY_SUMMARY = {
    "date": "2025-01-06",
    "account": "DU123456",
    "currency": "USD",
    "realized_pnl": 1234.5,
    "unrealized_pnl": -210.25,
    "equity": 101_024.25,
    "trades": [
        {
            "time": "2025-01-06T14:31:05+00:00",
            "side": "BUY",
            "quantity": 10,
            "symbol": "AAPL",
            "price": 189.2,
            "realized_pnl": 0.0,
        },
        {
            "time": "2025-01-06T19:55:00+00:00",
            "side": "SELL",
            "quantity": 10,
            "symbol": "AAPL",
            "price": 191.75,
            "realized_pnl": 25.5,
        },
    ],
    "positions": [
        {
            "symbol": "MSFT",
            "quantity": 5,
            "avg_cost": 410.1,
            "market_price": 405.0,
            "unrealized_pnl": -25.5,
        }
    ],
    "events": {"TRADE": 2, "RISK": 1},
}

RECOVERY_REPORT = {
    "reason": "a crash (kill -9)",
    "detected_at": "2025-01-06T15:02:00+00:00",
    "downtime_s": 3725,
    "outcome": "blocked until an operator accepts",
    "previous_run": {
        "pid": 4242,
        "host": "bot-1",
        "version": "0.1.0",
        "started_at": "2025-01-06T13:00:00+00:00",
        "last_heartbeat": "2025-01-06T14:00:00+00:00",
    },
    "discrepancies": [
        {
            "kind": "position_quantity",
            "symbol": "AAPL",
            "ours": 10,
            "broker": 0,
            "action": "blocked",
        },
        {
            "kind": "missing_fill",
            "symbol": "MSFT",
            "ours": None,
            "broker": "SELL 5 @ 405.00",
            "action": "imported",
        },
    ],
    "notes": ["position closed by hand while the bot was down?"],
}


def notifier_over_smtp(
    database: Database, server: SmtpServer, tmp_path: Path, wall: WallClock, **settings: Any
) -> Notifier:
    """A notifier on ``database`` mailing through ``server``, on the wall clock ``wall``."""
    return Notifier(
        database, notify_settings(tmp_path, smtp_settings(server), **settings), now=wall
    )


def notifier_to_folder(
    database: Database, tmp_path: Path, wall: WallClock, **settings: Any
) -> Notifier:
    """A notifier on ``database`` writing mails to the outbox folder, on ``wall``."""
    return Notifier(database, notify_settings(tmp_path, None, **settings), now=wall)


def trade_event(wall: WallClock, symbol: str) -> Event:
    """A TRADE event (BUY 1 ``symbol``) stamped now on ``wall``."""
    context = {**TRADE, "symbol": symbol}
    return Event(type=TRADE_TYPE, message=f"BUY 1 {symbol}", context=context, timestamp=wall())


def mailed_by_the_actor(database: Database, notifier: Notifier, event: Event) -> None:
    """What the running notifier does with a stored event: route it, enqueue it."""
    database.events.insert_many([event])
    wanted = route(event, notifier.settings)
    assert wanted is not None
    notifier.enqueue_notification(wanted)


def mailed_event_ids(notifier: Notifier) -> list[str | None]:
    """The event id of every outbox row, in the outbox's order."""
    return [row.event_id for row in notifier.repository.rows()]
