"""The running supervision tree: start, stop, address actors by id, observe, drill.

:class:`SupervisionTree` is what the rest of the process holds. It validates the specs,
starts the root supervisor (all-or-nothing), probes the root's liveness, fans
supervision events out to listeners, and records how the tree ended:
:attr:`SupervisionTree.exit` is set when the root escalates, when a ``BaseException``
makes pykka stop every actor, or after an orderly :meth:`SupervisionTree.stop`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from tradingbot.supervision._pykka_compat import start_loop
from tradingbot.supervision.actor import (
    SHUTDOWN,
    ActorContext,
    ChildDown,
    CrashDrillRequest,
    HangDrillRequest,
    StartFailed,
)
from tradingbot.supervision.clock import Clock, SystemClock, Timer, call_every
from tradingbot.supervision.handle import (
    RUNNING,
    UNRESPONSIVE,
    ActorHandle,
    ActorUnavailable,
    SupervisionError,
    UnknownActor,
)
from tradingbot.supervision.lifecycle import (
    EventListener,
    Failure,
    FatalError,
    SupervisionEvent,
)
from tradingbot.supervision.snapshot import ActorSnapshot
from tradingbot.supervision.spec import ChildSpec, Kind, validate
from tradingbot.supervision.supervisor_actor import RestartChild, Supervisor

log = structlog.get_logger("tradingbot.supervision")


class StartupError(SupervisionError):
    """The tree did not start; the message names the child that failed and why."""


@dataclass(frozen=True, slots=True)
class TreeExit:
    """How the tree ended: ``clean`` after an orderly stop, else ``reason`` says why."""

    clean: bool
    reason: str


def log_event(event: SupervisionEvent) -> None:
    """The default listener: one structured log line per supervision event."""
    fields = event.fields()
    failure = fields.pop("failure", None)
    if failure is not None:
        fields["error_type"] = failure["type"]
        fields["error"] = failure["message"]
        fields["traceback"] = failure["traceback"]
    log.log(_LEVELS[event.level], event.name, **fields)


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class SupervisionTree:
    """One tree of supervised actors rooted at a supervisor spec."""

    def __init__(
        self,
        root: ChildSpec,
        *,
        clock: Clock | None = None,
        listeners: Iterable[EventListener] = (log_event,),
        probe_interval_s: float = 5.0,
        probe_deadline_s: float = 10.0,
        max_pending: int = 10_000,
        rng: random.Random | None = None,
    ) -> None:
        validate(root)
        self.root_spec = root
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.probe_interval_s = probe_interval_s
        self.probe_deadline_s = probe_deadline_s
        self._listeners = list(listeners)
        self._lock = threading.Lock()
        self._handles: dict[str, ActorHandle] = {}
        self._build_handles(root, None, max_pending)
        self._root_ctx: ActorContext | None = None
        self._root_probe: Timer | None = None
        self._stopping = False
        self._dying = False
        self._exit: TreeExit | None = None
        self._exited = threading.Event()
        self._exit_callbacks: list[Callable[[TreeExit], None]] = []

    def _build_handles(self, spec: ChildSpec, parent: str | None, max_pending: int) -> ActorHandle:
        handle = ActorHandle(spec, parent, self.emit, max_pending)
        self._handles[spec.id] = handle
        handle.children = [self._build_handles(c, spec.id, max_pending) for c in spec.children]
        return handle

    # -- TreeServices ---------------------------------------------------------------------

    @property
    def dying(self) -> bool:
        return self._dying

    def emit(self, event: SupervisionEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("supervision_listener_failed", listener=repr(listener))

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def fatal(self, actor_id: str, failure: Failure) -> None:
        """A BaseException in ``actor_id``: pykka is stopping every actor; the tree is over."""
        self._dying = True
        parent = self._handles[actor_id].parent_id if actor_id in self._handles else None
        self.emit(FatalError(actor=actor_id, supervisor=parent, failure=failure))
        self._finish(
            TreeExit(
                clean=False,
                reason=f"{failure.type} raised in actor {actor_id!r}; every actor was stopped",
            )
        )

    def handle(self, actor_id: str) -> ActorHandle:
        return self._handles[actor_id]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start every actor in order, each confirmed; raise :class:`StartupError` if one fails."""
        spec = self.root_spec
        handle = self._handles[spec.id]
        ctx = ActorContext(handle=handle, parent=self, services=self)
        root = Supervisor(spec, self)
        root.attach(ctx)
        pykka.ActorRegistry.register(root.actor_ref)
        start_loop(root)
        root_ref = root.actor_ref
        try:
            try:
                ctx.started.result(timeout=spec.start_timeout_s)
            except TimeoutError:
                if ctx.started.cancel():
                    raise StartupError(
                        f"startup failed: the tree did not start within {spec.start_timeout_s:g} s"
                    ) from None
                ctx.started.result()  # the root came up just as we gave up: it counts
        except StartFailed as exc:
            raise StartupError(f"startup failed: {_innermost(exc.failure)}") from None
        self._root_ctx = ctx
        handle.publish(root_ref, restarted=False)
        self._root_probe = call_every(
            self.clock,
            self.probe_interval_s,
            lambda: handle.probe(self.clock.monotonic(), self.probe_deadline_s),
        )

    def child_down(self, down: ChildDown) -> None:
        """The root supervisor stopped: after escalation, or because someone stopped it."""
        handle = self._handles[self.root_spec.id]
        handle.actor_down(down.urn, down.failure, "stopped")
        if self._stopping:
            return
        for other in self._handles.values():
            other.close()
        if down.failure is not None:
            reason = f"root supervisor failed: {down.failure.message or down.failure.type}"
        else:
            reason = "root supervisor stopped unexpectedly"
        self._finish(TreeExit(clean=False, reason=reason))

    def stop(self) -> None:
        """Stop the tree in reverse start order, each child within its shutdown timeout."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        if self._root_probe is not None:
            self._root_probe.cancel()
        ctx = self._root_ctx
        handle = self._handles[self.root_spec.id]
        ref = handle.ref
        if ctx is not None and ref is not None:
            ctx.stop_reason = SHUTDOWN
            try:
                ref.stop(block=True, timeout=self.root_spec.shutdown_s)
            except pykka.Timeout:
                log.error("tree_stop_timeout", timeout_s=self.root_spec.shutdown_s)
        for h in self._handles.values():
            h.close()
        self._finish(TreeExit(clean=True, reason="stopped"))

    def _finish(self, result: TreeExit) -> None:
        with self._lock:
            if self._exit is not None:
                return
            self._exit = result
            callbacks = list(self._exit_callbacks)
        self._exited.set()
        for callback in callbacks:
            callback(result)

    @property
    def exit(self) -> TreeExit | None:
        return self._exit

    def wait(self, timeout_s: float | None = None) -> TreeExit | None:
        """Block until the tree ended (escalation, fatal error or stop)."""
        self._exited.wait(timeout_s)
        return self._exit

    def on_exit(self, callback: Callable[[TreeExit], None]) -> None:
        """Call ``callback`` (from whichever thread ends the tree) once it has ended."""
        with self._lock:
            if self._exit is None:
                self._exit_callbacks.append(callback)
                return
            result = self._exit
        callback(result)

    # -- addressing and operations --------------------------------------------------------

    def _get(self, actor_id: str) -> ActorHandle:
        try:
            return self._handles[actor_id]
        except KeyError:
            known = ", ".join(sorted(self._handles))
            raise UnknownActor(f"no actor {actor_id!r} (known: {known})") from None

    def tell(self, actor_id: str, message: Any) -> None:
        """Send to the current incarnation of ``actor_id`` (parked across restarts)."""
        self._get(actor_id).tell(message)

    def ask(self, actor_id: str, message: Any, timeout_s: float = 5.0) -> Any:
        return self._get(actor_id).ask(message, timeout_s)

    def crash(self, actor_id: str) -> None:
        """Failure drill: make ``actor_id`` raise inside its own thread."""
        handle = self._get(actor_id)
        if handle.ref is None or handle.status not in (RUNNING, UNRESPONSIVE):
            raise ActorUnavailable(f"actor {actor_id!r} is {handle.status}, not running")
        handle.tell(CrashDrillRequest())

    def hang(self, actor_id: str, seconds: float) -> None:
        """Liveness drill: block ``actor_id``'s thread for ``seconds`` (it cannot be killed)."""
        handle = self._get(actor_id)
        if handle.ref is None or handle.status not in (RUNNING, UNRESPONSIVE):
            raise ActorUnavailable(f"actor {actor_id!r} is {handle.status}, not running")
        handle.tell(HangDrillRequest(seconds))

    def restart(self, actor_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Stop ``actor_id`` and start a replacement (an operator action, not a failure)."""
        handle = self._get(actor_id)
        if handle.parent_id is None:
            raise SupervisionError("the root supervisor cannot be restarted; restart the process")
        result: dict[str, Any] = self._get(handle.parent_id).ask(RestartChild(actor_id), timeout_s)
        return result

    def snapshot(self) -> ActorSnapshot:
        return self._handles[self.root_spec.id].snapshot()

    def unresponsive(self) -> list[str]:
        """Ids of critical actors that missed their liveness deadline."""
        return [
            h.id for h in self._handles.values() if h.spec.critical and h.status == UNRESPONSIVE
        ]

    def healthy(self) -> bool:
        """True while the tree runs and no critical actor is unresponsive (gates WATCHDOG=1)."""
        return self._exit is None and not self._dying and not self.unresponsive()

    def actor_ids(self) -> list[str]:
        return list(self._handles)

    def kind(self, actor_id: str) -> Kind:
        return self._get(actor_id).spec.kind


def _innermost(failure: Failure) -> str:
    return failure.message if failure.type == "StartFailed" else failure.summary()
