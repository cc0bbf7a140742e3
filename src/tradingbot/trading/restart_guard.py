"""The IB Gateway's daily restart window, applied: the order gate, the events, the alert.

:class:`RestartWindowGuard` outlives actor incarnations (the runtime builds it once):
it owns the phase machine (:mod:`tradingbot.trading.restart_window`), closes and opens
the broker's ``restart_window`` order gate, and hears every reconciliation result.
:class:`RestartWindowActor` is the supervised actor that moves it on the wall clock,
records the SYSTEM events of each phase (a CRITICAL one, mailed as an alert, when the
broker is not synced and reconciled ``TRADINGBOT_IB_RESTART_GRACE_S`` after the window)
and, when the connection survived the window, asks the reconciler for a run.

This gate is not the operator's kill switch: it never changes the stored pause state.
Trading resumes after the window only when the broker is synced **and** a
reconciliation that started after that sync (and after the pause began) has passed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from tradingbot.broker.status import RESTART_WINDOW_GATE, BrokerStatus, ConnectionState
from tradingbot.events.model import SYSTEM, Severity
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.health.checks import CheckFn
from tradingbot.health.model import PASS, WARN, Check
from tradingbot.recovery.reconciler import ReconcileResult, RunNow
from tradingbot.storage.reconciliations import ACCEPTED, CLEAN
from tradingbot.supervision import SupervisedActor
from tradingbot.trading.restart_window import Phase, RestartPlan, RestartTracker, WindowTimes

log = structlog.get_logger(__name__)

RESTART_SOURCE = "restart_window"
RECONCILE_REQUEST_AFTER_S = 5.0  # synced this long without a reconciliation: ask for one


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RestartWindowGuard:
    """The restart window's state, shared by the actor, health and the reconciler's
    callback; thread-safe."""

    def __init__(
        self,
        plan: RestartPlan,
        status: BrokerStatus,
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._plan = plan
        self._status = status
        self._now = now
        self._lock = threading.Lock()
        self._tracker = RestartTracker(plan)
        self._passed: datetime | None = None  # start of the latest passed reconciliation
        self._requested_for: datetime | None = None  # the sync a reconciliation was asked for

    @property
    def window(self) -> str:
        return str(self._plan.window)

    def on_reconciled(self, result: ReconcileResult) -> None:
        """A reconciliation finished (reconciler thread): remember when a passed one began."""
        record = result.record
        if record.status not in (CLEAN, ACCEPTED):
            return
        started = record.started_at if result.trigger != "accept" else self._now()
        with self._lock:
            if self._passed is None or started > self._passed:
                self._passed = started

    def advance(self) -> list[tuple[Phase, WindowTimes]]:
        """Move the phase machine to now and apply the gate; the phases entered."""
        with self._lock:
            entered = self._tracker.advance(self._now(), self._ready)
            phase, times = self._tracker.phase, self._tracker.times
            assert times is not None
            if phase.gated:
                self._status.block_trading(self._reason(times), RESTART_WINDOW_GATE)
            else:
                self._status.allow_trading(RESTART_WINDOW_GATE)
            return entered

    def wants_reconciliation(self) -> bool:
        """After the window: synced for a while, no passed reconciliation since, none asked
        for this connection yet (the reconciler runs by itself after a reconnect)."""
        with self._lock:
            if self._tracker.phase not in (Phase.RESUMING, Phase.OVERDUE):
                return False
            since = self._synced_since()
            times = self._tracker.times
            if since is None or times is None or self._ready(times):
                return False
            if self._now() - since < timedelta(seconds=RECONCILE_REQUEST_AFTER_S):
                return False
            if self._requested_for == since:
                return False
            self._requested_for = since
            return True

    def state(self) -> tuple[Phase, WindowTimes | None]:
        with self._lock:
            return self._tracker.phase, self._tracker.times

    def expected_down(self) -> str | None:
        """Why a broker that is not synced is expected now (inside the window or its
        grace), else ``None``: the broker health check passes meanwhile."""
        phase, _ = self.state()
        if phase in (Phase.WINDOW, Phase.RESUMING):
            return f"expected during the IB Gateway daily restart window {self.window}"
        return None

    def resumed(self, times: WindowTimes) -> str:
        """Why trading resumed after the window ``times``."""
        return (
            f"the broker is synced and a reconciliation passed after the window "
            f"{self._local(times.start)} to {self._local(times.end)}"
        )

    def describe(self, phase: Phase, times: WindowTimes) -> str:
        """The phase in one line, in the window's local time."""
        w, local = self.window, self._local
        match phase:
            case Phase.OPEN:
                return f"next restart window {w}: orders pause at {local(times.pause_at)}"
            case Phase.PAUSED | Phase.WINDOW:
                return f"{self._reason(times)} (window {local(times.start)} to {local(times.end)})"
            case Phase.RESUMING:
                return (
                    f"restart window {w} ended; waiting for the broker to sync and a "
                    f"reconciliation to pass (deadline {local(times.deadline)})"
                )
        return (
            f"the broker is not synced and reconciled {self._plan.grace.total_seconds():g} s "
            f"after the restart window {w} ended ({self._broker_text()}); new orders stay paused"
        )

    # -- internals (under the lock) --------------------------------------------------------

    def _ready(self, times: WindowTimes) -> bool:
        since = self._synced_since()
        if since is None or self._passed is None:
            return False
        return self._passed >= max(since, times.pause_at)

    def _synced_since(self) -> datetime | None:
        """When the broker became synced, on the wall clock (``None``: it is not)."""
        view = self._status.view()
        if view.state != ConnectionState.SYNCED:
            return None
        return self._now() - timedelta(seconds=max(0.0, self._status.now() - view.since))

    def _reason(self, times: WindowTimes) -> str:
        return (
            f"paused for the IB Gateway daily restart window {self.window} (from "
            f"{self._local(times.pause_at)} until the broker is synced and reconciled after "
            f"{self._local(times.end)})"
        )

    def _local(self, instant: datetime) -> str:
        return instant.astimezone(self._plan.window.zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    def _broker_text(self) -> str:
        view = self._status.view()
        recon = "no reconciliation passed" if self._passed is None else "no reconciliation since"
        return f"broker {view.state.value}, {recon}"


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: read the clock."""


_EVENTS: dict[Phase, tuple[Severity, str]] = {
    Phase.PAUSED: (Severity.WARNING, "trading paused before the IB Gateway daily restart"),
    Phase.WINDOW: (Severity.WARNING, "trading paused: IB Gateway daily restart window"),
    Phase.RESUMING: (Severity.INFO, "IB Gateway daily restart window ended"),
    Phase.OVERDUE: (Severity.CRITICAL, "IB Gateway not back after its daily restart"),
    Phase.OPEN: (Severity.WARNING, "trading resumed after the IB Gateway daily restart"),
}


class RestartWindowActor(SupervisedActor):
    """Moves :class:`RestartWindowGuard` on every ``tick_s`` and says what changed."""

    def __init__(
        self,
        guard: RestartWindowGuard,
        recorder: EventRecorder | None,
        *,
        tick_s: float = 0.25,
        reconciler: str = "reconciler",
    ) -> None:
        super().__init__()
        self._guard = guard
        self._recorder = recorder.bind(source=RESTART_SOURCE) if recorder is not None else None
        self._tick_s = tick_s
        self._reconciler = reconciler

    def setup(self) -> None:
        self._tick()
        self._publish()
        self.every(self._tick_s, _Tick())

    def on_receive(self, message: Any) -> Any:
        match message:
            case _Tick():
                return self._tick()
            case _:
                return super().on_receive(message)

    def _tick(self) -> None:
        previous, _ = self._guard.state()
        entered = self._guard.advance()
        for phase, times in entered:
            if not (phase is Phase.WINDOW and previous is Phase.PAUSED):
                self._record(phase, times)  # the window after the lead changes nothing
            previous = phase
        if self._guard.wants_reconciliation():
            log.info("restart_window_reconcile_requested", window=self._guard.window)
            self.peer(self._reconciler).tell(RunNow())
        if entered:
            self._publish()

    def _publish(self) -> None:
        phase, current = self._guard.state()
        self.publish_details(
            phase=phase.value,
            window=self._guard.window,
            times=None if current is None else current.as_dict(),
        )

    def _record(self, phase: Phase, times: WindowTimes) -> None:
        severity, title = _EVENTS[phase]
        guard = self._guard
        text = guard.resumed(times) if phase is Phase.OPEN else guard.describe(phase, times)
        message = f"{title}: {text}"
        if self._recorder is None:
            log.info("restart_window_phase", phase=phase.value, message=message)
            return
        try:
            self._recorder.record_durable(
                SYSTEM,
                message,
                severity=severity,
                context={"event": f"restart_window_{phase.value}", **times.as_dict()},
            )
        except EventNotDurable as exc:
            log.error("restart_window_event_not_stored", error=str(exc), message=message)


def restart_window_check(guard: RestartWindowGuard) -> CheckFn:
    """``trading:restartWindow``: ``pass`` with the phase (also inside the window: it is
    expected), ``warn`` once the broker missed the deadline after it."""

    def check() -> list[Check]:
        phase, times = guard.state()
        output = guard.window if times is None else guard.describe(phase, times)
        return [
            Check(
                component="trading",
                measurement="restartWindow",
                status=WARN if phase is Phase.OVERDUE else PASS,
                observed_value=phase.value,
                output=output,
            )
        ]

    return check
