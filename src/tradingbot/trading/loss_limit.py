"""The daily loss limit: watch the account's P&L, trip the kill switch, flatten.

The broker subscribes the account's P&L after every sync and tells each report
(:class:`~tradingbot.broker.AccountPnL`) to this actor (``risk`` in the tree). When the
day's P&L (the broker's daily P&L: today's realized plus the day's change of unrealized)
is at or below ``-daily_loss_limit_usd``, the actor:

1. trips the kill switch (``by="risk"``): new orders stop at once, and the switch records
   a durable RISK CRITICAL event that the notifier mails whatever the alert severity;
2. then calls ``on_loss_limit(reason)`` (the flatten, wired by the runtime) on a thread
   of its own, so the actor keeps answering while positions are closed. A failure of it
   is a RISK ERROR event (mailed).

Both happen **once per day** (the New York day), not on every tick, and a restart
remembers it (the trip's RISK event is read back at start, see
:func:`tradingbot.trading.risk_setup.risk_book`): an operator who resumes after a trip
is not overruled by the next tick of the same day. A day's loss at or above ``warn_at``
of the limit is a RISK WARNING, once per day.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

from tradingbot.broker import AccountPnL, RiskBook
from tradingbot.broker.pretrade import RISK_SOURCE
from tradingbot.events.model import RISK, Severity
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.supervision import SupervisedActor
from tradingbot.trading.risk import LimitUse, check_daily_loss
from tradingbot.trading.switch import KillSwitch

log = structlog.get_logger(__name__)

LOSS_LIMIT = "daily_loss_limit_usd"
TRIPPED_KEY = "daily_loss_limit_tripped"  # RiskBook key: the limit tripped today
LOSS_LIMIT_BY = "risk"  # who the kill switch says tripped it

OnLossLimit = Callable[[str], object]  # the flatten: called with the trip's reason


class LossLimitActor(SupervisedActor):
    """Trips the kill switch at the daily loss limit (see the module docstring)."""

    def __init__(
        self,
        book: RiskBook,
        switch: KillSwitch,
        recorder: Callable[[], EventRecorder | None],
        on_loss_limit: OnLossLimit | None = None,
    ) -> None:
        super().__init__()
        self._book = book
        self._switch = switch
        self._recorder = recorder
        self._on_loss_limit = on_loss_limit
        self._flattening: threading.Thread | None = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case AccountPnL():
                return self._check(message)
            case _:
                return super().on_receive(message)

    def _check(self, pnl: AccountPnL) -> None:
        use, crossed = check_daily_loss(pnl.daily, self._book.limits)
        self.publish_details(
            account=pnl.account,
            daily_pnl=pnl.daily,
            loss_limit_usd=use.maximum,
            limit_used=round(use.share, 4),
        )
        if crossed:
            if self._book.first_today(TRIPPED_KEY):
                self._trip(pnl, use)
            return
        if use.share >= self._book.limits.warn_at and self._book.first_today(LOSS_LIMIT):
            self._record(
                Severity.WARNING,
                f"risk limit {LOSS_LIMIT} nearing: day's loss {use.value:,.2f} of "
                f"{use.maximum:,.2f} ({use.share:.0%})",
                {"event": "risk_nearing", **self._context(pnl, use), "day": _day(self._book)},
            )

    def _trip(self, pnl: AccountPnL, use: LimitUse) -> None:
        reason = (
            f"daily loss limit: daily P&L {pnl.daily:,.2f} at or below "
            f"-{use.maximum:,.2f} (account {pnl.account or '-'})"
        )
        log.critical("daily_loss_limit_crossed", daily_pnl=pnl.daily, limit=use.maximum)
        result = self._switch.trip(by=LOSS_LIMIT_BY, reason=reason)
        log.info("kill_switch_tripped", changed=result.changed, warning=result.warning)
        if self._on_loss_limit is None:
            log.warning("loss_limit_no_flatten", why="no flatten wired: positions stay open")
            return
        self._flattening = threading.Thread(
            target=self._flatten, args=(reason, pnl, use), name="loss-limit-flatten", daemon=True
        )
        self._flattening.start()

    def _flatten(self, reason: str, pnl: AccountPnL, use: LimitUse) -> None:
        """On its own thread: the flatten may take as long as the gateway needs."""
        assert self._on_loss_limit is not None
        try:
            self._on_loss_limit(reason)
        except Exception as exc:  # noqa: BLE001 - a RISK ERROR event: the operator must act
            log.error("loss_limit_flatten_failed", error=repr(exc))
            self._record(
                Severity.ERROR,
                f"flatten after the daily loss limit failed: {type(exc).__name__}: {exc}",
                {
                    "event": "loss_limit_flatten_failed",
                    **self._context(pnl, use),
                    "error": repr(exc),
                },
            )

    def _context(self, pnl: AccountPnL, use: LimitUse) -> dict[str, Any]:
        return {
            "limit": use.limit,
            "value": round(use.value, 2),
            "maximum": use.maximum,
            "share": round(use.share, 4),
            "account": self._book.account,
            "daily_pnl": pnl.daily,
            "unrealized_pnl": pnl.unrealized,
            "realized_pnl": pnl.realized,
        }

    def _record(self, severity: Severity, text: str, context: dict[str, Any]) -> None:
        recorder = self._recorder()
        if recorder is None:
            return
        try:
            recorder.record_durable(
                RISK, text, severity=severity, source=RISK_SOURCE, context=context
            )
        except EventNotDurable as exc:
            log.error("risk_event_not_stored", error=str(exc), event=context.get("event"))


def _day(book: RiskBook) -> str:
    return book.today().isoformat()
