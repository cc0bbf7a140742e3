"""Liveness probes: a hung actor is reported, gates health if critical, and recovers."""

from __future__ import annotations

import pytest
from supervision_support import WAIT_S, Echo, Hang, Harness, sync

from tradingbot.supervision import (
    ActorResponsive,
    ActorUnresponsive,
    SupervisionTree,
    supervisor,
)

pytestmark = pytest.mark.timeout(30)

INTERVAL_S = 1.0
DEADLINE_S = 3.0


def _tree(h: Harness) -> SupervisionTree:
    children = [h.worker("hung"), h.worker("calm"), h.worker("lazy", critical=False)]
    return h.tree(
        supervisor("root", children),
        probe_interval_s=INTERVAL_S,
        probe_deadline_s=DEADLINE_S,
    )


def _probe_round(h: Harness, tree: SupervisionTree, responsive: list[str]) -> None:
    """Advance one probe interval and wait until the probes were sent and answered by
    ``responsive``.
    """
    h.clock.advance(INTERVAL_S)
    sync(tree, "root")  # the probe tick was handled: pings are out
    for actor in responsive:
        sync(tree, actor)  # ...and answered


def _hang(h: Harness, tree: SupervisionTree, actor: str) -> None:
    tree.tell(actor, Hang())
    assert h.lab.hanging.wait(WAIT_S)


def test_hung_critical_actor_turns_unresponsive_and_unhealthy_then_recovers(
    harness: Harness,
) -> None:
    """A critical actor that misses its probe deadline is shown unresponsive and fails health until
    it answers again.
    """
    h = harness
    tree = _tree(h)
    _hang(h, tree, "hung")
    _probe_round(h, tree, ["calm", "lazy"])
    assert tree.healthy()

    h.clock.advance(DEADLINE_S)

    event = h.recorder.wait_count(ActorUnresponsive, 1, "hung")[0]
    assert event.waited_s == pytest.approx(DEADLINE_S)
    sync(tree, "root")
    snap = tree.snapshot()
    assert snap.find("hung").status == "unresponsive"  # type: ignore[union-attr]
    assert snap.find("calm").status == "running"  # type: ignore[union-attr]
    assert tree.unresponsive() == ["hung"]
    assert not tree.healthy()
    assert h.recorder.count(ActorUnresponsive) == 1

    h.lab.release_hang.set()
    sync(tree, "hung")  # it has answered the pending probe by now
    _probe_round(h, tree, ["calm", "lazy"])

    recovered = h.recorder.wait_count(ActorResponsive, 1, "hung")[0]
    assert recovered.unresponsive_s == pytest.approx(INTERVAL_S)
    assert tree.snapshot().find("hung").status == "running"  # type: ignore[union-attr]
    assert tree.healthy()
    assert tree.ask("hung", Echo("ok")) == "ok"
    assert tree.snapshot().find("hung").restarts == 0  # type: ignore[union-attr]


def test_hung_non_critical_actor_is_reported_but_keeps_the_tree_healthy(
    harness: Harness,
) -> None:
    """A non-critical actor that hangs shows as unresponsive without failing the health gate."""
    h = harness
    tree = _tree(h)
    _hang(h, tree, "lazy")
    _probe_round(h, tree, ["hung", "calm"])

    h.clock.advance(DEADLINE_S)

    h.recorder.wait_count(ActorUnresponsive, 1, "lazy")
    sync(tree, "root")
    assert tree.snapshot().find("lazy").status == "unresponsive"  # type: ignore[union-attr]
    assert tree.unresponsive() == []
    assert tree.healthy()


def test_actor_answering_within_the_deadline_is_never_reported(harness: Harness) -> None:
    """Actors that answer their probes stay running through many probe rounds."""
    h = harness
    tree = _tree(h)

    for _ in range(10):
        _probe_round(h, tree, ["hung", "calm", "lazy"])

    assert h.recorder.count(ActorUnresponsive) == 0
    assert {n.status for n in tree.snapshot().walk()} == {"running"}
    assert tree.healthy()
