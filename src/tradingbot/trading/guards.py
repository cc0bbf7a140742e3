"""Live-account safety and the restart window for one process, built from the configuration.

The runtime only wires :class:`TradingGuards`: it calls :meth:`~TradingGuards.start`
before the tree starts (the gates are closed before any actor runs), adds
:meth:`~TradingGuards.actor` to the tree, hands every reconciliation result to
:meth:`~TradingGuards.on_reconciled`, and gives :meth:`~TradingGuards.start_gate` to the
strategy host. See ``docs/live-trading.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from tradingbot.broker.status import BrokerStatus
from tradingbot.config import Config
from tradingbot.events.recorder import EventRecorder
from tradingbot.health.checks import CheckFn
from tradingbot.recovery.reconciler import ReconcileResult
from tradingbot.supervision import SupervisedActor
from tradingbot.trading.live import LiveAccountGuard
from tradingbot.trading.restart_guard import (
    RestartWindowActor,
    RestartWindowGuard,
    restart_window_check,
)
from tradingbot.trading.restart_window import RestartPlan


class TradingGuards:
    """The ``live_account`` and ``restart_window`` order gates of one process."""

    def __init__(
        self,
        config: Config,
        status: BrokerStatus,
        recorder: Callable[[], EventRecorder | None],
    ) -> None:
        self._recorder = recorder
        self.live = LiveAccountGuard(
            status,
            broker_kind=config.broker,
            account=config.ib_account,
            opted_in=config.live_trading,
            recorder=recorder,
        )
        window = config.ib_restart_window
        self.restart = (
            None
            if window is None
            else RestartWindowGuard(
                RestartPlan(
                    window, lead_s=config.ib_restart_lead_s, grace_s=config.ib_restart_grace_s
                ),
                status,
            )
        )

    def start(self) -> None:
        """Close the live-account gate as the configuration says (before the tree starts)."""
        self.live.start()

    def started(self) -> None:
        """The tree runs: record what was said before events could be recorded."""
        self.live.started()

    def start_gate(self) -> str | None:
        """For the strategy host: ``None`` when strategies may start, else why not."""
        return self.live.start_gate()

    def actor(self) -> Callable[[], SupervisedActor] | None:
        """The restart window actor's factory (``None``: no window configured)."""
        guard = self.restart
        if guard is None:
            return None
        return lambda: RestartWindowActor(guard, self._recorder())

    def on_reconciled(self, result: ReconcileResult) -> None:
        """Each reconciliation result (reconciler thread)."""
        if self.restart is not None:
            self.restart.on_reconciled(result)

    def health_check(self) -> CheckFn | None:
        """``trading:restartWindow`` (``None``: no window configured)."""
        return None if self.restart is None else restart_window_check(self.restart)

    def broker_expected_down(self) -> str | None:
        """Why the broker may be down now without failing its health check, if it may."""
        return None if self.restart is None else self.restart.expected_down()
