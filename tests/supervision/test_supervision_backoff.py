"""Backoff restarts on a ManualClock with a seeded random generator: no sleeping."""

from __future__ import annotations

import random

import pytest
from supervision_support import Crash, Echo, Harness, sync, urn

from tradingbot.supervision import (
    ActorRestarted,
    Backoff,
    RestartScheduled,
    SupervisionTree,
    SupervisorEscalated,
    supervisor,
)

pytestmark = pytest.mark.timeout(30)

BACKOFF = Backoff(min_s=1.0, max_s=5.0, factor=2.0, jitter=0.25, reset_after_s=30.0)


def _tree(h: Harness, backoff: Backoff = BACKOFF, intensity: int = 1) -> SupervisionTree:
    children = [h.worker("gw", backoff=backoff), h.worker("other")]
    return h.tree(supervisor("root", children, intensity=intensity, period_s=1000))


def _crash_and_schedule(h: Harness, tree: SupervisionTree, n: int) -> RestartScheduled:
    """Crash the backoff child and return its n-th (1-based) RestartScheduled event."""
    tree.tell("gw", Crash())
    scheduled: RestartScheduled = h.recorder.wait_count(RestartScheduled, n, "gw")[-1]
    return scheduled


def test_backoff_delays_grow_and_cap_within_the_jitter_band(harness: Harness) -> None:
    """Consecutive restarts wait min_s*factor**n capped at max_s, jittered, not a moment less."""
    h = harness
    tree = _tree(h)
    replica = random.Random(1234)  # the harness seeds the tree's rng with 1234

    for n in range(6):
        scheduled = _crash_and_schedule(h, tree, n + 1)
        base = min(BACKOFF.max_s, BACKOFF.min_s * BACKOFF.factor**n)
        expected = base * (1 + replica.uniform(-BACKOFF.jitter, BACKOFF.jitter))
        assert scheduled.attempt == n + 1
        assert scheduled.delay_s == pytest.approx(expected, abs=1e-3)
        assert base * (1 - BACKOFF.jitter) <= scheduled.delay_s <= base * (1 + BACKOFF.jitter)
        assert tree.snapshot().find("gw").status == "restarting"  # type: ignore[union-attr]

        h.clock.advance(expected - 1e-3)  # just before the delay: still down
        sync(tree, "root")
        assert h.recorder.count(ActorRestarted, "gw") == n
        assert tree.handle("gw").ref is None

        h.clock.advance(2e-3)
        h.recorder.wait_count(ActorRestarted, n + 1, "gw")
    assert h.recorder.count(SupervisorEscalated) == 0
    assert tree.ask("gw", Echo("back")) == "back"


def test_backoff_starts_over_after_a_stable_period(harness: Harness) -> None:
    """A child that stayed up for reset_after_s restarts after the shortest delay again."""
    h = harness
    tree = _tree(h)
    for n in range(1, 4):
        scheduled = _crash_and_schedule(h, tree, n)
        assert scheduled.attempt == n
        h.clock.advance(scheduled.delay_s + 1e-3)
        h.recorder.wait_count(ActorRestarted, n, "gw")

    h.clock.advance(BACKOFF.reset_after_s)  # stable for long enough
    scheduled = _crash_and_schedule(h, tree, 4)

    assert scheduled.attempt == 1
    low, high = BACKOFF.min_s * (1 - BACKOFF.jitter), BACKOFF.min_s * (1 + BACKOFF.jitter)
    assert low <= scheduled.delay_s <= high


def test_backoff_gives_up_after_max_restarts(harness: Harness) -> None:
    """After max_restarts consecutive failures the supervisor escalates instead of scheduling
    another restart.
    """
    h = harness
    tree = _tree(h, Backoff(min_s=1.0, max_s=5.0, jitter=0.0, max_restarts=2), intensity=10)
    for n in range(1, 3):
        scheduled = _crash_and_schedule(h, tree, n)
        h.clock.advance(scheduled.delay_s)
        h.recorder.wait_count(ActorRestarted, n, "gw")

    tree.tell("gw", Crash())

    escalated = h.recorder.wait_count(SupervisorEscalated, 1, "root")[0]
    assert escalated.child == "gw"
    assert h.recorder.count(RestartScheduled, "gw") == 2
    result = tree.wait(5)
    assert result is not None
    assert not result.clean
    assert "'gw'" in result.reason


def test_backoff_restarts_do_not_count_toward_intensity(harness: Harness) -> None:
    """Many backoff restarts leave the supervisor's intensity untouched for its other children."""
    h = harness
    tree = _tree(h, intensity=1)
    for n in range(1, 6):
        scheduled = _crash_and_schedule(h, tree, n)
        h.clock.advance(scheduled.delay_s + 1e-3)
        h.recorder.wait_count(ActorRestarted, n, "gw")
    sync(tree, "root")
    assert tree.exit is None

    other = urn(tree, "other")
    tree.tell("other", Crash())  # the one restart intensity 1 allows
    h.recorder.wait_count(ActorRestarted, 1, "other")
    sync(tree, "root")
    assert tree.exit is None
    assert urn(tree, "other") != other

    tree.tell("other", Crash())  # the second one in the period escalates
    h.recorder.wait_count(SupervisorEscalated, 1, "root")
    assert tree.wait(5) is not None
