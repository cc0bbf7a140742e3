"""The jobs trading-bot ships: what runs when, and which actor does the work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta
from typing import Any

import structlog

from tradingbot.broker import BrokerStatus, account_values
from tradingbot.events.event_logger import PruneEvents
from tradingbot.notify import DAILY_SUMMARY as DAILY_SUMMARY_KIND
from tradingbot.notify.actor import SendNotification
from tradingbot.reports.daily import daily_report
from tradingbot.scheduler.calendar import TradingCalendar
from tradingbot.scheduler.jobs import EVERY_DAY, AfterClose, At, Job, Slot
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree

log = structlog.get_logger(__name__)

EVENT_RETENTION = "event_retention"
DAILY_SUMMARY = "daily_summary"


def _pruned(result: Any) -> str:
    return f"{result} events older than the retention deleted"


def event_retention() -> Job:
    """Every day at 03:15 ET the event logger deletes events past the retention."""

    def message(slot: Slot) -> PruneEvents:
        return PruneEvents()

    return Job(
        name=EVENT_RETENTION,
        rule=At(time(3, 15)),
        days=EVERY_DAY,
        actor="event_logger",
        message=message,
        grace=timedelta(hours=20),
        timeout_s=600.0,
        outcome=_pruned,
        description="delete events older than TRADINGBOT_EVENT_RETENTION_DAYS",
    )


def _queued(result: Any) -> str:
    if getattr(result, "duplicate", False):
        return "already in the outbox (sent once per trading date)"
    if getattr(result, "disabled", False):
        return "not sent: daily_summary is not in TRADINGBOT_NOTIFY_TYPES"
    record = getattr(result, "record", None)
    return "queued" if record is None else f"queued as {record.message_id}"


def daily_summary(
    database: Database,
    calendar: TradingCalendar,
    account: str = "",
    equity: Callable[[], float | None] = lambda: None,
) -> Job:
    """30 minutes after each session's close (16:30 ET, 13:30 on early closes) the day's
    summary goes to the durable outbox, once per trading date (its Message-ID is derived
    from the date, so even a second run cannot mail it twice). ``equity`` asks the broker
    for the account's net liquidation (``None`` when it cannot answer)."""

    def message(slot: Slot) -> SendNotification:
        report = daily_report(
            database, slot.trading_date, calendar, account=account, equity=equity()
        )
        return SendNotification(
            kind=DAILY_SUMMARY_KIND, context=report, token=f"daily_summary:{slot.key}:{account}"
        )

    return Job(
        name=DAILY_SUMMARY,
        rule=AfterClose(timedelta(minutes=30)),
        actor="notifier",
        message=message,
        grace=timedelta(hours=6),
        timeout_s=120.0,
        outcome=_queued,
        description="the daily summary e-mail (trades, P&L, win rate, positions, watchlist)",
    )


def net_liquidation(tree: SupervisionTree | None, status: BrokerStatus) -> float | None:
    """The account's net liquidation from the broker now (``None``: not available)."""
    if tree is None or "broker" not in tree.actor_ids():
        return None
    try:
        values = account_values(tree.handle("broker"), status, 10.0)
    except Exception as exc:  # noqa: BLE001 - the summary goes out without equity
        log.warning("net_liquidation_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None
    for value in values:
        if value.tag == "NetLiquidation":
            try:
                return float(value.value)
            except ValueError:
                return None
    return None


def shipped_jobs(
    database: Database,
    calendar: TradingCalendar,
    account: str = "",
    equity: Callable[[], float | None] = lambda: None,
) -> list[Job]:
    """Every job of a normal run, in display order."""
    return [daily_summary(database, calendar, account, equity), event_retention()]
