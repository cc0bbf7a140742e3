"""Child specifications and supervisor flags: plain, frozen, validated data (OTP style)."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradingbot.supervision.actor import SupervisedActor


class Restart(enum.StrEnum):
    """When a child that exited is started again (Erlang/OTP restart types)."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after an abnormal exit (an exception)
    TEMPORARY = "temporary"  # never


class Strategy(enum.StrEnum):
    """Which children a supervisor restarts when one of them fails."""

    ONE_FOR_ONE = "one_for_one"  # only the failed child
    ONE_FOR_ALL = "one_for_all"  # every child
    REST_FOR_ONE = "rest_for_one"  # the failed child and the ones started after it


class Kind(enum.StrEnum):
    WORKER = "worker"
    SUPERVISOR = "supervisor"


class SpecError(ValueError):
    """A child specification is invalid; raised before anything starts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delayed restarts for children whose failures are external (Akka's BackoffSupervisor).

    The n-th consecutive restart waits ``min(max_s, min_s * factor**n)``, scaled by a
    random factor in ``[1 - jitter, 1 + jitter]``. A child that stayed up for
    ``reset_after_s`` starts again from ``min_s``. Backoff restarts do not count towards
    the supervisor's intensity (an unreachable gateway must not bring the tree down);
    set ``max_restarts`` to give up and escalate after that many consecutive failures.
    """

    min_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    reset_after_s: float = 60.0
    max_restarts: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise SpecError(f"backoff: need 0 < min_s <= max_s, got {self.min_s}, {self.max_s}")
        if self.factor < 1:
            raise SpecError(f"backoff: factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise SpecError(f"backoff: jitter must be in [0, 1), got {self.jitter}")
        if self.reset_after_s <= 0:
            raise SpecError(f"backoff: reset_after_s must be > 0, got {self.reset_after_s}")
        if self.max_restarts is not None and self.max_restarts < 0:
            raise SpecError(f"backoff: max_restarts must be >= 0, got {self.max_restarts}")

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Delay before restart number ``attempt`` (0-based) of a failing streak."""
        base = min(self.max_s, self.min_s * self.factor**attempt)
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How to start, restart and stop one child of a supervisor.

    ``factory`` is called in the supervisor's thread for every (re)start and must return
    a fresh, not yet started :class:`~tradingbot.supervision.actor.SupervisedActor`.
    Supervisor children have no factory: they carry ``children`` and their flags.
    ``critical`` children gate the systemd watchdog while unresponsive.
    """

    id: str
    factory: Callable[[], SupervisedActor] | None = None
    kind: Kind = Kind.WORKER
    restart: Restart = Restart.PERMANENT
    shutdown_s: float = 5.0
    start_timeout_s: float = 10.0
    backoff: Backoff | None = None
    critical: bool = True
    # Supervisor children only:
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 3
    period_s: float = 5.0
    children: tuple[ChildSpec, ...] = field(default=())

    def walk(self) -> Iterator[ChildSpec]:
        """This spec and every spec below it, depth first in start order."""
        yield self
        for child in self.children:
            yield from child.walk()


def worker(
    id: str,
    factory: Callable[[], SupervisedActor],
    *,
    restart: Restart = Restart.PERMANENT,
    shutdown_s: float = 5.0,
    start_timeout_s: float = 10.0,
    backoff: Backoff | None = None,
    critical: bool = True,
) -> ChildSpec:
    """Spec for a worker actor."""
    return ChildSpec(
        id=id,
        factory=factory,
        kind=Kind.WORKER,
        restart=restart,
        shutdown_s=shutdown_s,
        start_timeout_s=start_timeout_s,
        backoff=backoff,
        critical=critical,
    )


def supervisor(
    id: str,
    children: Sequence[ChildSpec],
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: int = 3,
    period_s: float = 5.0,
    restart: Restart = Restart.PERMANENT,
    shutdown_s: float = 30.0,
    start_timeout_s: float = 60.0,
    critical: bool = True,
) -> ChildSpec:
    """Spec for a supervisor of ``children`` (restart intensity: ``intensity`` per ``period_s``)."""
    return ChildSpec(
        id=id,
        kind=Kind.SUPERVISOR,
        restart=restart,
        shutdown_s=shutdown_s,
        start_timeout_s=start_timeout_s,
        critical=critical,
        strategy=strategy,
        intensity=intensity,
        period_s=period_s,
        children=tuple(children),
    )


def validate(root: ChildSpec) -> None:
    """Check the whole tree before anything starts; raise :class:`SpecError` naming the problem."""
    if root.kind is not Kind.SUPERVISOR:
        raise SpecError(f"the root {root.id!r} must be a supervisor")
    seen: set[str] = set()
    for spec in root.walk():
        if not spec.id or not spec.id.replace("_", "").replace("-", "").isalnum():
            raise SpecError(f"child id {spec.id!r}: use letters, digits, '-' and '_'")
        if spec.id in seen:
            raise SpecError(f"child id {spec.id!r} is used twice; ids are unique in the tree")
        seen.add(spec.id)
        if spec.shutdown_s <= 0 or spec.start_timeout_s <= 0:
            raise SpecError(f"child {spec.id!r}: shutdown_s and start_timeout_s must be > 0")
        if spec.kind is Kind.WORKER:
            if spec.factory is None:
                raise SpecError(f"worker {spec.id!r} has no factory")
            if spec.children:
                raise SpecError(f"worker {spec.id!r} cannot have children")
        else:
            if spec.factory is not None:
                raise SpecError(f"supervisor {spec.id!r} takes children, not a factory")
            if spec.backoff is not None:
                raise SpecError(f"supervisor {spec.id!r}: backoff applies to workers only")
            if spec.intensity < 0 or spec.period_s <= 0:
                raise SpecError(f"supervisor {spec.id!r}: need intensity >= 0 and period_s > 0")
