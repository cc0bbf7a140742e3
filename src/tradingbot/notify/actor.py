"""The notifier actor: turns events into durable outbox rows and delivers them.

Its own thread only does short database writes (enqueueing, bookkeeping); SMTP I/O runs
on a *sender thread* the actor owns, one delivery pass at a time
(:meth:`Notifier.deliver_due`). A slow or black-holed mail server therefore never
delays the actor's liveness probe, nor any other actor: the notifier stays a
*critical* child (a notifier that stops answering is a real fault, and it gates the
systemd watchdog like every other critical actor) without an SMTP outage ever looking
like a hang.

Messages:

* :class:`EventsPublished` — durable events from the event hub (the runtime forwards
  them by name, so they survive this actor's restarts); TRADE events become trade
  mails, SYSTEM/RISK events at or above the alert severity become alerts.
* :class:`SendNotification` — enqueue one notification (the public way for other
  actors: the daily summary, the recovery report); the reply, if asked, is the
  :class:`~tradingbot.notify.Enqueued` result once the row is committed.
* :class:`DeliverNow` — start a delivery pass now (the poll does it every second).

If the outbox cannot be written (database down), notifications wait in memory (bounded)
and are written at the next tick; health reports them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from tradingbot.events.model import Event, Severity
from tradingbot.notify import DeliveryReport, Notification, Notifier, route
from tradingbot.storage import StorageError
from tradingbot.supervision import Failure, SupervisedActor, tell_incarnation

log = structlog.get_logger(__name__)

MAX_UNSTORED = 10_000
PRUNE_INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True)
class EventsPublished:
    """Durable events, as published by the event logger (via the event hub)."""

    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendNotification:
    """Command: enqueue a notification (see :meth:`Notifier.enqueue`)."""

    kind: str
    context: dict[str, Any] = field(default_factory=dict)
    severity: Severity = Severity.INFO
    dedup_key: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class DeliverNow:
    """Command: start a delivery pass now (if none is running)."""


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: write held notifications, start a delivery pass for what became due."""


@dataclass(frozen=True, slots=True)
class PruneOutbox:
    """Command (and hourly timer): delete sent mail past the retention; answers the count."""


@dataclass(frozen=True, slots=True)
class _PassDone:
    report: DeliveryReport | None
    error: str | None = None


class _SenderThread:
    """One daemon thread running delivery passes handed to it, one at a time."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def stop(self, timeout_s: float) -> bool:
        """Let the current pass finish (up to ``timeout_s``); True if the thread ended."""
        self._jobs.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()


class NotifierActor(SupervisedActor):
    """Delivers notification e-mail; see the module docstring."""

    def __init__(self, notifier: Notifier, *, stop_timeout_s: float = 10.0) -> None:
        super().__init__()
        self._notifier = notifier
        self._stop_timeout_s = stop_timeout_s
        self._sender: _SenderThread | None = None
        self._in_flight = False
        self._again = False
        self._unstored: list[Notification] = []
        self._passes = 0
        self._pass_error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        try:
            self._notifier.catch_up()  # mail a kill -9 or a crash kept out of the outbox
        except StorageError as exc:
            log.error("mail_catch_up_failed", error=str(exc))
        self._sender = _SenderThread(f"notifier-sender-{self.actor_urn[:8]}")
        self.every(self._notifier.settings.poll_interval_s, _Tick())
        self.every(PRUNE_INTERVAL_S, PruneOutbox())
        self._kick()  # mail left pending by an earlier run goes out now
        self._publish()

    def teardown(self, reason: str) -> None:
        self._stop_sender()
        self._publish()

    def on_crash(self, failure: Failure) -> None:
        # The pass in progress (if any) finishes on its own; the rows it claimed are
        # marked by it, and any it did not reach come due again when their claim expires.
        if self._sender is not None:
            self._sender.stop(0.0)

    def _stop_sender(self) -> None:
        if self._sender is not None and not self._sender.stop(self._stop_timeout_s):
            log.warning("notifier_sender_still_busy", waited_s=self._stop_timeout_s)
        self._sender = None

    # -- messages -------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case EventsPublished(events=events):
                self._on_events(events)
            case SendNotification():
                result = self._enqueue(
                    Notification(
                        kind=message.kind,
                        context=message.context,
                        severity=message.severity,
                        dedup_key=message.dedup_key,
                        token=message.token,
                    ),
                    hold=False,
                )
                self._kick()
                return result
            case DeliverNow():
                self._kick()
            case PruneOutbox():
                try:
                    return self._notifier.prune()
                except StorageError as exc:
                    log.warning("outbox_prune_failed", error=str(exc))
                    return 0
            case _Tick():
                self._write_held()
                self._kick()
            case _PassDone(report=report, error=error):
                self._in_flight = False
                self._passes += 1
                if error != self._pass_error:  # once per distinct error, not every second
                    if error is None:
                        log.info("notifier_pass_recovered", error=self._pass_error)
                    else:
                        log.error("notifier_pass_failed", error=error)
                    self._pass_error = error
                again = self._again or (report is not None and report.claimed >= self._batch)
                self._again = False
                if again:
                    self._kick()
                self._publish()
            case _:
                return super().on_receive(message)
        return None

    @property
    def _batch(self) -> int:
        return self._notifier.settings.batch_size

    def _on_events(self, events: Sequence[Event]) -> None:
        wanted = False
        for event in events:
            notification = route(event, self._notifier.settings)
            if notification is not None:
                self._enqueue(notification, hold=True)
                wanted = True
        if wanted:
            self._kick()

    def _enqueue(self, notification: Notification, *, hold: bool) -> Any:
        if self._unstored and hold:
            self._hold(notification)  # keep the order of what is already waiting
            return None
        try:
            return self._notifier.enqueue_notification(notification)
        except StorageError as exc:
            self._notifier.status.update(outbox_error=str(exc))
            if not hold:
                raise
            log.error("outbox_unwritable", error=str(exc), kind=notification.kind)
            self._hold(notification)
            return None

    def _hold(self, notification: Notification) -> None:
        if len(self._unstored) >= MAX_UNSTORED:
            log.critical("notification_dropped", kind=notification.kind, held=MAX_UNSTORED)
            return
        self._unstored.append(notification)
        self._notifier.status.update(unstored=len(self._unstored))

    def _write_held(self) -> None:
        while self._unstored:
            notification = self._unstored[0]
            try:
                self._notifier.enqueue_notification(notification)
            except StorageError as exc:
                self._notifier.status.update(outbox_error=str(exc))
                return
            self._unstored.pop(0)
        self._notifier.status.update(unstored=0, outbox_error=None)

    # -- delivery -------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._sender is None:
            return
        if self._in_flight:
            self._again = True  # one more pass when this one ends: new mail arrived
            return
        self._in_flight = True
        ref = self.actor_ref
        notifier = self._notifier

        def run() -> None:
            try:
                report = notifier.deliver_due()
            except Exception as exc:  # noqa: BLE001 - reported to the actor, which logs it
                tell_incarnation(ref, _PassDone(None, f"{type(exc).__name__}: {exc}"))
                return
            tell_incarnation(ref, _PassDone(report))

        self._sender.submit(run)

    def _publish(self) -> None:
        details = self._notifier.status.snapshot()
        details["passes"] = self._passes
        details["pass_error"] = self._pass_error
        details["transport"] = self._notifier.transport.name
        self.publish_details(**details)
