"""Helpers of the notifier tests: a hand-driven wall clock, settings, sample contexts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.smtp_server import SmtpServer
from tradingbot.notify import NotifySettings, SmtpSettings
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
