"""Real actors and waiting helpers for the supervision semantics tests (no mocks).

* :class:`Recorder` is a tree listener that keeps every supervision event (with the
  clock time it arrived at) and lets a test *wait* for the events it expects.
* :class:`Lab` is the state shared by every incarnation of the test actors: what was set
  up and torn down (in order, with the reason), which messages were handled by which
  incarnation, which setups must fail or block.
* :class:`Worker` is a small supervised actor driven by the message classes below.
* :class:`Harness` builds trees with a :class:`ManualClock` and, at teardown, releases
  anything blocked, stops every tree and checks that no actor or actor thread is left.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pykka

from tradingbot.supervision import (
    ChildSpec,
    ManualClock,
    SupervisedActor,
    SupervisionEvent,
    SupervisionTree,
    worker,
)
from tradingbot.supervision.handle import Ping

# Generous upper bound for anything asynchronous; never a threshold a test asserts on.
WAIT_S = 5.0
# Probes never fire unless a test asks for them (ManualClock only moves when told).
NO_PROBES_S = 1e6


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Echo:
    value: Any


@dataclass(frozen=True, slots=True)
class WhoAmI:
    """Answered with the pykka URN of the incarnation that handles it."""


@dataclass(frozen=True, slots=True)
class Count:
    n: int


@dataclass(frozen=True, slots=True)
class Crash:
    """Raise RuntimeError in the handler."""


@dataclass(frozen=True, slots=True)
class ExitNormally:
    """The actor stops itself (``self.stop()``): a normal exit."""


@dataclass(frozen=True, slots=True)
class Fatal:
    """Raise SystemExit in the handler."""


@dataclass(frozen=True, slots=True)
class Hang:
    """Block the actor thread until the lab releases it."""


# -- shared state -----------------------------------------------------------------------


@dataclass
class SetupPlan:
    """How the setups of one actor id behave, counted over all its incarnations."""

    fail_after: int = 0  # this many setups succeed first...
    fail_times: int = 0  # ...then this many fail (-1: every one after that)
    block_from: int | None = None  # setups from this 1-based start number block on `release`
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class Lab:
    """State shared by all incarnations of the test actors; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.log: list[tuple[str, str, str]] = []  # (event, actor id, urn or reason)
        self.handled: list[tuple[str, str, int]] = []  # (actor id, urn, n)
        self.starts: dict[str, int] = {}
        self.plans: dict[str, SetupPlan] = {}
        self.hanging = threading.Event()
        self.release_hang = threading.Event()

    def plan(self, actor_id: str, **kwargs: Any) -> SetupPlan:
        plan = self.plans[actor_id] = SetupPlan(**kwargs)
        return plan

    def release_all(self) -> None:
        self.release_hang.set()
        for plan in self.plans.values():
            plan.release.set()

    def on_setup(self, actor_id: str, urn: str) -> None:
        with self._lock:
            number = self.starts[actor_id] = self.starts.get(actor_id, 0) + 1
            self.log.append(("setup", actor_id, urn))
            plan = self.plans.get(actor_id)
        if plan is None:
            return
        if plan.block_from is not None and number >= plan.block_from:
            plan.entered.set()
            plan.release.wait(WAIT_S * 4)
        failing = number - plan.fail_after
        if failing > 0 and (plan.fail_times < 0 or failing <= plan.fail_times):
            raise ConnectionError(f"{actor_id} cannot start (attempt {number})")

    def record(self, event: str, actor_id: str, detail: str) -> None:
        with self._lock:
            self.log.append((event, actor_id, detail))

    def teardowns(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(actor, reason) for event, actor, reason in self.log if event == "teardown"]

    def setups(self) -> list[str]:
        with self._lock:
            return [actor for event, actor, _ in self.log if event == "setup"]

    def count(self, actor_id: str, urn: str, n: int) -> None:
        with self._lock:
            self.handled.append((actor_id, urn, n))
            self._lock.notify_all()

    def wait_handled(self, total: int) -> list[tuple[str, str, int]]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.handled) >= total, WAIT_S):
                raise AssertionError(f"only {len(self.handled)} of {total} messages handled")
            return list(self.handled)


class Worker(SupervisedActor):
    """A supervised worker whose behaviour the test chooses message by message."""

    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.lab = lab

    def setup(self) -> None:
        self.lab.on_setup(self.actor_id, self.actor_urn)

    def teardown(self, reason: str) -> None:
        self.lab.record("teardown", self.actor_id, reason)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Echo(value=value):
                return value
            case WhoAmI():
                return self.actor_urn
            case Count(n=n):
                self.lab.count(self.actor_id, self.actor_urn, n)
            case Crash():
                raise RuntimeError(f"crash requested in {self.actor_id}")
            case ExitNormally():
                self.stop()
            case Fatal():
                raise SystemExit(3)
            case Hang():
                self.lab.hanging.set()
                self.lab.release_hang.wait(WAIT_S * 4)
            case _:
                return super().on_receive(message)
        return None

    def fail(self) -> None:
        """Reached through a pykka proxy call."""
        raise ValueError(f"proxy call failed in {self.actor_id}")


# -- events -----------------------------------------------------------------------------


class Recorder:
    """A tree listener that records events and lets tests wait for them."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self._cond = threading.Condition()
        self._clock = clock
        self.events: list[SupervisionEvent] = []
        self.times: list[float] = []  # clock time at which each event arrived

    def __call__(self, event: SupervisionEvent) -> None:
        now = self._clock.monotonic() if self._clock is not None else 0.0
        with self._cond:
            self.events.append(event)
            self.times.append(now)
            self._cond.notify_all()

    def of(self, kind: type[SupervisionEvent], actor: str | None = None) -> list[Any]:
        with self._cond:
            return [
                e
                for e in self.events
                if isinstance(e, kind) and (actor is None or e.actor == actor)
            ]

    def count(self, kind: type[SupervisionEvent], actor: str | None = None) -> int:
        return len(self.of(kind, actor))

    def wait_for(
        self, predicate: Callable[[list[SupervisionEvent]], bool], what: str
    ) -> list[SupervisionEvent]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.events), WAIT_S):
                seen = [f"{e.name}({e.actor})" for e in self.events]
                raise AssertionError(f"timed out waiting for {what}; events: {seen}")
            return list(self.events)

    def wait_count(
        self, kind: type[SupervisionEvent], n: int, actor: str | None = None
    ) -> list[Any]:
        """Wait until at least ``n`` events of ``kind`` (about ``actor``) arrived."""

        def enough(events: list[SupervisionEvent]) -> bool:
            matching = [e for e in events if isinstance(e, kind)]
            return len([e for e in matching if actor is None or e.actor == actor]) >= n

        self.wait_for(enough, f"{n} x {kind.__name__}({actor or '*'})")
        return self.of(kind, actor)


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` until it holds (for state that no event announces)."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


# -- trees ------------------------------------------------------------------------------


def sync(tree: SupervisionTree, actor_id: str) -> None:
    """Return once ``actor_id`` has handled everything sent to it before this call."""
    ref = tree.handle(actor_id).ref
    assert ref is not None, f"{actor_id} is not running"
    ref.ask(Ping(), timeout=WAIT_S)


def urn(tree: SupervisionTree, actor_id: str) -> str:
    ref = tree.handle(actor_id).ref
    assert ref is not None, f"{actor_id} is not running"
    return ref.actor_urn


def statuses(tree: SupervisionTree) -> dict[str, str]:
    return {node.id: node.status for node in tree.snapshot().walk()}


def _actor_classes() -> set[str]:
    names: set[str] = set()
    pending: list[type] = [SupervisedActor]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


def live_actor_threads() -> set[threading.Thread]:
    """Threads running a supervised actor's loop (pykka names them ``Class-N``)."""
    classes = _actor_classes()
    return {
        t for t in threading.enumerate() if t.is_alive() and t.name.rsplit("-", 1)[0] in classes
    }


@dataclass(frozen=True)
class Baseline:
    """Actors and actor threads that existed before a test (not its to clean up)."""

    refs: frozenset[pykka.ActorRef[Any]]
    threads: frozenset[threading.Thread]

    @classmethod
    def now(cls) -> Baseline:
        return cls(frozenset(pykka.ActorRegistry.get_all()), frozenset(live_actor_threads()))


def assert_nothing_left(baseline: Baseline) -> None:
    """Every actor started since ``baseline`` stopped and unregistered, its thread finished."""

    def new_refs() -> list[pykka.ActorRef[Any]]:
        return [r for r in pykka.ActorRegistry.get_all() if r not in baseline.refs]

    def new_threads() -> list[str]:
        return sorted(t.name for t in live_actor_threads() - baseline.threads)

    try:
        wait_until(lambda: not new_refs(), "every actor to stop")
        wait_until(lambda: not new_threads(), "every actor thread to end")
    except AssertionError:
        left, threads = new_refs(), new_threads()
        for ref in left:  # do not poison the next test
            ref.stop(block=False)
        raise AssertionError(f"leaked actors {left} / threads {threads}") from None


class Harness:
    """Builds trees of :class:`Worker` actors and cleans every one of them up."""

    def __init__(self, seed: int = 1234) -> None:
        self.lab = Lab()
        self.clock = ManualClock()
        self.recorder = Recorder(self.clock)
        self.rng = random.Random(seed)
        self.trees: list[SupervisionTree] = []
        self.baseline = Baseline.now()

    def worker(self, actor_id: str, **kwargs: Any) -> ChildSpec:
        lab = self.lab
        return worker(actor_id, lambda: Worker(lab), **kwargs)

    def workers(self, ids: Iterable[str], **kwargs: Any) -> list[ChildSpec]:
        return [self.worker(actor_id, **kwargs) for actor_id in ids]

    def tree(self, root: ChildSpec, *, start: bool = True, **kwargs: Any) -> SupervisionTree:
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("rng", self.rng)
        kwargs.setdefault("probe_interval_s", NO_PROBES_S)
        kwargs.setdefault("probe_deadline_s", NO_PROBES_S)
        tree = SupervisionTree(root, listeners=[self.recorder], **kwargs)
        self.trees.append(tree)
        if start:
            tree.start()
        return tree

    def close(self) -> None:
        self.lab.release_all()
        for tree in self.trees:
            tree.stop()
        self.assert_nothing_left()

    def assert_nothing_left(self) -> None:
        assert_nothing_left(self.baseline)
