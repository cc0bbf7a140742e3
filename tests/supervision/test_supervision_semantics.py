"""OTP semantics of the supervision tree, with real pykka actors.

Restart table (strategy x restart type), restart intensity and escalation, ordered
start and reverse stop, start failures, the three failure paths (tell, ask, proxy),
drills, fatal errors, messages across restarts and the snapshot.
"""

from __future__ import annotations

import threading
from datetime import datetime

import pykka
import pytest
from supervision_support import (
    WAIT_S,
    Count,
    Crash,
    Echo,
    ExitNormally,
    Fatal,
    Harness,
    WhoAmI,
    statuses,
    sync,
    urn,
    wait_until,
)

from tradingbot.supervision import (
    ActorCrashed,
    ActorExited,
    ActorGaveUp,
    ActorRestarted,
    ActorStarted,
    ActorUnavailable,
    FatalError,
    MessagesDropped,
    Restart,
    StartupError,
    Strategy,
    SupervisionTree,
    SupervisorEscalated,
    render_tree,
    supervisor,
)
from tradingbot.supervision._pykka_compat import Envelope
from tradingbot.supervision.handle import IncarnationEnvelope

pytestmark = pytest.mark.timeout(30)


# -- the restart table ------------------------------------------------------------------

GROUP = {
    Strategy.ONE_FOR_ONE: ["b"],
    Strategy.ONE_FOR_ALL: ["a", "b", "c"],
    Strategy.REST_FOR_ONE: ["b", "c"],
}


def _table_tree(h: Harness, strategy: Strategy, restart: Restart) -> SupervisionTree:
    children = [h.worker("a"), h.worker("b", restart=restart), h.worker("c")]
    return h.tree(supervisor("root", children, strategy=strategy, intensity=10))


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("restart", list(Restart))
def test_crash_restarts_the_strategy_group_by_restart_type(
    harness: Harness, strategy: Strategy, restart: Restart
) -> None:
    """A crashed child comes back with its strategy group unless it is temporary; others keep
    running untouched.
    """
    tree = _table_tree(harness, strategy, restart)
    before = {i: urn(tree, i) for i in "abc"}

    tree.tell("b", Crash())

    if restart is Restart.TEMPORARY:
        harness.recorder.wait_count(ActorGaveUp, 1, "b")
        expected: list[str] = []
    else:
        expected = GROUP[strategy]
        for actor in expected:
            harness.recorder.wait_count(ActorRestarted, 1, actor)
    sync(tree, "root")

    snap = tree.snapshot()
    for actor in "abc":
        node = snap.find(actor)
        assert node is not None
        if actor in expected:
            assert node.restarts == 1
            assert node.status == "running"
            assert urn(tree, actor) != before[actor], f"{actor} should be a new pykka actor"
        elif actor == "b":  # temporary: gone for good
            assert node.status == "stopped"
            assert node.restarts == 0
            assert tree.handle("b").ref is None
        else:
            assert node.restarts == 0
            assert urn(tree, actor) == before[actor], f"{actor} should not have been touched"
    # Siblings stopped for the group restart got an orderly teardown, in reverse order.
    siblings = [a for a in reversed(expected) if a != "b"]
    assert harness.lab.teardowns() == [(a, "restart") for a in siblings]
    assert harness.recorder.count(SupervisorEscalated) == 0


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("restart", list(Restart))
def test_normal_exit_restarts_only_permanent_children(
    harness: Harness, strategy: Strategy, restart: Restart
) -> None:
    """A child that stops itself is restarted only if permanent; transient and temporary ones are
    let go.
    """
    tree = _table_tree(harness, strategy, restart)
    before = {i: urn(tree, i) for i in "abc"}

    tree.tell("b", ExitNormally())

    harness.recorder.wait_count(ActorExited, 1, "b")
    if restart is Restart.PERMANENT:
        expected = GROUP[strategy]
        for actor in expected:
            harness.recorder.wait_count(ActorRestarted, 1, actor)
    else:
        gave_up = harness.recorder.wait_count(ActorGaveUp, 1, "b")
        assert "exited normally" in gave_up[0].reason
        expected = []
    sync(tree, "root")

    for actor in "abc":
        node = tree.snapshot().find(actor)
        assert node is not None
        if actor in expected:
            assert (node.status, node.restarts) == ("running", 1)
            assert urn(tree, actor) != before[actor]
        elif actor == "b":
            assert (node.status, node.restarts) == ("stopped", 0)
        else:
            assert (node.status, node.restarts) == ("running", 0)
            assert urn(tree, actor) == before[actor]
    assert ("b", "stopped") in harness.lab.teardowns()  # its own stop ran teardown


def test_temporary_sibling_is_not_restarted_by_a_group_restart(harness: Harness) -> None:
    """Under one_for_all a temporary sibling stopped for a group restart stays stopped."""
    h = harness
    children = [h.worker("a"), h.worker("t", restart=Restart.TEMPORARY), h.worker("c")]
    tree = h.tree(supervisor("root", children, strategy=Strategy.ONE_FOR_ALL))

    tree.tell("a", Crash())

    h.recorder.wait_count(ActorRestarted, 1, "c")
    sync(tree, "root")
    assert statuses(tree) == {"root": "running", "a": "running", "t": "stopped", "c": "running"}
    assert h.recorder.of(ActorGaveUp, "t")


# -- intensity and escalation -----------------------------------------------------------


def test_intensity_tolerates_exactly_intensity_restarts_then_escalates(harness: Harness) -> None:
    """Three restarts in the period are absorbed; the fourth makes the root give up and the tree
    exit.
    """
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a", "b"]), intensity=3, period_s=10))

    for n in range(1, 4):
        tree.tell("a", Crash())
        h.recorder.wait_count(ActorRestarted, n, "a")
    sync(tree, "root")
    assert tree.exit is None
    assert tree.snapshot().find("a").restarts == 3  # type: ignore[union-attr]

    tree.tell("a", Crash())

    escalated = h.recorder.wait_count(SupervisorEscalated, 1, "root")[0]
    assert (escalated.child, escalated.restarts) == ("a", 4)
    result = tree.wait(WAIT_S)
    assert result is not None
    assert result.clean is False
    assert "'a'" in result.reason
    assert not tree.healthy()
    assert statuses(tree) == {"root": "stopped", "a": "stopped", "b": "stopped"}


def test_restarts_spread_beyond_the_period_do_not_escalate(harness: Harness) -> None:
    """Crashes that never put more than `intensity` restarts in one period are absorbed
    indefinitely.
    """
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"]), intensity=2, period_s=10))

    for n in range(1, 7):
        tree.tell("a", Crash())
        h.recorder.wait_count(ActorRestarted, n, "a")
        h.clock.advance(6)  # at most two restarts in any 10 s window
    sync(tree, "root")
    assert tree.exit is None

    # Sharp edge: the last restart was 6 s ago, so two more now make three in the window.
    tree.tell("a", Crash())
    h.recorder.wait_count(ActorRestarted, 7, "a")
    tree.tell("a", Crash())
    h.recorder.wait_count(SupervisorEscalated, 1, "root")
    assert tree.wait(WAIT_S) is not None


def test_escalation_stops_children_in_reverse_start_order(harness: Harness) -> None:
    """A supervisor that gives up tears its remaining children down last-started first."""
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a", "b", "c", "d"]), intensity=1, period_s=10))

    tree.tell("a", Crash())
    h.recorder.wait_count(ActorRestarted, 1, "a")
    tree.tell("a", Crash())

    assert tree.wait(WAIT_S) is not None
    assert h.lab.teardowns() == [("d", "escalation"), ("c", "escalation"), ("b", "escalation")]


def test_child_supervisor_escalation_is_handled_by_its_parent(harness: Harness) -> None:
    """A nested supervisor that gives up is restarted by its parent with fresh children; its
    siblings keep running.
    """
    h = harness
    sub = supervisor("sub", h.workers(["s1", "s2"]), intensity=1, period_s=10)
    tree = h.tree(supervisor("root", [h.worker("x"), sub, h.worker("y")], intensity=3))
    before = {i: urn(tree, i) for i in ("x", "sub", "s1", "s2", "y")}

    tree.tell("s1", Crash())
    h.recorder.wait_count(ActorRestarted, 1, "s1")
    tree.tell("s1", Crash())

    escalated = h.recorder.wait_count(SupervisorEscalated, 1, "sub")[0]
    assert (escalated.child, escalated.supervisor) == ("s1", "root")
    h.recorder.wait_count(ActorRestarted, 1, "sub")
    sync(tree, "root")
    assert tree.exit is None
    assert h.recorder.of(ActorCrashed, "sub")[0].failure.type == "Escalation"
    for actor in ("sub", "s1", "s2"):
        assert urn(tree, actor) != before[actor]
    for actor in ("x", "y"):
        assert urn(tree, actor) == before[actor]
    assert tree.snapshot().find("sub").restarts == 1  # type: ignore[union-attr]
    assert set(statuses(tree).values()) == {"running"}
    assert ("s2", "escalation") in h.lab.teardowns()


def test_root_escalation_ends_the_tree_and_refuses_messages(harness: Harness) -> None:
    """After the root gives up, tree.exit names the failing child and asks get ActorUnavailable."""
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a", "b"]), intensity=0))

    tree.tell("b", Crash())

    result = tree.wait(WAIT_S)
    assert result is not None
    assert not result.clean
    assert "'b'" in result.reason
    assert "intensity" in result.reason
    with pytest.raises(ActorUnavailable):
        tree.ask("a", Echo(1), timeout_s=WAIT_S)


# -- start and stop ---------------------------------------------------------------------


def test_children_start_in_order_and_stop_in_reverse_on_shutdown(harness: Harness) -> None:
    """Children come up one after another in spec order and shut down in reverse with reason
    shutdown.
    """
    h = harness
    sub = supervisor("sub", h.workers(["s1", "s2"]))
    tree = h.tree(supervisor("root", [h.worker("a"), sub, h.worker("b")]))

    assert h.lab.setups() == ["a", "s1", "s2", "b"]
    started = [e.actor for e in h.recorder.of(ActorStarted)]
    assert started == ["a", "s1", "s2", "sub", "b"]  # a supervisor is up once its children are

    tree.stop()

    assert h.lab.teardowns() == [
        ("b", "shutdown"),
        ("s2", "shutdown"),
        ("s1", "shutdown"),
        ("a", "shutdown"),
    ]
    assert tree.exit is not None
    assert tree.exit.clean
    assert set(statuses(tree).values()) == {"stopped"}
    h.assert_nothing_left()


def test_start_failure_names_the_child_and_unwinds_started_children(harness: Harness) -> None:
    """If one child cannot start, the tree does not start, and those already up are stopped newest
    first.
    """
    h = harness
    h.lab.plan("c", fail_times=-1)
    root = supervisor("root", h.workers(["a", "b", "c", "d"]))

    with pytest.raises(StartupError, match=r"'c'.*cannot start"):
        h.tree(root)

    assert h.lab.setups() == ["a", "b", "c"]  # d was never attempted
    assert [actor for actor, _ in h.lab.teardowns()] == ["b", "a"]


def test_start_failure_in_a_nested_supervisor_names_both(harness: Harness) -> None:
    """A grandchild that cannot start fails the whole start; the message leads from the subtree to
    the child.
    """
    h = harness
    h.lab.plan("s2", fail_times=-1)
    sub = supervisor("sub", h.workers(["s1", "s2"]))

    with pytest.raises(StartupError, match=r"'sub'.*'s2'"):
        h.tree(supervisor("root", [h.worker("a"), sub, h.worker("b")]))

    assert [actor for actor, _ in h.lab.teardowns()] == ["s1", "a"]


def test_setup_hanging_past_start_timeout_fails_the_start(harness: Harness) -> None:
    """A child whose setup does not finish within start_timeout_s is abandoned and the start fails
    naming it.
    """
    h = harness
    plan = h.lab.plan("slow", block_from=1)
    root = supervisor("root", [h.worker("a"), h.worker("slow", start_timeout_s=0.2)])

    with pytest.raises(StartupError, match=r"'slow'.*did not finish within"):
        h.tree(root)

    assert plan.entered.is_set()
    assert [actor for actor, _ in h.lab.teardowns()] == ["a"]
    plan.release.set()  # the abandoned thread finishes; the fixture checks it is gone


def test_subtree_abandoned_after_its_start_timeout_does_not_leak_actors(
    harness: Harness,
) -> None:
    """A nested supervisor that starts too late is abandoned and the children it started stop."""
    h = harness
    plan = h.lab.plan("slow", block_from=1)
    sub = supervisor("sub", [h.worker("s1"), h.worker("slow")], start_timeout_s=0.2)

    with pytest.raises(StartupError, match=r"'sub'.*did not finish within"):
        h.tree(supervisor("root", [h.worker("a"), sub]))
    plan.release.set()  # sub's setup now completes, after its parent gave up on it

    wait_until(lambda: len(h.lab.teardowns()) == 3, "the abandoned subtree to be torn down")
    assert h.lab.teardowns() == [("a", "escalation"), ("slow", "restart"), ("s1", "restart")]
    h.assert_nothing_left()


def test_tree_start_timeout_does_not_leak_actors(harness: Harness) -> None:
    """A tree whose start times out leaves no actor behind once the slow setup finishes."""
    h = harness
    plan = h.lab.plan("slow", block_from=1)
    root = supervisor("root", [h.worker("a"), h.worker("slow")], start_timeout_s=0.2)

    with pytest.raises(StartupError, match="did not start within"):
        h.tree(root)
    plan.release.set()

    wait_until(lambda: len(h.lab.teardowns()) == 2, "the abandoned tree to be torn down")
    assert [actor for actor, _ in h.lab.teardowns()] == ["slow", "a"]
    h.assert_nothing_left()


def test_setup_failing_during_restart_counts_as_a_failure(harness: Harness) -> None:
    """A replacement that cannot start is retried like a crash and, if it never starts, the
    supervisor gives up.
    """
    h = harness
    h.lab.plan("b", fail_after=1, fail_times=-1)  # first start works, every restart fails
    tree = h.tree(supervisor("root", h.workers(["a", "b"]), intensity=2, period_s=10))

    tree.tell("b", Crash())

    escalated = h.recorder.wait_count(SupervisorEscalated, 1, "root")[0]
    assert escalated.child == "b"
    crashes = h.recorder.of(ActorCrashed, "b")
    assert [c.failure.type for c in crashes] == [
        "RuntimeError",
        "ConnectionError",
        "ConnectionError",
    ]
    assert h.lab.setups().count("b") == 3
    result = tree.wait(WAIT_S)
    assert result is not None
    assert not result.clean
    assert "'b'" in result.reason


def test_setup_failing_once_during_restart_recovers(harness: Harness) -> None:
    """A replacement that fails its first start is retried and comes up, within the intensity."""
    h = harness
    h.lab.plan("b", fail_after=1, fail_times=1)
    tree = h.tree(supervisor("root", h.workers(["a", "b"]), intensity=3, period_s=10))

    tree.tell("b", Crash())

    h.recorder.wait_count(ActorRestarted, 1, "b")
    sync(tree, "root")
    node = tree.snapshot().find("b")
    assert node is not None
    assert (node.status, node.restarts) == ("running", 1)
    assert [c.failure.type for c in h.recorder.of(ActorCrashed, "b")] == [
        "RuntimeError",
        "ConnectionError",
    ]
    assert tree.ask("b", Echo("up")) == "up"


# -- failure paths, drills, operator restart -------------------------------------------


def test_tell_failure_crashes_and_restarts_the_actor(harness: Harness) -> None:
    """An exception in a handler reached by tell is reported with its traceback and the actor is
    replaced.
    """
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"])))
    old = urn(tree, "a")

    tree.tell("a", Crash())

    crashed = h.recorder.wait_count(ActorCrashed, 1, "a")[0]
    assert crashed.failure.type == "RuntimeError"
    assert "on_receive" in crashed.failure.traceback
    h.recorder.wait_count(ActorRestarted, 1, "a")
    assert urn(tree, "a") != old
    assert tree.ask("a", Echo(7)) == 7


def test_ask_failure_reaches_the_caller_and_replaces_the_actor(harness: Harness) -> None:
    """The asker gets the handler's exception and the actor (state possibly broken) is replaced."""
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"])))
    old = urn(tree, "a")

    with pytest.raises(RuntimeError, match="crash requested in a"):
        tree.ask("a", Crash(), timeout_s=WAIT_S)

    restarted = h.recorder.wait_count(ActorRestarted, 1, "a")[0]
    assert "RuntimeError" in restarted.reason
    assert urn(tree, "a") != old
    assert tree.ask("a", WhoAmI()) == urn(tree, "a")


def test_proxy_call_failure_reaches_the_caller_and_replaces_the_actor(harness: Harness) -> None:
    """A failing proxy call raises in the caller and the actor is replaced, like an ask."""
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"])))
    ref = tree.handle("a").ref
    assert ref is not None

    with pytest.raises(ValueError, match="proxy call failed"):
        ref.proxy().fail().get(timeout=WAIT_S)

    h.recorder.wait_count(ActorRestarted, 1, "a")
    assert urn(tree, "a") != ref.actor_urn
    assert tree.snapshot().find("a").last_failure.type == "ValueError"  # type: ignore[union-attr]


def test_crash_drill_restarts_the_actor(harness: Harness) -> None:
    """tree.crash raises CrashDrill inside the actor, which is then restarted like any crash."""
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"])))
    old = urn(tree, "a")

    tree.crash("a")

    crashed = h.recorder.wait_count(ActorCrashed, 1, "a")[0]
    assert crashed.failure.type == "CrashDrill"
    h.recorder.wait_count(ActorRestarted, 1, "a")
    assert urn(tree, "a") != old


def test_crash_drill_on_a_supervisor_restarts_its_subtree(harness: Harness) -> None:
    """Crashing a nested supervisor stops its children and its parent restarts the whole subtree."""
    h = harness
    sub = supervisor("sub", h.workers(["s1", "s2"]))
    tree = h.tree(supervisor("root", [h.worker("a"), sub]))
    before = {i: urn(tree, i) for i in ("a", "sub", "s1", "s2")}

    tree.crash("sub")

    h.recorder.wait_count(ActorRestarted, 1, "sub")
    sync(tree, "root")
    assert [i for i in ("a", "sub", "s1", "s2") if urn(tree, i) == before[i]] == ["a"]
    assert h.lab.teardowns() == [("s2", "restart"), ("s1", "restart")]


def test_operator_restart_replaces_the_actor_without_counting_as_failure(
    harness: Harness,
) -> None:
    """tree.restart gives a fresh actor and a higher restart count but never uses up intensity."""
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a", "b"]), intensity=1, period_s=10))
    old = urn(tree, "a")

    for n in range(1, 4):
        result = tree.restart("a")
        assert result["restarted"] is True
        assert result["restarts"] == n
    assert urn(tree, "a") != old
    assert h.lab.teardowns() == [("a", "restart")] * 3
    assert {e.reason for e in h.recorder.of(ActorRestarted, "a")} == {"operator restart"}

    tree.tell("a", Crash())  # one real failure is still within intensity 1
    h.recorder.wait_count(ActorRestarted, 4, "a")
    sync(tree, "root")
    assert tree.exit is None
    assert tree.snapshot().find("a").restarts == 4  # type: ignore[union-attr]


def test_operator_restart_of_a_child_gone_for_good_is_refused(harness: Harness) -> None:
    """Restarting a temporary child that already exited is refused; the supervisor keeps running."""
    h = harness
    tree = h.tree(supervisor("root", [h.worker("t", restart=Restart.TEMPORARY), h.worker("a")]))
    root_urn = urn(tree, "root")
    tree.tell("t", ExitNormally())
    h.recorder.wait_count(ActorGaveUp, 1, "t")

    result = tree.restart("t")

    assert result["restarted"] is False
    assert "for good" in result["error"]
    assert urn(tree, "root") == root_urn
    assert tree.exit is None
    assert tree.ask("a", Echo("still here")) == "still here"


def test_actor_stopped_from_outside_is_a_normal_exit(harness: Harness) -> None:
    """An actor stopped by someone else's ref.stop() counts as a normal exit: a permanent one comes
    back.
    """
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"])))
    ref = tree.handle("a").ref
    assert ref is not None

    ref.stop()

    h.recorder.wait_count(ActorExited, 1, "a")
    h.recorder.wait_count(ActorRestarted, 1, "a")
    assert urn(tree, "a") != ref.actor_urn
    assert h.recorder.count(ActorCrashed) == 0


# -- fatal errors -----------------------------------------------------------------------


def test_system_exit_in_a_handler_ends_the_tree_without_hanging(harness: Harness) -> None:
    """SystemExit in an actor stops every actor, emits FatalError and ends the tree uncleanly naming
    the actor.
    """
    h = harness
    sub = supervisor("sub", h.workers(["s1"]))
    tree = h.tree(supervisor("root", [h.worker("a"), sub, h.worker("b")]))

    tree.tell("b", Fatal())

    fatal = h.recorder.wait_count(FatalError, 1, "b")[0]
    assert fatal.failure.type == "SystemExit"
    result = tree.wait(WAIT_S)
    assert result is not None
    assert not result.clean
    assert "'b'" in result.reason
    assert "SystemExit" in result.reason
    assert not tree.healthy()
    h.assert_nothing_left()  # pykka stopped every actor
    assert h.recorder.count(ActorRestarted) == 0  # nothing is restarted while dying


# -- messages across restarts -----------------------------------------------------------


def test_tells_during_a_restart_are_handled_once_by_the_replacement(harness: Harness) -> None:
    """Messages sent by name while an actor is being replaced wait, then all reach the replacement
    in order.
    """
    h = harness
    plan = h.lab.plan("a", block_from=2)  # the replacement's setup waits for us
    tree = h.tree(supervisor("root", h.workers(["a"])))

    tree.tell("a", Crash())
    assert plan.entered.wait(WAIT_S)
    for n in range(500):
        tree.tell("a", Count(n))
    assert tree.snapshot().find("a").mailbox == 500  # type: ignore[union-attr]
    plan.release.set()

    handled = h.lab.wait_handled(500)
    sync(tree, "a")
    assert [n for _, _, n in h.lab.handled] == list(range(500))
    assert {u for _, u, _ in handled} == {urn(tree, "a")}


def test_messages_queued_behind_a_crash_reach_the_replacement(harness: Harness) -> None:
    """Messages already waiting in a crashing actor's inbox are handed to its replacement, none
    lost.
    """
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"])))
    ref = tree.handle("a").ref
    assert ref is not None

    tree.tell("a", Crash())
    for n in range(1000):
        tree.tell("a", Count(n))

    h.lab.wait_handled(1000)
    sync(tree, "a")
    assert sorted(n for _, _, n in h.lab.handled) == list(range(1000))
    assert ref.actor_urn not in {u for _, u, _ in h.lab.handled}


def test_tells_racing_repeated_crashes_are_never_lost(harness: Harness) -> None:
    """Senders hammering an actor that keeps crashing get every message handled exactly once."""
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"]), intensity=1000))
    senders, per_sender, crash_every = 3, 1000, 100

    def send(k: int) -> None:
        for i in range(per_sender):
            tree.tell("a", Count(k * per_sender + i))
            if i % crash_every == crash_every - 1:
                tree.tell("a", Crash())

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 4)

    total = senders * per_sender
    h.lab.wait_handled(total)
    h.recorder.wait_count(ActorRestarted, total // crash_every, "a")
    sync(tree, "a")
    handled = sorted(n for _, _, n in h.lab.handled)
    assert handled == list(range(total))
    assert tree.snapshot().find("a").dropped_messages == 0  # type: ignore[union-attr]


def test_message_arriving_just_after_a_crash_reaches_the_replacement(harness: Harness) -> None:
    """A tell or ask whose sender saw the actor alive just before it crashed is not lost: the
    replacement handles it.
    """
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"])))
    old = tree.handle("a").ref
    assert old is not None
    tree.tell("a", Crash())
    h.recorder.wait_count(ActorRestarted, 1, "a")

    # What ActorRef.tell / ask do after their liveness check passed: put into that inbox.
    old.actor_inbox.put(Envelope(Count(1)))
    reply: pykka.ThreadingFuture[object] = pykka.ThreadingFuture()
    old.actor_inbox.put(Envelope(WhoAmI(), reply_to=reply))

    assert reply.get(timeout=WAIT_S) == urn(tree, "a")
    assert h.lab.wait_handled(1) == [("a", urn(tree, "a"), 1)]


def test_a_tick_for_a_crashed_incarnation_is_not_handed_to_the_replacement(
    harness: Harness,
) -> None:
    """A timer tick or worker reply told with tell_incarnation that arrives after its
    incarnation crashed is discarded: the replacement runs its own timers."""
    h = harness
    tree = h.tree(supervisor("root", h.workers(["a"])))
    old = tree.handle("a").ref
    assert old is not None
    tree.tell("a", Crash())
    h.recorder.wait_count(ActorRestarted, 1, "a")

    old.actor_inbox.put(IncarnationEnvelope(Count(1)))  # what tell_incarnation puts
    old.actor_inbox.put(Envelope(Count(2)))  # an ordinary tell still reaches the replacement

    assert h.lab.wait_handled(1) == [("a", urn(tree, "a"), 2)]
    sync(tree, "a")
    assert [n for _, _, n in h.lab.handled] == [2]


def test_a_tick_for_a_stopped_actor_is_not_reported_as_a_dropped_message(
    harness: Harness,
) -> None:
    """An orderly stop does not raise an ERROR event (MessagesDropped) about its own timer
    ticks or worker replies; an ordinary message to the stopped actor still is one."""
    h = harness
    tree = h.tree(supervisor("root", [h.worker("t", restart=Restart.TEMPORARY)]))
    old = tree.handle("t").ref
    assert old is not None
    tree.tell("t", Crash())
    h.recorder.wait_count(ActorGaveUp, 1, "t")

    old.actor_inbox.put(IncarnationEnvelope(Count(1)))
    assert h.recorder.of(MessagesDropped, "t") == []
    old.actor_inbox.put(Envelope(Count(2)))
    assert sum(e.count for e in h.recorder.of(MessagesDropped, "t")) == 1
    assert h.lab.handled == []


def test_ask_during_a_restart_is_answered_by_the_replacement(harness: Harness) -> None:
    """An ask sent while the actor is being replaced waits and is answered by the replacement."""
    h = harness
    plan = h.lab.plan("a", block_from=2)
    tree = h.tree(supervisor("root", h.workers(["a"])))
    old = urn(tree, "a")
    answers: list[object] = []

    tree.tell("a", Crash())
    assert plan.entered.wait(WAIT_S)
    asker = threading.Thread(target=lambda: answers.append(tree.ask("a", WhoAmI(), WAIT_S)))
    asker.start()
    wait_until(lambda: tree.handle("a").pending == 1, "the ask to be parked")
    plan.release.set()
    asker.join(WAIT_S)

    assert answers == [urn(tree, "a")]
    assert answers[0] != old


def test_messages_for_a_gone_temporary_child_are_counted_as_dropped(harness: Harness) -> None:
    """Tells to a temporary child that is gone are counted and reported; asks fail with
    ActorUnavailable.
    """
    h = harness
    tree = h.tree(supervisor("root", [h.worker("t", restart=Restart.TEMPORARY)]))
    tree.tell("t", Crash())
    h.recorder.wait_count(ActorGaveUp, 1, "t")

    for n in range(3):
        tree.tell("t", Count(n))
    with pytest.raises(ActorUnavailable):
        tree.ask("t", Echo(1), timeout_s=WAIT_S)

    dropped = h.recorder.of(MessagesDropped, "t")
    assert sum(e.count for e in dropped) == 4
    assert tree.snapshot().find("t").dropped_messages == 4  # type: ignore[union-attr]
    assert h.lab.handled == []


# -- snapshot ---------------------------------------------------------------------------


def test_snapshot_shows_each_actor_with_its_failures(harness: Harness) -> None:
    """The snapshot has every actor with kind, status, restarts, last failure, start time, mailbox
    and children.
    """
    h = harness
    sub = supervisor("sub", h.workers(["s1"]))
    tree = h.tree(supervisor("root", [h.worker("a"), sub]))
    tree.tell("a", Crash())
    h.recorder.wait_count(ActorRestarted, 1, "a")

    snap = tree.snapshot()

    assert (snap.id, snap.kind, snap.status) == ("root", "supervisor", "running")
    assert [c.id for c in snap.children] == ["a", "sub"]
    assert [c.id for c in snap.children[1].children] == ["s1"]
    a = snap.children[0]
    assert (a.kind, a.status, a.restarts, a.mailbox) == ("worker", "running", 1, 0)
    assert a.last_failure is not None
    assert a.last_failure.type == "RuntimeError"
    assert a.last_failure.message == "crash requested in a"
    assert "on_receive" in a.last_failure.traceback
    assert a.started_at is not None
    assert datetime.fromisoformat(a.started_at).tzinfo is not None
    assert snap.children[1].last_failure is None
    as_dict = snap.to_dict()
    assert set(as_dict) >= {
        "id",
        "kind",
        "status",
        "restarts",
        "last_failure",
        "started_at",
        "mailbox",
        "children",
    }
    assert as_dict["children"][0]["last_failure"]["type"] == "RuntimeError"
    assert "a [worker] running restarts=1" in render_tree(snap)


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
def test_group_member_failing_to_restart_is_retried_with_its_group(
    harness: Harness, strategy: Strategy
) -> None:
    """A group member that fails to start again is retried, and the children after it still come
    back.
    """
    h = harness
    h.lab.plan("t", fail_after=1, fail_times=1)  # its first restart fails, the next works
    children = [h.worker("a"), h.worker("t", restart=Restart.TRANSIENT), h.worker("c")]
    tree = h.tree(supervisor("root", children, strategy=strategy, intensity=5))

    tree.tell("a", Crash())

    h.recorder.wait_count(ActorRestarted, 1, "t")
    h.recorder.wait_count(ActorRestarted, 1, "c")
    sync(tree, "root")
    assert set(statuses(tree).values()) == {"running"}
    assert [c.failure.type for c in h.recorder.of(ActorCrashed, "t")] == ["ConnectionError"]
    assert tree.exit is None
