"""The interactive shell on a real pseudo-terminal (pexpect) against a real
``trading-bot run``: completion, history across sessions, live views and Ctrl-C/Ctrl-D.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from e2e_support import Bot, cli_command, start_bot, wait_ready

pytestmark = pytest.mark.slow

TOKEN = "tty-secret-token-987654321"
PROMPT = "trading-bot> "
TIMEOUT_S = 20


@pytest.fixture(scope="module")
def bot() -> Iterator[Bot]:
    """One real ``trading-bot run`` (with an API token, a secret the history must not keep)."""
    base = Path(tempfile.mkdtemp(prefix="tb-tty-", dir="/tmp"))
    started = start_bot(base, None, {"TRADINGBOT_API_TOKEN": TOKEN})
    try:
        wait_ready(started)
        yield started
    finally:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


def shell(bot: Bot, *, sigint_ignored: bool = False) -> Any:
    """``trading-bot shell`` on a fresh pseudo-terminal, at its first prompt; with
    ``sigint_ignored`` started as from a background job (SIGINT ignored)."""
    command = cli_command()
    env = {**bot.env, "TERM": "xterm", "INPUTRC": "/dev/null"}
    child = pexpect.spawn(
        command[0],
        [*command[1:], "shell"],
        env=env,
        cwd=str(bot.home.parent),
        encoding="utf-8",
        timeout=TIMEOUT_S,
        dimensions=(40, 160),
        preexec_fn=_ignore_sigint if sigint_ignored else None,
    )
    child.expect_exact(PROMPT)
    return child


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def leave(child: Any) -> None:
    """Ctrl-D at the prompt leaves with exit status 0."""
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_tab_completes_commands_and_live_actor_names(bot: Bot) -> None:
    """Tab completes a command name, an actor name read from the running tree and a job
    name read from the scheduler."""
    child = shell(bot)
    child.send("sta\t")
    child.expect_exact("state ")
    child.send("heart\t")
    child.expect_exact("heartbeat")
    child.sendline("")
    child.expect("restarts")
    child.expect_exact(PROMPT)
    child.sendline("help crash")
    child.expect_exact("crash ACTOR")
    child.expect_exact(PROMPT)
    child.send("run daily_s\t")
    child.expect_exact("daily_summary ")
    child.sendintr()  # Ctrl-C drops the line unrun
    child.expect_exact(PROMPT)
    leave(child)


def test_history_is_kept_across_sessions_without_secrets(bot: Bot) -> None:
    """A line typed in one session comes back with Up in the next; the history file is
    0600 and never holds a line with the API token."""
    child = shell(bot)
    child.sendline("note remembered-line")
    child.expect_exact(PROMPT)
    child.sendline(f"note the token is {TOKEN}")
    child.expect_exact(PROMPT)
    leave(child)
    history = bot.home / "shell_history"
    assert stat.S_IMODE(os.stat(history).st_mode) == 0o600
    text = history.read_text()
    assert "note remembered-line" in text
    assert TOKEN not in text

    child = shell(bot)
    child.send("\x1b[A")  # Up: the last line kept, the secret one left out
    child.expect_exact("note remembered-line")
    child.sendintr()  # Ctrl-C drops the recalled line, not the shell
    child.expect_exact(PROMPT)
    child.sendline("help note")
    child.expect_exact("note MESSAGE")
    child.expect_exact(PROMPT)
    leave(child)


def test_events_follow_and_watch_tree_run_until_ctrl_c(bot: Bot) -> None:
    """``events --follow`` prints an event recorded elsewhere as it happens and Ctrl-C
    returns to the prompt; ``watch tree`` shows the tree until Ctrl-C."""
    child = shell(bot)
    child.sendline("events --follow SYSTEM")
    child.expect_exact("events --follow SYSTEM")  # the echo, then the backlog and new ones
    result = bot.shell("note followed-from-outside")
    assert result.returncode == 0, result.stderr
    child.expect_exact("followed-from-outside")
    child.sendintr()
    child.expect_exact("(stopped following)")
    child.expect_exact(PROMPT)
    child.sendline("watch tree")
    child.expect_exact("heartbeat")
    child.sendintr()
    child.expect_exact("(stopped watching)")
    child.expect_exact(PROMPT)
    leave(child)


def test_ctrl_c_works_in_a_shell_started_with_sigint_ignored(bot: Bot) -> None:
    """A shell started from a background job (SIGINT ignored, inherited) still takes Ctrl-C:
    it drops the typed line and stops a follow."""
    child = shell(bot, sigint_ignored=True)
    child.send("state")
    child.expect_exact("state")  # the line editor has it
    child.sendintr()
    child.expect_exact(PROMPT)
    child.sendline("events --follow SYSTEM")
    child.expect_exact("events --follow SYSTEM")
    result = bot.shell("note followed-while-ignored")
    assert result.returncode == 0, result.stderr
    child.expect_exact("followed-while-ignored")  # the follow is running
    child.sendintr()
    child.expect_exact("(stopped following)")
    child.expect_exact(PROMPT)
    leave(child)
