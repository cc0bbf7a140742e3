"""`trading-bot shell` against a real process: mistakes, JSON output, liveness drill, other uids."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from e2e_support import Bot, clean_env, find_node, run_cli, wait_until

pytestmark = pytest.mark.slow

NOBODY = 65534


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("command", ["crash nosuchactor", "state nosuchactor"])
def test_unknown_actor_is_one_error_line_naming_it(sqlite_bot: Bot, command: str) -> None:
    """An unknown actor exits 1 with one stderr line naming it and the known actors."""
    result = sqlite_bot.shell(command)
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert "nosuchactor" in line
    assert "heartbeat" in line
    assert result.stdout == ""


def test_unknown_command_is_one_error_line(sqlite_bot: Bot) -> None:
    """An unknown command exits 1 with one stderr line naming it."""
    result = sqlite_bot.shell("frobnicate heartbeat")
    assert result.returncode == 1
    assert "frobnicate" in _one_error_line(result.stderr)


def test_json_tree_prints_the_tree_as_json(sqlite_bot: Bot) -> None:
    """`shell --json -c tree` prints the supervision tree as JSON, as /api/actors has it."""
    result = sqlite_bot.shell("tree", as_json=True)
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)
    assert (tree["id"], tree["kind"], tree["status"]) == ("root", "supervisor", "running")
    heartbeat = find_node(tree, "heartbeat")
    assert heartbeat is not None
    assert (heartbeat["kind"], heartbeat["status"]) == ("worker", "running")


def test_text_tree_lists_the_actors(sqlite_bot: Bot) -> None:
    """`shell -c tree` prints one line per actor with its kind and status."""
    result = sqlite_bot.shell("tree")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "root [supervisor] running",
        "  event_logger [worker] running",
        "  notifier [worker] running",
        "  heartbeat [worker] running",
        "  risk [worker] running",  # the daily loss limit's monitor
        "  broker [worker] running",  # the broker actor (in-process simulator)
        "  reconciler [worker] running",
        "  scheduler [worker] running",
        "  health [worker] running",
    ]


def test_shell_without_a_running_process_says_so(short_tmp: Path) -> None:
    """With no process running, `shell -c tree` exits 1 saying no trading-bot process is running."""
    result = run_cli(["shell", "-c", "tree"], clean_env(short_tmp / "home"), cwd=short_tmp)
    assert result.returncode == 1
    assert "no trading-bot process is running" in _one_error_line(result.stderr)


def test_hang_drill_shows_the_heartbeat_unresponsive_then_running(sqlite_bot: Bot) -> None:
    """`hang heartbeat 2` makes /api/actors show the heartbeat unresponsive, then running again."""
    result = sqlite_bot.shell("hang heartbeat 2")
    assert result.returncode == 0, result.stderr

    wait_until(
        lambda: sqlite_bot.node("heartbeat")["status"] == "unresponsive",
        message="the heartbeat to be reported unresponsive",
    )
    node = wait_until(
        lambda: (n := sqlite_bot.node("heartbeat"))["status"] == "running" and n,
        message="the heartbeat to be running again",
    )
    assert node["restarts"] == 0  # a hang is reported, not restarted

    def logged() -> set[str]:
        events = {e["event"] for e in sqlite_bot.log_events()}
        return events if {"actor_unresponsive", "actor_responsive"} <= events else set()

    # The status changes first; its log line follows a moment later on another thread.
    wait_until(logged, message="both transitions in the log")


@pytest.mark.parametrize(
    "arguments", ["hang heartbeat", "hang heartbeat soon", "hang heartbeat -1"]
)
def test_hang_with_bad_seconds_is_refused(sqlite_bot: Bot, arguments: str) -> None:
    """`hang` without a positive number of seconds exits 1 with one line and hangs nothing."""
    result = sqlite_bot.shell(arguments)
    assert result.returncode == 1
    _one_error_line(result.stderr)
    assert sqlite_bot.node("heartbeat")["status"] == "running"


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("running a process as another uid needs root")


def _let_others_reach_home(bot: Bot) -> None:
    """Open the test's own folders (not the bot's) so only the bot's modes protect it."""
    for folder in (bot.home.parent.parent, bot.home.parent):
        os.chmod(folder, 0o755)


def test_other_uid_cannot_reach_the_control_socket(sqlite_bot: Bot) -> None:
    """Another uid is refused by the 0700 socket folder (socket 0600) with a permission message."""
    _needs_root()
    run_dir = sqlite_bot.control_socket.parent
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(sqlite_bot.control_socket).st_mode) == 0o600
    _let_others_reach_home(sqlite_bot)

    result = sqlite_bot.shell("crash heartbeat", uid=NOBODY)
    assert result.returncode != 0
    assert "permission denied" in _one_error_line(result.stderr).lower()
    assert sqlite_bot.node("heartbeat")["restarts"] == 0


def test_other_uid_is_refused_even_if_the_socket_is_opened_up(sqlite_bot: Bot) -> None:
    """If an admin loosens the modes, the kernel-reported uid still gets another uid refused."""
    _needs_root()
    _let_others_reach_home(sqlite_bot)
    os.chmod(sqlite_bot.control_socket.parent.parent, 0o711)  # TRADINGBOT_HOME is 0700
    os.chmod(sqlite_bot.control_socket.parent, 0o711)
    os.chmod(sqlite_bot.control_socket, 0o666)

    result = sqlite_bot.shell("crash heartbeat", uid=NOBODY)
    assert result.returncode != 0
    line = _one_error_line(result.stderr)
    assert "permission denied" in line
    assert str(NOBODY) in line
    assert sqlite_bot.node("heartbeat")["restarts"] == 0
    refused = [e for e in sqlite_bot.log_events() if e.get("event") == "control.peer_refused"]
    assert refused
    assert refused[0]["uid"] == NOBODY


def test_bad_numbers_and_drills_on_the_root_are_usage_errors(sqlite_bot: Bot) -> None:
    """Odd digits, huge ids and `crash root` are refused in one line; the process runs on."""
    for command, expected in [
        ("events ²", "LIMIT"),
        ("mail retry ²", "ID must be"),
        ("mail retry 99999999999999999999999", "ID must be"),
        ("mail retry 0", "ID must be"),
        ("crash root", "root supervisor"),
        ("hang root 1", "root supervisor"),
    ]:
        result = sqlite_bot.shell(command)
        assert result.returncode == 1, (command, result)
        line = _one_error_line(result.stderr)
        assert expected in line, (command, line)
        assert "internal error" not in line, (command, line)
    assert sqlite_bot.alive()
    assert sqlite_bot.node("root")["status"] == "running"
    assert "Traceback" not in sqlite_bot.stdout()
    assert not [e for e in sqlite_bot.log_events() if e.get("event") == "control.command_failed"]


def test_a_timed_out_note_retried_with_its_key_is_stored_once(sqlite_bot: Bot) -> None:
    """A note whose answer timed out says the outcome is unknown; a retry with its key
    returns the first outcome, and the note is stored once."""
    hang = sqlite_bot.shell("hang event_logger 3")  # the note waits for the event logger
    assert hang.returncode == 0, hang.stderr
    note = "note retried after a timeout"
    first = run_cli(
        ["shell", "--timeout", "0.5", "--key", "k-4711", "-c", note],
        sqlite_bot.env,
        cwd=sqlite_bot.home.parent,
    )
    assert first.returncode == 1, first
    line = _one_error_line(first.stderr)
    assert "is unknown" in line, line
    assert "--key k-4711" in line, line
    assert "failed" not in line, line

    retry = run_cli(
        ["shell", "--key", "k-4711", "--json", "-c", note],
        sqlite_bot.env,
        cwd=sqlite_bot.home.parent,
    )
    assert retry.returncode == 0, retry.stderr
    event_id = json.loads(retry.stdout)["id"]
    again = run_cli(
        ["shell", "--key", "k-4711", "--json", "-c", note],
        sqlite_bot.env,
        cwd=sqlite_bot.home.parent,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["id"] == event_id

    other = run_cli(
        ["shell", "--key", "k-4711", "-c", "note a different note"],
        sqlite_bot.env,
        cwd=sqlite_bot.home.parent,
    )
    assert other.returncode == 1
    assert "already used" in _one_error_line(other.stderr)

    listed = sqlite_bot.shell("events 50 SYSTEM", as_json=True)
    assert listed.returncode == 0, listed.stderr
    stored = [e for e in json.loads(listed.stdout) if e["message"] == "retried after a timeout"]
    assert [e["id"] for e in stored] == [event_id]
