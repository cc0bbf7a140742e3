"""The scheduler in a real `trading-bot run`: a missed daily summary goes out once, ever."""

from __future__ import annotations

import email
import email.policy
import json
import re
import signal
from datetime import date

import pytest
from e2e_support import BotFactory, wait_until

from tradingbot import exitcodes
from tradingbot.storage import Database

pytestmark = pytest.mark.slow

# Tuesday 2026-03-10 at 16:45 New York time: the 16:30 summary slot has just passed.
AFTER_THE_SUMMARY = {"TRADINGBOT_SCHEDULER_CLOCK": "2026-03-10T16:45:00-04:00"}


def test_a_missed_summary_is_sent_once_across_two_restarts(bot_factory: BotFactory) -> None:
    """Started after 16:30 ET on a session, the bot mails the day's summary once, with the
    broker's equity and positions recorded for the date; a clean restart and a kill -9
    restart do not mail it again, and health passes."""
    first = bot_factory(None, AFTER_THE_SUMMARY)
    outbox = first.home / "outbox"

    def summaries() -> list[str]:
        return [
            text
            for path in sorted(outbox.glob("*.eml"))
            if "Daily summary 2026-03-10" in (text := path.read_text(errors="replace"))
        ]

    [mail] = wait_until(summaries, message="the daily summary e-mail")
    assert "Tomorrow's watchlist" in mail
    message = email.message_from_string(mail, policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    # The broker's account at the summary: its equity, and positions "at the broker".
    assert re.search(r"Net liquidation: [0-9,]+\.[0-9]{2} USD", text), text
    assert "at the broker, marks as of" in text, text
    with Database.open(first.database_url) as database:
        recorded = database.equity_marks.get("", date(2026, 3, 10))
    assert recorded is not None
    assert recorded.equity is not None
    assert recorded.equity > 0
    jobs = json.loads(first.shell("jobs", as_json=True).stdout)
    summary = next(job for job in jobs if job["job"] == "daily_summary")
    wait_until(lambda: first.get("/api/health/scheduler").status == 200)
    first.signal(signal.SIGTERM)
    assert first.wait() == exitcodes.OK, first.diagnostics()

    second = bot_factory(None, AFTER_THE_SUMMARY, home=first.home)
    wait_until(lambda: second.shell("jobs", as_json=True).returncode == 0)
    second.signal(signal.SIGKILL)
    second.wait()

    third = bot_factory(None, AFTER_THE_SUMMARY, home=first.home)
    states = json.loads(third.shell("jobs", as_json=True).stdout)
    again = next(job for job in states if job["job"] == "daily_summary")
    assert again["last_run"]["key"] == "2026-03-10"
    assert again["next_run"] == "2026-03-11T20:30:00+00:00"
    health = third.get("/api/health/scheduler")
    assert health.status == 200, health.body
    run = third.shell("run daily_summary 2026-03-10")  # by hand: idempotent by key
    assert run.returncode == 0, run.stderr
    assert "already run" in run.stdout
    unknown = third.shell("run nosuchjob")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "error: no job 'nosuchjob'; the jobs are: bar_update, daily_summary, event_retention"
    ]
    holiday = third.shell("run daily_summary 2026-12-25")
    assert holiday.returncode == 1
    assert "not a session" in holiday.stderr

    assert len(summaries()) == 1
    with Database.open(third.database_url) as database:
        runs = database.job_runs.recent("daily_summary")
    assert [(r.run_key, r.status, r.trigger) for r in runs] == [("2026-03-10", "ok", "missed")]
    assert summary["last_run"]["status"] in ("running", "ok")
