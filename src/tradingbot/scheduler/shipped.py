"""The jobs trading-bot ships: what runs when, and which actor does the work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import structlog

from tradingbot.broker import (
    Bar,
    BrokerNotReady,
    BrokerStatus,
    account_values,
    historical_bars,
    portfolio,
)
from tradingbot.events.event_logger import PruneEvents
from tradingbot.events.recorder import EventRecorder
from tradingbot.history import FetchBars, update_bars
from tradingbot.notify import DAILY_SUMMARY as DAILY_SUMMARY_KIND
from tradingbot.notify.actor import SendNotification
from tradingbot.reports.account import BrokerAccount, record_mark
from tradingbot.reports.daily import daily_report
from tradingbot.scheduler.calendar import TradingCalendar
from tradingbot.scheduler.jobs import EVERY_DAY, AfterClose, At, Job, Slot
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree

log = structlog.get_logger(__name__)

BAR_UPDATE_TIMEOUT_S = 1800.0  # a claim older than this (+ 60 s) may be taken as abandoned
EVENT_RETENTION = "event_retention"
DAILY_SUMMARY = "daily_summary"
BAR_UPDATE = "bar_update"


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


def daily_summary(
    database: Database,
    calendar: TradingCalendar,
    account: str = "",
    broker: Callable[[], BrokerAccount] | None = None,
    ready: Callable[[], str | None] = lambda: None,
    now: Callable[[], datetime] = _utcnow,
) -> Job:
    """30 minutes after each session's close (16:30 ET, 13:30 on early closes) the day's
    summary goes to the durable outbox, once per trading date (its Message-ID is derived
    from the date, so even a second run cannot mail it twice). ``broker`` asks the broker
    for the account's positions with marks, equity and P&L, stored as the date's equity
    mark (:func:`~tradingbot.reports.account.record_mark`; ``None``: no broker). ``ready``
    holds a due summary back (at most 15 minutes) until the books are complete: after a
    restart, the first reconciliation imports the fills made while the bot was down.
    ``now`` is the scheduler's clock."""

    def message(slot: Slot) -> SendNotification:
        day = slot.trading_date
        note = record_mark(database, calendar, account, day, broker, now())
        report = daily_report(database, day, calendar, account=account, broker_note=note)
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
        ready=ready,
    )


def after_reconciliation(reconciliations: list[Any], enabled: bool) -> Callable[[], str | None]:
    """A ``ready`` check: wait until this process reconciled once (when it reconciles)."""

    def ready() -> str | None:
        if not enabled or reconciliations:
            return None
        return "waiting for the first reconciliation (it imports fills made while down)"

    return ready


def broker_account(
    tree: Callable[[], SupervisionTree | None], status: BrokerStatus
) -> Callable[[], BrokerAccount]:
    """Asks the tree's broker actor for the account now: the portfolio with the
    gateway's marks (a fresh request), then the account values it refreshed, and the
    latest P&L report. Raises (``BrokerNotReady``, ``TimeoutError``, ...) when the broker
    cannot answer; the summary then says so."""

    def fetch() -> BrokerAccount:
        current = tree()
        if current is None or "broker" not in current.actor_ids():
            raise BrokerNotReady("account refused: no broker actor in the tree")
        handle = current.handle("broker")
        items = portfolio(handle, status, 20.0)
        values = account_values(handle, status, 10.0)
        return BrokerAccount(portfolio=items, values=values, pnl=status.pnl())

    return fetch


def bar_update(
    database: Database,
    calendar: TradingCalendar,
    symbols: Callable[[], Sequence[str]] | Sequence[str],
    fetch: FetchBars,
    recorder: Callable[[], EventRecorder | None] = lambda: None,
) -> Job:
    """At 16:05 ET on trading sessions, the session's one-minute and daily bars of every
    watchlist symbol go into the ``bars`` table (:mod:`tradingbot.history.update`).

    Runs on the job's own thread (it waits on the gateway, symbol after symbol).
    ``symbols`` is the watchlist (a list, or a callable read at each run); ``fetch`` asks
    the broker (:func:`broker_bars`); ``recorder`` gives the event recorder for the
    per-symbol WARNING events (``None``: logged only).
    """

    def work(slot: Slot) -> Any:
        watchlist = list(symbols() if callable(symbols) else symbols)
        return update_bars(
            database,
            fetch,
            watchlist,
            slot.trading_date,
            calendar,
            recorder=recorder(),
            budget_s=BAR_UPDATE_TIMEOUT_S - 120.0,  # the last requests' timeouts fit
        )

    return Job(
        name=BAR_UPDATE,
        rule=At(time(16, 5)),
        work=work,
        grace=timedelta(hours=6),
        timeout_s=BAR_UPDATE_TIMEOUT_S,
        description="the session's 1-minute and daily bars of the watchlist into the bars table",
    )


def broker_bars(tree: Callable[[], SupervisionTree | None], status: BrokerStatus) -> FetchBars:
    """``historical_bars`` through the tree's broker actor (BrokerNotReady without one)."""

    def fetch(
        symbol: str, *, bar_size: str, duration: str, end: datetime, use_rth: bool
    ) -> list[Bar]:
        current = tree()
        if current is None or "broker" not in current.actor_ids():
            raise BrokerNotReady("bars refused: no broker actor in the tree")
        return historical_bars(
            current.handle("broker"),
            status,
            symbol,
            bar_size=bar_size,
            duration=duration,
            end=end,
            use_rth=use_rth,
        )

    return fetch


def shipped_jobs(
    database: Database,
    calendar: TradingCalendar,
    account: str = "",
    broker: Callable[[], BrokerAccount] | None = None,
    summary_ready: Callable[[], str | None] = lambda: None,
    bars: Job | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> list[Job]:
    """Every job of a normal run, in display order (``bars``: the :func:`bar_update` job,
    when the runtime has a watchlist and a broker; ``now``: the scheduler's clock)."""
    summary = daily_summary(database, calendar, account, broker, summary_ready, now)
    jobs = [summary, event_retention()]
    return jobs if bars is None else [bars, *jobs]
