"""The supervisor actor: starts children in order, restarts them by strategy, escalates.

Semantics follow Erlang/OTP:

* children start in order, each confirmed up before the next; if one fails, the ones
  already started are stopped in reverse order and the supervisor's own start fails
  with an error naming the child;
* on a child's exit the restart type decides (permanent: always, transient: after an
  exception, temporary: never), then the strategy picks the group to restart
  (one_for_one, one_for_all, rest_for_one); siblings are stopped in reverse order and
  the group started again in order;
* more than ``intensity`` restarts within ``period_s`` make the supervisor stop all its
  children in reverse order and fail, which escalates to its parent;
* children with a :class:`~tradingbot.supervision.spec.Backoff` are restarted after a
  growing, jittered delay instead, and do not count towards the intensity;
* a liveness probe pings every running child each ``probe_interval_s``; one that has
  not answered within ``probe_deadline_s`` is reported unresponsive.

All of it runs on the supervisor's own thread; blocking there (starting and stopping
children) is by design, as in OTP.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pykka

from tradingbot.supervision._pykka_compat import start_loop
from tradingbot.supervision.actor import (
    ESCALATION,
    RESTART,
    SHUTDOWN,
    ActorContext,
    ChildDown,
    StartFailed,
    SupervisedActor,
    TreeServices,
)
from tradingbot.supervision.clock import Timer
from tradingbot.supervision.handle import (
    RESTARTING,
    STOPPED,
    ActorHandle,
    SupervisionError,
    UnknownActor,
    tell_if_alive,
)
from tradingbot.supervision.lifecycle import (
    ActorCrashed,
    ActorExited,
    ActorGaveUp,
    ActorRestarted,
    ActorStarted,
    Failure,
    RestartScheduled,
    SupervisorEscalated,
)
from tradingbot.supervision.spec import ChildSpec, Kind, Restart, Strategy


class Escalation(SupervisionError):
    """A supervisor exceeded its restart intensity and gave up."""


@dataclass(frozen=True, slots=True)
class RestartChild:
    """Operator command: stop a child and start it again (does not count as a failure)."""

    child_id: str


@dataclass(frozen=True, slots=True)
class _RestartDue:
    child_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class _ProbeTick:
    """Timer: probe every running child's liveness."""


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    handle: ActorHandle
    ref: pykka.ActorRef[Any] | None = None
    ctx: ActorContext | None = None
    started_at: float | None = None
    attempt: int = 0  # backoff streak
    generation: int = 0  # invalidates stale backoff timers
    timer: Timer | None = None
    removed: bool = False
    ever_started: bool = field(default=False)

    @property
    def id(self) -> str:
        return self.spec.id


class _SupervisorParent:
    """How a child reaches its supervisor: a tell, so it never blocks the child."""

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self._ref = ref

    def child_down(self, down: ChildDown) -> None:
        # If the supervisor is gone, its own parent handles the whole subtree.
        tell_if_alive(self._ref, down)


class Supervisor(SupervisedActor):
    """Supervises the children of one :class:`ChildSpec` of kind supervisor."""

    def __init__(self, spec: ChildSpec, services: TreeServices) -> None:
        super().__init__()
        self._spec = spec
        self._services = services
        self._children: list[_Child] = []
        self._restart_log: deque[float] = deque()
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        handle = self.context.handle
        self._children = [
            _Child(spec=spec, handle=self._services.handle(spec.id)) for spec in self._spec.children
        ]
        handle.children = [child.handle for child in self._children]
        started: list[_Child] = []
        for child in self._children:
            try:
                self._start(child)
            except StartFailed:
                for done in reversed(started):
                    self._stop_child(done, ESCALATION, final=False)
                raise
            started.append(child)
        self.every(self._services.probe_interval_s, _ProbeTick())

    def teardown(self, reason: str) -> None:
        self._stop_all(reason)

    def on_crash(self, failure: Failure) -> None:
        # A dead supervisor's children must not outlive it (OTP links): stop them.
        self._stop_all(RESTART)

    def _stop_all(self, reason: str) -> None:
        self._stopping = True
        for child in reversed(self._children):
            if child.timer is not None:
                child.timer.cancel()
            self._stop_child(child, reason, final=reason == SHUTDOWN)

    # -- messages -------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case ChildDown():
                self._on_child_down(message)
            case _RestartDue(child_id=child_id, generation=generation):
                child = self._find(child_id)
                if child.generation == generation and not self._stopping and child.ref is None:
                    child.timer = None
                    self._start_group(child, self._group(child))
            case _ProbeTick():
                now = self._services.clock.monotonic()
                for child in self._children:
                    child.handle.probe(now, self._services.probe_deadline_s)
            case RestartChild(child_id=child_id):
                # An operator's mistake must not crash the supervisor: answer, don't raise.
                try:
                    child = self._find(child_id)
                except UnknownActor as exc:
                    return {"actor": child_id, "restarted": False, "error": str(exc)}
                return self._operator_restart(child)
            case _:
                return super().on_receive(message)
        return None

    def _find(self, child_id: str) -> _Child:
        for child in self._children:
            if child.id == child_id:
                return child
        raise UnknownActor(f"{child_id!r} is not a child of {self.actor_id!r}")

    # -- starting and stopping ------------------------------------------------------------

    def _start(self, child: _Child, reason: str | None = None) -> None:
        """Start one child and wait until it confirms; raise StartFailed otherwise."""
        spec = child.spec
        ctx = ActorContext(
            handle=child.handle,
            parent=_SupervisorParent(self.actor_ref),
            services=self._services,
        )
        try:
            actor: SupervisedActor
            if spec.kind is Kind.SUPERVISOR:
                actor = Supervisor(spec, self._services)
            else:
                assert spec.factory is not None  # checked by validate()
                actor = spec.factory()
            actor.attach(ctx)
            pykka.ActorRegistry.register(actor.actor_ref)
            start_loop(actor)
        except Exception as exc:
            raise StartFailed(spec.id, Failure.from_exception(exc)) from exc
        try:
            ctx.started.result(timeout=spec.start_timeout_s)
        except StartFailed:
            raise
        except TimeoutError:
            if ctx.started.cancel():
                failure = Failure(
                    type="StartTimeout",
                    message=f"setup did not finish within {spec.start_timeout_s:g} s; abandoned",
                    traceback="",
                )
                raise StartFailed(spec.id, failure) from None
            # Setup finished just as we gave up: the actor runs, so it counts as started
            # (treating it as failed would leave it running, unsupervised, forever).
            ctx.started.result()
        child.ref = actor.actor_ref
        child.ctx = ctx
        child.started_at = self._services.clock.monotonic()
        # A handle that has run before (e.g. under a previous incarnation of this
        # supervisor) makes this a restart, so counts and events agree with the snapshot.
        restarted = child.ever_started or child.handle.started_at is not None
        child.ever_started = True
        child.handle.publish(actor.actor_ref, restarted=restarted)
        if restarted:
            self._services.emit(
                ActorRestarted(
                    actor=spec.id,
                    supervisor=self.actor_id,
                    restarts=child.handle.restarts,
                    reason=reason
                    or (
                        child.handle.last_failure.summary()
                        if child.handle.last_failure
                        else "restart"
                    ),
                )
            )
        else:
            self._services.emit(ActorStarted(actor=spec.id, supervisor=self.actor_id, restarts=0))

    def _stop_child(self, child: _Child, reason: str, *, final: bool) -> None:
        """Stop one child within its shutdown timeout; a hung one is abandoned and reported."""
        ref, ctx = child.ref, child.ctx
        child.ref = None
        if ref is not None and ctx is not None:
            child.handle.actor_down(ref.actor_urn, None, STOPPED if final else RESTARTING)
            ctx.stop_reason = reason
            try:
                ref.stop(block=True, timeout=child.spec.shutdown_s)
            except pykka.Timeout:
                self._services.emit(
                    ActorGaveUp(
                        actor=child.id,
                        supervisor=self.actor_id,
                        reason=f"did not stop within {child.spec.shutdown_s:g} s; abandoned",
                    )
                )
        if final:
            _close_subtree(child.handle)

    # -- failures -------------------------------------------------------------------------

    def _on_child_down(self, down: ChildDown) -> None:
        try:
            child = self._find(down.child_id)
        except UnknownActor:
            return
        if child.ref is None or child.ref.actor_urn != down.urn or self._stopping:
            return  # a stale report about an incarnation already replaced or stopped
        child.ref = None
        if down.failure is None:
            self._services.emit(ActorExited(actor=child.id, supervisor=self.actor_id))
        else:
            self._services.emit(
                ActorCrashed(actor=child.id, supervisor=self.actor_id, failure=down.failure)
            )
        self._after_exit(child, down.failure)

    def _after_exit(self, child: _Child, failure: Failure | None) -> None:
        """Decide, after ``child`` exited, whether and how it comes back."""
        restart = child.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and failure is None):
            how = "normally" if failure is None else "with an error"
            self._remove(child, f"{restart.value} child exited {how}")
            return
        if self._services.dying:
            return
        group = self._group(child)
        if child.spec.backoff is not None:
            self._stop_siblings(child, group)
            self._schedule_backoff(child)
            return
        if not self._within_intensity():
            self._escalate(child)
            return
        self._stop_siblings(child, group)
        self._start_group(child, group)

    def _group(self, child: _Child) -> list[_Child]:
        live = [c for c in self._children if not c.removed]
        match self._spec.strategy:
            case Strategy.ONE_FOR_ONE:
                return [child]
            case Strategy.ONE_FOR_ALL:
                return live
            case Strategy.REST_FOR_ONE:
                return live[live.index(child) :]

    def _stop_siblings(self, child: _Child, group: list[_Child]) -> None:
        for sibling in reversed(group):
            if sibling is not child and sibling.ref is not None:
                self._stop_child(sibling, RESTART, final=False)
            if sibling is not child and sibling.spec.restart is Restart.TEMPORARY:
                self._remove(sibling, "temporary child stopped by its supervisor's strategy")
            elif sibling is not child:
                sibling.handle.set_status(RESTARTING)

    def _start_group(self, trigger: _Child, group: list[_Child]) -> None:
        for member in group:
            if member.removed or member.ref is not None:
                continue
            try:
                self._start(member)
            except StartFailed as exc:
                member.handle.record_failure(exc.failure)
                member.handle.set_status(RESTARTING)
                self._services.emit(
                    ActorCrashed(actor=member.id, supervisor=self.actor_id, failure=exc.failure)
                )
                self._after_exit(member, exc.failure)
                return

    def _within_intensity(self) -> bool:
        now = self._services.clock.monotonic()
        self._restart_log.append(now)
        while self._restart_log and self._restart_log[0] <= now - self._spec.period_s:
            self._restart_log.popleft()
        return len(self._restart_log) <= self._spec.intensity

    def _schedule_backoff(self, child: _Child) -> None:
        backoff = child.spec.backoff
        assert backoff is not None
        now = self._services.clock.monotonic()
        if child.started_at is not None and now - child.started_at >= backoff.reset_after_s:
            child.attempt = 0
        if backoff.max_restarts is not None and child.attempt >= backoff.max_restarts:
            self._escalate(child)
            return
        delay = backoff.delay_s(child.attempt, self._services.rng)
        child.attempt += 1
        child.generation += 1
        child.handle.set_status(RESTARTING)
        message = _RestartDue(child.id, child.generation)
        ref = self.actor_ref

        def due() -> None:
            tell_if_alive(ref, message)

        child.timer = self._services.clock.call_later(delay, due)
        self._services.emit(
            RestartScheduled(
                actor=child.id,
                supervisor=self.actor_id,
                delay_s=round(delay, 3),
                attempt=child.attempt,
            )
        )

    def _escalate(self, child: _Child) -> None:
        restarts = len(self._restart_log)
        self._services.emit(
            SupervisorEscalated(
                actor=self.actor_id,
                supervisor=self.context.handle.parent_id,
                child=child.id,
                restarts=restarts,
                period_s=self._spec.period_s,
            )
        )
        self._stop_all(ESCALATION)
        raise Escalation(
            f"supervisor {self.actor_id!r} gave up: child {child.id!r} exceeded the restart "
            f"intensity ({self._spec.intensity} restarts in {self._spec.period_s:g} s)"
        )

    def _remove(self, child: _Child, reason: str) -> None:
        child.removed = True
        child.ref = None
        _close_subtree(child.handle)
        self._services.emit(ActorGaveUp(actor=child.id, supervisor=self.actor_id, reason=reason))

    def _operator_restart(self, child: _Child) -> dict[str, Any]:
        if child.removed:
            error = f"{child.id!r} has exited for good and is not restarted"
            return {"actor": child.id, "restarted": False, "error": error}
        if child.timer is not None:
            child.timer.cancel()
            child.timer = None
        self._stop_child(child, RESTART, final=False)
        try:
            self._start(child, reason="operator restart")
        except StartFailed as exc:
            child.handle.record_failure(exc.failure)
            child.handle.set_status(RESTARTING)
            self._services.emit(
                ActorCrashed(actor=child.id, supervisor=self.actor_id, failure=exc.failure)
            )
            self._after_exit(child, exc.failure)  # may escalate, as any failed start
            return {"actor": child.id, "restarted": False, "error": str(exc)}
        return {"actor": child.id, "restarted": True, "restarts": child.handle.restarts}


def _close_subtree(handle: ActorHandle) -> None:
    for child in handle.children:
        _close_subtree(child)
    handle.close()
