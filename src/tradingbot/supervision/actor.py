"""The base class of every supervised actor, and how each kind of pykka death is caught.

pykka has no supervision: this class turns every way a pykka actor can die into one
report to its supervisor (``Parent.child_down``), exactly once:

* an exception in a handler reached by ``tell`` — pykka calls ``on_failure``;
* an exception in a handler reached by ``ask`` or a proxy call — pykka would hand it to
  the caller and keep the actor running with possibly broken state. Our policy is the
  OTP one, **crash and restart**: the caller still receives the exception, and the
  actor stops and is replaced;
* an exception in :meth:`setup` (pykka's ``on_start``, where pykka does not call
  ``on_failure``) — reported through the start confirmation the supervisor waits for;
* an unexpected stop (``ref.stop()`` from anyone but the supervisor, or pykka's
  ``stop_all``) — reported from ``on_stop`` as a normal exit;
* a ``BaseException`` (``SystemExit``...) — pykka then stops *every* actor, so the tree
  is told it is dying (:meth:`TreeServices.fatal`) and the process exits non-zero.

Messages still in the inbox of an actor that died go back to its
:class:`~tradingbot.supervision.handle.ActorHandle` and reach the replacement.

Subclasses implement :meth:`setup` (actor thread, before any message; raise to fail the
start), ``on_receive`` (pykka's message hook; dispatch with ``match``), and
:meth:`teardown` (actor thread, orderly stops only; an exception there is logged).
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import pykka
import structlog

from tradingbot.supervision._pykka_compat import Envelope, HookedActor, is_stop_request
from tradingbot.supervision.clock import Clock, Timer, call_every
from tradingbot.supervision.handle import (
    RESTARTING,
    ActorHandle,
    IncarnationEnvelope,
    Ping,
    UnknownActor,
    tell_incarnation,
)
from tradingbot.supervision.lifecycle import Failure, SupervisionEvent

log = structlog.get_logger("tradingbot.supervision")

# Stop reasons a supervisor gives its child; ``None`` means nobody asked (unexpected).
SHUTDOWN = "shutdown"  # the process is stopping cleanly
RESTART = "restart"  # the child (or its group) is being replaced
ESCALATION = "escalation"  # the supervisor gave up; its parent decides what happens


class CrashDrill(RuntimeError):
    """Raised inside an actor's own thread on request (``trading-bot shell -c crash X``)."""


class StartFailed(Exception):
    """A child did not start; ``failure`` says why. The message names the child."""

    def __init__(self, actor_id: str, failure: Failure) -> None:
        super().__init__(f"{actor_id!r} failed to start: {failure.summary()}")
        self.actor_id = actor_id
        self.failure = failure


class CrashDrillRequest:
    """Internal message: raise :class:`CrashDrill` in the actor thread (failure drill)."""

    __slots__ = ()


class HangDrillRequest:
    """Internal message: block the actor thread for ``seconds`` (liveness/watchdog drill)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


_FRAMEWORK_MESSAGES = frozenset({Ping, CrashDrillRequest, HangDrillRequest})


def _salvage(envelopes: list[Envelope[Any]]) -> list[Envelope[Any]]:
    """The messages of a dead incarnation worth handing to its replacement."""
    kept: list[Envelope[Any]] = []
    for envelope in envelopes:
        message = envelope.message
        if isinstance(envelope, IncarnationEnvelope):
            continue  # a tick or a reply for the dead incarnation: of no use to anyone
        if is_stop_request(message):
            if envelope.reply_to is not None:
                envelope.reply_to.set(None)
        elif type(message) not in _FRAMEWORK_MESSAGES:
            kept.append(envelope)
    return kept


@dataclass(frozen=True, slots=True)
class ChildDown:
    """A child stopped; ``failure`` is None for a normal exit."""

    child_id: str
    urn: str
    failure: Failure | None


class Parent(Protocol):
    """Whoever supervises an actor: a supervisor actor, or the tree for the root."""

    def child_down(self, down: ChildDown) -> None: ...


class TreeServices(Protocol):
    """What every actor of one tree shares (implemented by the tree)."""

    clock: Clock
    rng: random.Random
    probe_interval_s: float
    probe_deadline_s: float

    @property
    def dying(self) -> bool: ...

    def emit(self, event: SupervisionEvent) -> None: ...

    def fatal(self, actor_id: str, failure: Failure) -> None: ...

    def handle(self, actor_id: str) -> ActorHandle: ...


@dataclass(slots=True)
class ActorContext:
    """Per-incarnation wiring a supervisor gives a child before starting it."""

    handle: ActorHandle
    parent: Parent
    services: TreeServices
    started: Future[None] = field(default_factory=Future)
    stop_reason: str | None = None
    down_reported: bool = False


class SupervisedActor(HookedActor):
    """A pykka actor that a :class:`~tradingbot.supervision.supervisor_actor.Supervisor` owns.

    Runs on a daemon thread: a hung actor cannot be killed, and must not keep the
    process alive after an orderly shutdown gave up on it.
    """

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self._ctx: ActorContext | None = None
        self._base_context: contextvars.Context | None = None
        self._timers: list[Timer] = []

    # -- for subclasses -------------------------------------------------------------------

    def setup(self) -> None:
        """Prepare the actor (its own thread, before any message). Raise to fail the start."""

    def teardown(self, reason: str) -> None:
        """Release resources on an orderly stop; ``reason`` is shutdown, restart or escalation.

        Also called (reason restart) when setup finished only after the supervisor gave up
        waiting for it. Not called after a crash (the state may be broken); use idempotent
        resources.
        """

    @property
    def actor_id(self) -> str:
        return self.context.handle.id

    @property
    def context(self) -> ActorContext:
        if self._ctx is None:
            raise RuntimeError(f"{type(self).__name__} must be started by a supervisor")
        return self._ctx

    @property
    def stop_reason(self) -> str | None:
        return self.context.stop_reason

    @property
    def clock(self) -> Clock:
        return self.context.services.clock

    def peer(self, actor_id: str) -> ActorHandle:
        """The handle of another actor of the tree, addressed by id (survives its restarts)."""
        try:
            return self.context.services.handle(actor_id)
        except KeyError:
            raise UnknownActor(f"no actor {actor_id!r} in the tree") from None

    def every(self, interval_s: float, message: Any) -> None:
        """Tell this actor ``message`` every ``interval_s`` for the life of this incarnation."""
        ref = self.actor_ref

        def fire() -> None:
            tell_incarnation(ref, message)

        self._timers.append(call_every(self.clock, interval_s, fire))

    def later(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the clock thread after ``delay_s`` unless this actor died."""
        self._timers.append(self.clock.call_later(delay_s, callback))

    def publish_details(self, **details: Any) -> None:
        """Add facts to this actor's node in the tree snapshot (JSON-able values)."""
        self.context.handle.publish_details(details)

    # -- framework ------------------------------------------------------------------------

    def attach(self, ctx: ActorContext) -> None:
        """Called by the supervisor before the actor starts."""
        self._ctx = ctx
        self._inbox.forward = self._forward_late

    def _forward_late(self, envelope: Envelope[Any]) -> None:
        # Sender's thread: the message reached this incarnation after its inbox closed.
        for kept in _salvage([envelope]):
            self.context.handle.forward(kept)

    def on_start(self) -> None:
        ctx = self.context
        # Each pykka actor has its own thread, hence its own contextvars context: every
        # log line written from this actor's handlers carries ``actor=<id>``.
        structlog.contextvars.bind_contextvars(actor=ctx.handle.id)
        try:
            self.setup()
        except BaseException as exc:
            self._cancel_timers()
            ctx.down_reported = True
            failure = Failure.from_exception(exc)
            error = StartFailed(ctx.handle.id, failure)
            with contextlib.suppress(InvalidStateError):  # the supervisor gave up waiting
                ctx.started.set_exception(error)
            raise error from exc
        self._base_context = contextvars.copy_context()
        try:
            ctx.started.set_result(None)
        except InvalidStateError:
            # The supervisor gave up waiting (start timeout) and started a replacement.
            ctx.down_reported = True
            ctx.stop_reason = RESTART
            self._cancel_timers()
            self.actor_stopped.set()
            pykka.ActorRegistry.unregister(self.actor_ref)
            # Setup did finish: release what it acquired (a supervisor stops the children
            # it started), or it would outlive this incarnation, unsupervised.
            try:
                self.teardown(RESTART)
            except Exception:
                log.exception("actor_teardown_failed", actor=ctx.handle.id)

    def on_stop(self) -> None:
        ctx = self.context
        self._cancel_timers()
        try:
            self.teardown(ctx.stop_reason or "stopped")
        except Exception:
            log.exception("actor_teardown_failed", actor=ctx.handle.id)
        finally:
            if ctx.stop_reason is None and not ctx.down_reported:
                ctx.down_reported = True
                ctx.handle.actor_down(self.actor_urn, None, RESTARTING)
                ctx.parent.child_down(ChildDown(ctx.handle.id, self.actor_urn, None))

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Normally already reported by _receive_message; this is the safety net.
        if exception_value is not None and not self.context.down_reported:
            self._crashed(Failure.from_exception(exception_value, traceback))

    def _receive_message(self, message: Any) -> Any:
        # Each message runs in a fresh copy of the context set up by on_start (with
        # ``actor=<id>``): what one handler binds (trade_id...) never tags the next.
        base = self._base_context
        if base is None:
            return self._receive(message)
        return base.copy().run(self._receive, message)

    def _receive(self, message: Any) -> Any:
        try:
            if type(message) in _FRAMEWORK_MESSAGES:
                return self._handle_framework_message(message)
            return self._pykka_receive(message)
        except Exception as exc:
            self._crashed(Failure.from_exception(exc))
            raise
        except BaseException as exc:
            self.context.services.fatal(self.context.handle.id, Failure.from_exception(exc))
            raise

    def _handle_framework_message(self, message: Any) -> Any:
        if type(message) is Ping:
            message.answered.set()
            return True
        if type(message) is HangDrillRequest:
            time.sleep(message.seconds)
            return None
        raise CrashDrill("failure drill requested by the operator")

    def on_crash(self, failure: Failure) -> None:
        """Framework hook, actor thread, right after a crash (supervisors stop children)."""

    def _crashed(self, failure: Failure) -> None:
        ctx = self.context
        if ctx.down_reported:
            return
        ctx.down_reported = True
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        self._cancel_timers()
        try:
            self.on_crash(failure)
        finally:
            ctx.handle.actor_down(self.actor_urn, failure, RESTARTING)
            ctx.handle.requeue(self._drain_inbox())
            ctx.parent.child_down(ChildDown(ctx.handle.id, self.actor_urn, failure))

    def _after_loop(self) -> None:
        # pykka would fail asks and silently drop tells left in the inbox; hand them
        # back to the handle so the replacement gets them (or they are counted).
        if self._ctx is not None:
            self._ctx.handle.requeue(self._drain_inbox())
        else:
            self._pykka_after_loop()

    def _drain_inbox(self) -> list[Envelope[Any]]:
        return _salvage(self._inbox.close())

    def _cancel_timers(self) -> None:
        timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
