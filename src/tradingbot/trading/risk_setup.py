"""Building the risk limits at start (so ``runtime.py`` only wires them).

:func:`risk_book` makes the process's :class:`~tradingbot.broker.RiskBook` from the
``TRADINGBOT_RISK_*`` settings and what the stored events say about today, so a restart
remembers: the orders placed in the last minute (ORDER events, ``action=place``), the
limits already reported as near today and whether the daily loss limit already tripped
today (RISK events). :func:`loss_limit_actor` is the ``risk`` actor's factory and
:func:`loss_limit_flatten` the flatten it calls after tripping the kill switch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

import structlog

from tradingbot.broker import BrokerStatus, FlattenResult, RiskBook, flatten
from tradingbot.broker.riskbook import NEW_YORK, RATE_WINDOW_S, trading_day
from tradingbot.config import Config
from tradingbot.events.model import ORDER, RISK
from tradingbot.events.recorder import EventRecorder
from tradingbot.storage import Database
from tradingbot.supervision import SupervisedActor
from tradingbot.tellable import Tellable
from tradingbot.trading.loss_limit import LOSS_LIMIT_BY, TRIPPED_KEY, LossLimitActor, OnLossLimit
from tradingbot.trading.risk import RiskLimits
from tradingbot.trading.switch import KillSwitch

log = structlog.get_logger(__name__)


def risk_book(
    database: Database, config: Config, account: str, now: datetime | None = None
) -> RiskBook:
    """The limits of ``config`` and today's memory of ``account`` from the stored events.

    A database error propagates: the start fails rather than trade with a memory that
    may be wrong (the kill switch's load fails the same way).
    """
    now = now or datetime.now(UTC)
    book = RiskBook(RiskLimits.from_config(config), account)
    day = trading_day(now)
    start_of_day = datetime.combine(day, time(), NEW_YORK)
    done: set[str] = set()
    for _, context, _ in database.events.contexts(RISK, start_of_day):
        if str(context.get("account", "")) != account:
            continue
        event = context.get("event")
        if event == "risk_nearing" and context.get("limit"):
            done.add(str(context["limit"]))
        elif event == "kill_switch_tripped" and context.get("by") == LOSS_LIMIT_BY:
            done.add(TRIPPED_KEY)
    book.seed_today(day, done)
    since = now - timedelta(seconds=RATE_WINDOW_S)
    book.seed_placed(
        (now - _aware(ts)).total_seconds()
        for _, context, ts in database.events.contexts(ORDER, since)
        if context.get("action") == "place" and str(context.get("account", "")) == account
    )
    return book


def loss_limit_actor(
    book: RiskBook,
    switch: KillSwitch,
    recorder: Callable[[], EventRecorder | None],
    on_loss_limit: OnLossLimit | None = None,
) -> Callable[[], SupervisedActor]:
    """The factory of the ``risk`` actor (a new incarnation per restart)."""
    return lambda: LossLimitActor(book, switch, recorder, on_loss_limit)


def loss_limit_flatten(
    broker: Callable[[], Tellable], status: BrokerStatus, timeout_s: float = 60.0
) -> OnLossLimit:
    """The flatten after the loss limit tripped (``by=risk``, the trip's reason).

    It raises when a position could not be closed (e.g. reconciliation has not passed, so
    closing orders are refused): the ``risk`` actor then records a RISK ERROR, mailed.
    """

    def run(reason: str) -> FlattenResult:
        result = flatten(broker(), status, by=LOSS_LIMIT_BY, reason=reason, timeout_s=timeout_s)
        left = [f"{c.symbol} {c.position:g}: {c.error}" for c in result.closing if c.error]
        log.warning("loss_limit_flattened", sent=len(result.sent), left_open=left)
        if left:
            raise RuntimeError(f"positions left open: {'; '.join(left)}")
        return result

    return run


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
