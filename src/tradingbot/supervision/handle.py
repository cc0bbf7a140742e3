"""Stable, thread-safe handles that address actors by name across restarts.

A restart creates a new pykka actor with a new ref (a stopped pykka actor can never run
again), so peers never hold refs: they hold an :class:`ActorHandle`, which the
supervisor re-points at each replacement. A message sent through a handle while its
actor is down is parked, in order, and delivered to the replacement; when the actor is
gone for good (or the bounded buffer is full) it is counted, logged and, for an ask,
answered with :class:`ActorUnavailable` — never silently lost.

The hot path (``tell`` to a running actor) is one attribute read and pykka's own tell.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pykka

from tradingbot.supervision._pykka_compat import Envelope
from tradingbot.supervision.lifecycle import (
    ActorResponsive,
    ActorUnresponsive,
    Failure,
    MessagesDropped,
    SupervisionEvent,
)
from tradingbot.supervision.snapshot import ActorSnapshot
from tradingbot.supervision.spec import ChildSpec

RUNNING = "running"
RESTARTING = "restarting"
STOPPED = "stopped"
UNRESPONSIVE = "unresponsive"


class SupervisionError(RuntimeError):
    """Base of the errors raised by the supervision library to its callers."""


class ActorUnavailable(SupervisionError):
    """The addressed actor is stopped for good, or did not come back in time."""


class ActorTimeout(SupervisionError):
    """An ask was delivered but not answered within its timeout."""


class UnknownActor(SupervisionError, KeyError):
    """No actor with that id exists in the tree."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown actor"


def inbox_depth(ref: pykka.ActorRef[Any] | None) -> int:
    """Messages waiting in a threading actor's inbox (0 when there is no actor)."""
    if ref is None:
        return 0
    inbox: queue.Queue[Any] = ref.actor_inbox  # type: ignore[assignment]
    return inbox.qsize()


def tell_if_alive(ref: pykka.ActorRef[Any], message: Any) -> bool:
    """Tell ``message`` to ``ref``; False (and nothing else) if that actor already stopped.

    For timers and callbacks aimed at one incarnation: once it is gone, its ticks and
    replies have no one to matter to (its replacement schedules its own).
    """
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


class IncarnationEnvelope(Envelope[Any]):
    """A message for one incarnation only (see :func:`tell_incarnation`)."""

    __slots__ = ()


def tell_incarnation(ref: pykka.ActorRef[Any], message: Any) -> bool:
    """Tell ``message`` to this incarnation only; False if it already stopped.

    For a timer tick or a worker thread's reply: if the incarnation stops before reading
    it, the message is discarded quietly — it is neither handed to a replacement (which
    runs its own timers) nor reported as a dropped message (nothing of value was lost),
    so an orderly stop does not raise an ERROR event about its own ticks.
    """
    if not ref.is_alive():
        return False
    ref.actor_inbox.put(IncarnationEnvelope(message))
    return True


class Ping:
    """Liveness probe; answered by the actor framework before any user handler."""

    __slots__ = ("answered",)

    def __init__(self) -> None:
        self.answered = threading.Event()


class ActorHandle:
    """The name-addressed face of one child spec for the life of the tree."""

    def __init__(
        self,
        spec: ChildSpec,
        parent_id: str | None,
        emit: Callable[[SupervisionEvent], None],
        max_pending: int,
    ) -> None:
        self.id = spec.id
        self.spec = spec
        self.parent_id = parent_id
        self.children: list[ActorHandle] = []
        self._emit = emit
        self._max_pending = max_pending
        self._cond = threading.Condition()
        self._pending: deque[Envelope[Any]] = deque()
        # Read without the lock on the hot path; written only under it.
        self.ref: pykka.ActorRef[Any] | None = None
        self.status = STOPPED
        self.restarts = 0
        self.started_at: datetime | None = None
        self.last_failure: Failure | None = None
        self.dropped = 0
        self.closed = False
        self._details: dict[str, Any] = {}
        self._probe: Ping | None = None
        self._probe_sent = 0.0
        self._unresponsive_since: float | None = None

    # -- sending ---------------------------------------------------------------------------

    def tell(self, message: Any) -> None:
        """Deliver ``message`` to the current actor, or park it for the replacement."""
        ref = self.ref
        envelope = Envelope(message)
        if ref is not None and not ref.actor_stopped.is_set():
            ref.actor_inbox.put(envelope)  # what ref.tell does, minus a call and a raise
            return
        self._park(envelope)

    def ask(self, message: Any, timeout_s: float) -> Any:
        """Send ``message`` and wait for the answer; parked across a restart like a tell.

        Raises :class:`ActorTimeout` when no answer comes in time (the message may still
        be handled later) and :class:`ActorUnavailable` when the actor is gone for good.
        An exception raised by the handler is re-raised here.
        """
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        envelope = Envelope(message, reply_to=future)
        ref = self.ref
        if ref is not None and ref.is_alive():
            ref.actor_inbox.put(envelope)
        else:
            self._park(envelope)
        try:
            return future.get(timeout=timeout_s)
        except pykka.Timeout:
            raise ActorTimeout(f"actor {self.id!r} did not answer within {timeout_s:g} s") from None

    def _park(self, envelope: Envelope[Any]) -> None:
        with self._cond:
            ref = self.ref
            if ref is not None and ref.is_alive():
                ref.actor_inbox.put(envelope)
                return
            if self.closed:
                self._drop([envelope], "actor is stopped")
                return
            if len(self._pending) >= self._max_pending:
                self._drop([envelope], f"restart buffer full ({self._max_pending} messages)")
                return
            self._pending.append(envelope)

    def forward(self, envelope: Envelope[Any]) -> None:
        """A message that reached a dead actor's closed inbox: deliver it, or park it."""
        self._park(envelope)

    def requeue(self, envelopes: Iterable[Envelope[Any]]) -> None:
        """Take back messages left in a dead actor's inbox (they precede parked ones)."""
        envelopes = list(envelopes)
        if not envelopes:
            return
        with self._cond:
            ref = self.ref
            if ref is not None and ref.is_alive():
                for envelope in envelopes:
                    ref.actor_inbox.put(envelope)
            elif self.closed:
                self._drop(envelopes, "actor is stopped")
            else:
                self._pending.extendleft(reversed(envelopes))

    def _drop(self, envelopes: list[Envelope[Any]], reason: str) -> None:
        for envelope in envelopes:
            if envelope.reply_to is not None:
                error = ActorUnavailable(f"actor {self.id!r} is unavailable: {reason}")
                envelope.reply_to.set_exception(exc_info=(ActorUnavailable, error, None))
        self.dropped += len(envelopes)
        self._emit(
            MessagesDropped(
                actor=self.id, supervisor=self.parent_id, count=len(envelopes), reason=reason
            )
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- lifecycle (called by the supervisor and the actor framework) ----------------------

    def publish(self, ref: pykka.ActorRef[Any], *, restarted: bool) -> None:
        """Point the handle at a started actor and hand it the parked messages, in order."""
        with self._cond:
            while self._pending:
                ref.actor_inbox.put(self._pending.popleft())
            self.ref = ref
            self.status = RUNNING
            self.closed = False
            self.started_at = datetime.now(UTC)
            if restarted:
                self.restarts += 1
            self._probe = None
            self._unresponsive_since = None
            self._cond.notify_all()

    def actor_down(self, urn: str | None, failure: Failure | None, status: str) -> bool:
        """Unpoint the handle if it still points at actor ``urn``; True if it did."""
        with self._cond:
            if urn is not None and (self.ref is None or self.ref.actor_urn != urn):
                return False
            self.ref = None
            self.status = status
            self._probe = None
            self._unresponsive_since = None
            if failure is not None:
                self.last_failure = failure
            return True

    def set_status(self, status: str) -> None:
        with self._cond:
            self.status = status

    def record_failure(self, failure: Failure) -> None:
        with self._cond:
            self.last_failure = failure

    def close(self) -> None:
        """The actor is gone for good: drop (and count) what is parked, refuse the rest."""
        with self._cond:
            self.ref = None
            self.status = STOPPED
            self.closed = True
            parked = list(self._pending)
            self._pending.clear()
            if parked:
                self._drop(parked, "actor is stopped")
            self._cond.notify_all()

    def publish_details(self, details: dict[str, Any]) -> None:
        """Actor-specific facts for the snapshot (spool depth, connection state...)."""
        with self._cond:
            self._details = {**self._details, **details}

    # -- liveness --------------------------------------------------------------------------

    def probe(self, now: float, deadline_s: float) -> None:
        """One liveness step: check the outstanding ping, or send a new one."""
        ref = self.ref
        if ref is None:
            return
        event: SupervisionEvent | None = None
        send: Ping | None = None
        with self._cond:
            ping = self._probe
            if ping is not None and ping.answered.is_set():
                if self.status == UNRESPONSIVE and self._unresponsive_since is not None:
                    event = ActorResponsive(
                        actor=self.id,
                        supervisor=self.parent_id,
                        unresponsive_s=round(now - self._unresponsive_since, 3),
                    )
                    self.status = RUNNING
                self._unresponsive_since = None
                ping = self._probe = None
            if ping is None:
                send = self._probe = Ping()
                self._probe_sent = now
            elif now - self._probe_sent >= deadline_s and self.status == RUNNING:
                self.status = UNRESPONSIVE
                self._unresponsive_since = now
                event = ActorUnresponsive(
                    actor=self.id,
                    supervisor=self.parent_id,
                    waited_s=round(now - self._probe_sent, 3),
                )
        if event is not None:
            self._emit(event)
        if send is not None:
            tell_if_alive(ref, send)

    # -- observation -----------------------------------------------------------------------

    def snapshot(self) -> ActorSnapshot:
        with self._cond:
            ref = self.ref
            return ActorSnapshot(
                id=self.id,
                kind=self.spec.kind.value,
                status=self.status,
                restarts=self.restarts,
                restart_type=self.spec.restart.value,
                critical=self.spec.critical,
                started_at=None if self.started_at is None else self.started_at.isoformat(),
                mailbox=inbox_depth(ref) + len(self._pending),
                dropped_messages=self.dropped,
                last_failure=self.last_failure,
                details=dict(self._details),
                children=tuple(child.snapshot() for child in self.children),
            )
