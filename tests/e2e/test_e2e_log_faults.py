"""A real `trading-bot run` whose log folder disappears (issue #11, item 1).

The fault is real: the process's ``logs`` folder is removed while it runs and a plain file
is put in its place, so the log file can neither be written nor reopened until the
operator removes that file. The process must go on: every shell command gets its own
answer (never a log line), log lines still reach stdout, the failure is said once (a
SYSTEM WARNING event and ``logs:file`` = warn), and the file is written again after.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Mapping
from typing import Any

import pytest
from e2e_support import Bot, BotFactory, wait_until

from tradingbot import exitcodes

pytestmark = pytest.mark.slow

HEALTH_ENV = {"TRADINGBOT_HEALTH_INTERVAL_S": "0.5", "TRADINGBOT_HEALTH_CHECK_TIMEOUT_S": "2"}


def log_check(bot: Bot) -> Mapping[str, Any] | None:
    checks = bot.get("/api/health").json()["checks"].get("logs:file")
    return None if not checks else checks[0]


def log_file_events(bot: Bot) -> list[Mapping[str, Any]]:
    events = bot.get("/api/events?type=SYSTEM&limit=500").json()["events"]
    return [e for e in events if str(e["context"].get("event", "")).startswith("log_file_")]


def test_a_removed_log_folder_is_survived_and_said_once(bot_factory: BotFactory) -> None:
    """Removing the log folder never ends the process nor mixes log lines into shell answers:
    logging goes on to stdout, a SYSTEM WARNING and logs:file=warn say so once, and the log
    file is written again once the folder can be recreated."""
    bot = bot_factory(extra_env=HEALTH_ENV)
    logs = bot.home / "logs"
    assert (log_check(bot) or {}).get("status") == "pass"

    shutil.rmtree(logs)  # the plain removal: the folder and file are simply recreated
    assert bot.shell("tree").returncode == 0
    wait_until(lambda: (logs / "trading-bot.log").exists(), message="the log file to be back")
    wait_until(lambda: bot.get("/api/health").status == 200, message="health to pass again")

    shutil.rmtree(logs)
    logs.write_text("in the way\n")  # the reopen fails until the operator removes this

    for n in range(2):  # new control-socket connections while the file is failing
        reply = bot.shell("tree", as_json=True)
        assert reply.returncode == 0, (reply.stdout, reply.stderr, bot.diagnostics())
        answer = json.loads(reply.stdout)
        assert answer["id"] == "root", answer
        note = bot.shell(f"note log folder gone {n}")
        assert note.returncode == 0, (note.stdout, note.stderr)
        assert note.stdout.startswith("recorded note "), note.stdout

    check = wait_until(
        lambda: (c := log_check(bot)) and c["status"] == "warn" and c,
        message="logs:file to warn",
    )
    assert "cannot be written" in check["output"], check
    assert bot.get("/api/health").status == 200
    failed = wait_until(lambda: log_file_events(bot), message="the SYSTEM event")
    assert [(e["severity"], e["context"]["event"]) for e in failed] == [
        ("WARNING", "log_file_failed")
    ]
    assert bot.alive(), bot.diagnostics()
    assert any(e.get("event") == "log folder gone 1" for e in bot.log_events()), (
        "log lines must still reach stdout"
    )

    logs.unlink()
    wait_until(  # the retry backoff is at most 10 s
        lambda: (c := log_check(bot)) and c["status"] == "pass",
        30.0,
        "logs:file to pass again",
    )
    assert bot.shell("note log folder back").returncode == 0
    wait_until(
        lambda: "log folder back" in (logs / "trading-bot.log").read_text(),
        message="the log file to be written again",
    )
    recovered = [  # an INFO event: in the log and the live stream, not stored by default
        e for e in bot.log_events() if e.get("context", {}).get("event") == "log_file_recovered"
    ]
    assert len(recovered) == 1, bot.stdout()
    assert [e["context"]["event"] for e in log_file_events(bot)] == ["log_file_failed"]

    bot.signal(signal.SIGTERM)
    assert bot.wait() == exitcodes.OK, bot.diagnostics()
    assert "Traceback" not in bot.stdout() + bot.stderr()
