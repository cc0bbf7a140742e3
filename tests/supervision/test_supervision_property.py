"""Property: random crash sequences on a ManualClock never break the intensity contract.

A small tree (three children, the last one temporary) gets a random sequence of crashes
with random clock steps between them. A model of OTP's intensity rule predicts, for each
crash, whether the supervisor restarts or gives up; after every step the tree must be
either fully alive or ended, and the recorded restarts must never exceed ``intensity``
in any ``period_s`` window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from supervision_support import Crash, Harness, statuses, sync

from tradingbot.supervision import (
    ActorCrashed,
    ActorGaveUp,
    ActorRestarted,
    Restart,
    Strategy,
    SupervisionEvent,
    SupervisorEscalated,
    supervisor,
)

pytestmark = pytest.mark.timeout(60)

PERIOD_S = 10.0
CHILDREN = ("a", "b", "t")  # t is temporary
STEPS_S = (0.0, 0.0, 0.5, 3.0, 6.0, 9.999, 10.0, 15.0)  # 10.0: exactly one period


@dataclass
class Model:
    """What OTP says the supervisor should do."""

    strategy: Strategy
    intensity: int
    restart_times: list[float] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)
    restarts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHILDREN, 0))
    escalated: bool = False

    def group(self, child: str) -> list[str]:
        live = [c for c in CHILDREN if c not in self.removed]
        match self.strategy:
            case Strategy.ONE_FOR_ONE:
                return [child]
            case Strategy.ONE_FOR_ALL:
                return live
            case Strategy.REST_FOR_ONE:
                return live[live.index(child) :]

    def crash(self, child: str, now: float) -> list[str]:
        """Apply a crash; return the group that is (or, when escalating, would be) restarted."""
        if child == "t":
            self.removed.add("t")
            return []
        group = [c for c in self.group(child) if c != "t"]
        self.restart_times.append(now)
        window = [t for t in self.restart_times if t > now - PERIOD_S]
        if len(window) > self.intensity:
            self.escalated = True
            return group
        if "t" in self.group(child):
            self.removed.add("t")  # a temporary sibling is stopped, never restarted
        for member in group:
            self.restarts[member] += 1
        return group


def _max_in_window(times: list[float]) -> int:
    return max((sum(1 for u in times if t - PERIOD_S < u <= t) for t in times), default=0)


def _run(strategy: Strategy, intensity: int, steps: list[tuple[str, float]]) -> None:
    h = Harness()
    try:
        children = [
            h.worker("a"),
            h.worker("b"),
            h.worker("t", restart=Restart.TEMPORARY),
        ]
        tree = h.tree(
            supervisor("root", children, strategy=strategy, intensity=intensity, period_s=PERIOD_S)
        )
        model = Model(strategy, intensity)
        for child, step_s in steps:
            h.clock.advance(step_s)
            if child in model.removed:
                continue
            before = {c: h.recorder.count(ActorRestarted, c) for c in CHILDREN}
            group = model.crash(child, h.clock.monotonic())
            tree.tell(child, Crash())

            def settled(
                events: list[SupervisionEvent],
                group: list[str] = group,
                before: dict[str, int] = before,
            ) -> bool:
                """The supervisor is done with this crash, whatever it decided."""
                if any(isinstance(e, SupervisorEscalated) for e in events):
                    return True
                if not group:
                    return any(isinstance(e, ActorGaveUp) and e.actor == "t" for e in events)
                restarted = [e.actor for e in events if isinstance(e, ActorRestarted)]
                return all(restarted.count(m) > before[m] for m in group)

            h.recorder.wait_for(settled, f"the supervisor to handle the crash of {child}")
            if model.escalated:
                assert tree.wait(5) is not None, "the root should have given up"
                break
            assert h.recorder.count(SupervisorEscalated) == 0, "escalated within intensity"
            sync(tree, "root")

            # Fully alive: every child not removed is running, with the predicted restarts.
            assert tree.exit is None
            snap = tree.snapshot()
            for node in snap.children:
                assert node.status == ("stopped" if node.id in model.removed else "running")
                assert node.restarts == model.restarts[node.id]

        event("escalated" if model.escalated else "survived")
        escalations = h.recorder.of(SupervisorEscalated)
        assert bool(escalations) == model.escalated
        # Intensity is counted on restart decisions: crashes of the permanent children.
        crash_times = [
            when
            for seen, when in zip(h.recorder.events, h.recorder.times, strict=True)
            if isinstance(seen, ActorCrashed) and seen.actor in ("a", "b")
        ]
        if model.escalated:
            assert tree.exit is not None
            assert not tree.exit.clean
            assert _max_in_window(crash_times[:-1]) <= intensity
            last = crash_times[-1]
            assert sum(1 for t in crash_times if last - PERIOD_S < t <= last) == intensity + 1
            assert set(statuses(tree).values()) == {"stopped"}
        else:
            assert _max_in_window(crash_times) <= intensity
            assert tree.exit is None
    finally:
        h.close()


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: a wrong decision costs a multi-second wait per example, and the
    # failing sequence (at most twelve steps) is readable as it is.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    strategy=st.sampled_from(list(Strategy)),
    intensity=st.integers(min_value=1, max_value=3),
    steps=st.lists(
        st.tuples(st.sampled_from(CHILDREN), st.sampled_from(STEPS_S)), min_size=2, max_size=12
    ),
)
def test_random_crash_sequences_respect_restart_intensity(
    strategy: Strategy, intensity: int, steps: list[tuple[str, float]]
) -> None:
    """Whatever the crash timing, the tree either stays fully alive within its intensity or ends
    exactly when it is exceeded.
    """
    _run(strategy, intensity, steps)
