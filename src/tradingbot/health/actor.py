"""The health actor: runs every component check on an interval and caches the report.

Each check runs on its own daemon thread with a deadline: a check that does not finish
in time is reported as ``fail`` ("did not finish within"), and is not started again
until its stuck run returns, so a hung dependency costs one thread, never a hung
endpoint or a pile of threads. Slow, informational checks (database statistics) run
every ``slow_every`` refreshes and are reused in between; one that does not finish in
time is ``warn``, as their own errors are. A check that raises — even ``SystemExit``,
which belongs to the check's thread, not to the actor — is ``fail`` naming the error.
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from tradingbot.health.checks import CheckFn, NamedCheck
from tradingbot.health.model import FAIL, WARN, Check, HealthReport
from tradingbot.health.state import HealthState
from tradingbot.supervision import SupervisedActor

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RefreshHealth:
    """Command: run the checks now; answers with the new report."""


class HealthActor(SupervisedActor):
    """Refreshes :class:`HealthState` every ``interval_s``."""

    def __init__(
        self,
        checks: list[NamedCheck],
        state: HealthState,
        *,
        interval_s: float,
        timeout_s: float,
        slow_every: int = 12,
    ) -> None:
        super().__init__()
        self._checks = checks
        self._state = state
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._slow_every = max(1, slow_every)
        self._running: dict[str, concurrent.futures.Future[list[Check]]] = {}
        self._last: dict[str, list[Check]] = {}
        self._refreshes = 0

    def setup(self) -> None:
        self._refresh()
        self.every(self._interval_s, RefreshHealth())

    def on_receive(self, message: Any) -> Any:
        match message:
            case RefreshHealth():
                return self._refresh()
            case _:
                return super().on_receive(message)

    def _refresh(self) -> HealthReport:
        started: dict[str, concurrent.futures.Future[list[Check]]] = {}
        slow_due = self._refreshes % self._slow_every == 0
        self._refreshes += 1
        for check in self._checks:
            key = f"{check.component}:{check.measurement}"
            if check.slow and not slow_due and key in self._last:
                continue
            pending = self._running.get(key)
            if pending is not None and not pending.done():
                continue  # still stuck from an earlier refresh: do not pile up threads
            started[key] = self._running[key] = _run_on_thread(check.run, key)
        concurrent.futures.wait(started.values(), timeout=self._timeout_s)
        for check in self._checks:
            key = f"{check.component}:{check.measurement}"
            future = self._running.get(key)
            if future is None:
                continue
            if future.done():
                self._running.pop(key)
                self._last[key] = self._result(check, future)
            elif key in started or key not in self._last or not check.slow:
                self._last[key] = [
                    Check(
                        component=check.component,
                        measurement=check.measurement,
                        status=WARN if check.slow else FAIL,  # informational: never fail
                        output=f"check did not finish within {self._timeout_s:g} s",
                    )
                ]
        report = HealthReport(
            checks=tuple(c for check in self._checks for c in self._last.get(_key(check), [])),
            generated_at=datetime.now(UTC),
        )
        self._state.publish(report)
        return report

    @staticmethod
    def _result(check: NamedCheck, future: concurrent.futures.Future[list[Check]]) -> list[Check]:
        try:
            return future.result()
        except BaseException as exc:  # raised on the check's thread (even SystemExit)
            log.exception("health_check_failed", check=_key(check))
            return [
                Check(
                    component=check.component,
                    measurement=check.measurement,
                    status=FAIL,
                    output=f"check raised {type(exc).__name__}: {exc}",
                )
            ]


def _key(check: NamedCheck) -> str:
    return f"{check.component}:{check.measurement}"


def _run_on_thread(fn: CheckFn, name: str) -> concurrent.futures.Future[list[Check]]:
    """Run ``fn`` on a new daemon thread (a hung check must never block process exit)."""
    future: concurrent.futures.Future[list[Check]] = concurrent.futures.Future()

    def target() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the actor as the result
            future.set_exception(exc)

    threading.Thread(target=target, name=f"health-{name}", daemon=True).start()
    return future
