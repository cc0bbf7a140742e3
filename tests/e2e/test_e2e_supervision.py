"""The supervision tree of a real process: observed over HTTP, drilled through the shell."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest
from e2e_support import Bot, find_node, read_run, wait_until

from tradingbot import exitcodes

pytestmark = pytest.mark.slow

Node = Mapping[str, Any]


def wait_for_node(bot: Bot, actor_id: str, predicate: Callable[[Node], bool], what: str) -> Node:
    """Poll ``/api/actors`` until ``actor_id``'s node satisfies ``predicate``; return it."""

    def check() -> Node | None:
        node = bot.node(actor_id)
        return node if predicate(node) else None

    result: Node = wait_until(check, message=f"{actor_id} {what}")
    return result


def test_actors_shows_the_root_supervisor_and_a_beating_heartbeat(bot: Bot) -> None:
    """/api/actors shows the root supervisor running the heartbeat worker; its beats grow."""
    tree = bot.actors()
    assert {"id", "kind", "status", "restarts", "children"} <= tree.keys()
    assert (tree["id"], tree["kind"], tree["status"], tree["restarts"]) == (
        "root",
        "supervisor",
        "running",
        0,
    )
    heartbeat = find_node(tree, "heartbeat")
    assert heartbeat is not None
    assert heartbeat in tree["children"]
    assert (heartbeat["kind"], heartbeat["status"], heartbeat["restarts"]) == (
        "worker",
        "running",
        0,
    )
    assert heartbeat["children"] == []
    assert heartbeat["details"]["run_id"] == bot.run_id

    beats = heartbeat["details"]["beats"]
    wait_for_node(bot, "heartbeat", lambda n: n["details"]["beats"] > beats, "beats to grow")


def test_crash_drill_restarts_the_heartbeat_which_keeps_writing(bot: Bot) -> None:
    """`crash heartbeat` restarts it once (CrashDrill) and it keeps beating in the database."""
    result = bot.shell("crash heartbeat")
    assert result.returncode == 0, result.stderr
    assert "heartbeat" in result.stdout

    node = wait_for_node(
        bot,
        "heartbeat",
        lambda n: n["restarts"] == 1 and n["status"] == "running",
        "to be restarted once",
    )
    assert node["last_failure"]["type"] == "CrashDrill"
    assert bot.actors()["status"] == "running"

    restarted_at = datetime.fromisoformat(node["started_at"])
    wait_until(
        lambda: read_run(bot.database_url, bot.run_id).last_heartbeat > restarted_at,
        message="system_state.last_heartbeat to advance past the restart",
    )
    seen = read_run(bot.database_url, bot.run_id).last_heartbeat
    wait_until(
        lambda: read_run(bot.database_url, bot.run_id).last_heartbeat > seen,
        message="system_state.last_heartbeat to keep advancing",
    )


def test_restart_command_replaces_the_heartbeat(bot: Bot) -> None:
    """`restart heartbeat` exits 0 and the heartbeat's restart count goes up, without a failure."""
    assert bot.node("heartbeat")["restarts"] == 0
    result = bot.shell("restart heartbeat")
    assert result.returncode == 0, result.stderr
    assert "restarted heartbeat" in result.stdout

    node = bot.node("heartbeat")
    assert node["restarts"] == 1
    assert node["status"] == "running"
    assert node["last_failure"] is None
    beats = node["details"]["beats"]
    wait_for_node(bot, "heartbeat", lambda n: n["details"]["beats"] > beats, "to beat again")


def _after_crash(bot: Bot, crash: int) -> str | None:
    """ "restarted" once the heartbeat has come back from crash number ``crash``, "down"
    once the process (or its root supervisor) is going away, else None (keep polling)."""
    if not bot.alive():
        return "down"
    try:
        reply = bot.get("/api/actors")
    except OSError:
        return "down"
    if reply.status != 200 or reply.json()["status"] != "running":
        return "down"
    node = find_node(reply.json(), "heartbeat")
    if node is not None and node["status"] == "running" and node["restarts"] >= crash:
        return "restarted"
    return None


def test_crashes_beyond_the_root_intensity_end_the_process_with_code_3(bot: Bot) -> None:
    """Heartbeat crashes beyond the root's intensity (3 in 5 s) exit 3 with no clean stop."""
    run_id = bot.run_id
    survived = 0
    for crash in range(1, 21):
        bot.shell("crash heartbeat")  # the last one may race the shutdown: any exit code
        outcome = wait_until(
            functools.partial(_after_crash, bot, crash),
            message=f"crash {crash} to be restarted or to end the process",
        )
        if outcome == "down":
            break
        survived = crash
    assert bot.wait() == exitcodes.TREE_FAILED, bot.diagnostics()
    assert survived >= 3, "the root must tolerate 3 restarts within its period"

    gave_up = [
        e
        for e in bot.log_events()
        if (e.get("event") == "supervisor_escalated" and e.get("child") == "heartbeat")
        or (e.get("event") == "tree_gave_up" and "heartbeat" in str(e.get("reason")))
    ]
    assert gave_up, bot.stdout()
    run = read_run(bot.database_url, run_id)
    assert run.clean_stop is False
    assert run.stopped_at is None
