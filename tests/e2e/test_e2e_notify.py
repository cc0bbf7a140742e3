"""E-mail from real ``trading-bot run`` processes to a real SMTP server on loopback:
``kill -9`` with mail pending loses and doubles nothing, a crash drill is mailed, and a
first run without a server writes ``.eml`` files."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Bot, BotFactory, wait_until

from support.smtp_server import REJECT, TEMPFAIL, SmtpServer
from tradingbot.storage import Database
from tradingbot.storage.outbox import PENDING, OutboxRepository

pytestmark = pytest.mark.slow


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def mail_env(server: SmtpServer) -> dict[str, str]:
    return {
        "TRADINGBOT_SMTP_HOST": "127.0.0.1",
        "TRADINGBOT_SMTP_PORT": str(server.port),
        "TRADINGBOT_SMTP_TLS": "none",
        "TRADINGBOT_SMTP_TIMEOUT_S": "2",
        "TRADINGBOT_SMTP_RETRY_INTERVAL_S": "0.2",
        "TRADINGBOT_SMTP_RETRY_JITTER_S": "0",
        "TRADINGBOT_EMAIL_FROM": "Trading Bot <bot@example.com>",
        "TRADINGBOT_EMAIL_TO": "ops@example.com",
        "TRADINGBOT_NOTIFY_MIN_SEVERITY": "WARNING",  # operator notes are SYSTEM warnings
    }


def note(bot: Bot, text: str) -> None:
    result = bot.shell(f"note {text}")
    assert result.returncode == 0, result.stderr


def pending(database_url: str, marker: str) -> int:
    with Database.open(database_url) as database:
        rows = OutboxRepository(database).rows(status=PENDING)
    return sum(marker in row.subject for row in rows)


def note_subjects(server: SmtpServer, marker: str) -> list[str]:
    return sorted(
        str(m.message["Subject"]) for m in server.messages() if marker in str(m.message["Subject"])
    )


def test_kill_9_with_mail_pending_then_restart_delivers_every_mail_once(
    bot_factory: BotFactory, bot_database_url: str | None, smtp_server: SmtpServer
) -> None:
    """Mail sent before the kill is not sent again; mail pending at the kill arrives once."""
    bot = bot_factory(bot_database_url, mail_env(smtp_server))
    for n in range(3):
        note(bot, f"before-kill {n}")
    wait_until(lambda: len(note_subjects(smtp_server, "before-kill")) == 3, 30, "3 mails")
    smtp_server.fail_always(TEMPFAIL)  # the server answers, and defers every message
    for n in range(5):
        note(bot, f"pending-at-kill {n}")
    wait_until(lambda: pending(bot.database_url, "pending-at-kill") == 5, 30, "5 pending")
    wait_until(lambda: sum(smtp_server.data_attempts.values()) >= 5, 30, "attempts at the server")
    bot.signal(signal.SIGKILL)
    bot.wait()
    smtp_server.heal()
    again = bot_factory(bot_database_url, mail_env(smtp_server), home=bot.home)
    wait_until(lambda: len(note_subjects(smtp_server, "pending-at-kill")) == 5, 60, "5 mails")
    wait_until(lambda: again.node("notifier")["details"]["outbox_depth"] == 0, 30, "empty outbox")
    assert note_subjects(smtp_server, "before-kill") == [
        f"[trading-bot] WARNING SYSTEM: before-kill {n}" for n in range(3)
    ]
    assert note_subjects(smtp_server, "pending-at-kill") == [
        f"[trading-bot] WARNING SYSTEM: pending-at-kill {n}" for n in range(5)
    ]
    counts = smtp_server.message_ids()
    assert set(counts.values()) == {1}, counts  # no Message-ID accepted twice
    notes = [m for m in smtp_server.messages() if "-kill " in str(m.message["Subject"])]
    per_event = smtp_server.event_ids()
    events = {str(m.message["X-Trading-Bot-Event"]) for m in notes}
    assert len(events) == 8  # each note is its own event
    assert {per_event[event] for event in events} == {1}, per_event  # none mailed twice


def test_mail_claimed_by_a_killed_run_goes_out_at_the_restart_not_when_its_claim_expires(
    bot_factory: BotFactory, bot_database_url: str | None, smtp_server: SmtpServer
) -> None:
    """kill -9 in the middle of a delivery: the next start frees the dead run's claim.

    The first run talks to a server that accepts the connection and never answers, with a
    30 s timeout: its claim on the mail lasts 8 x 30 + 5 = 245 s. The restart sends the
    mail at once (well inside the 90 s this test waits) and logs which run's claims it
    freed.
    """
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # accepts connections, never says a word
    try:
        stalled = {
            **mail_env(smtp_server),
            "TRADINGBOT_SMTP_PORT": str(hole.getsockname()[1]),
            "TRADINGBOT_SMTP_TIMEOUT_S": "30",
        }
        bot = bot_factory(bot_database_url, stalled)
        run_id = bot.run_id
        note(bot, "claimed-at-kill")

        def claimed() -> bool:
            with Database.open(bot.database_url) as database:
                rows = OutboxRepository(database).rows(status=PENDING)
            return any(
                "claimed-at-kill" in row.subject and row.claimed_by == run_id for row in rows
            )

        wait_until(claimed, 30, "the mail claimed by the first run")
        bot.signal(signal.SIGKILL)
        bot.wait()
    finally:
        hole.close()
    again = bot_factory(bot_database_url, mail_env(smtp_server), home=bot.home)
    wait_until(lambda: note_subjects(smtp_server, "claimed-at-kill"), 90, "the claimed mail")
    released = [e for e in again.log_events() if e.get("event") == "outbox_claims_released"]
    assert [(e["rows"], e["runs"]) for e in released] == [(1, [run_id])]
    assert len(note_subjects(smtp_server, "claimed-at-kill")) == 1


def test_an_actor_crash_drill_is_mailed_as_a_system_error(
    bot_factory: BotFactory, smtp_server: SmtpServer
) -> None:
    """``trading-bot shell -c 'crash heartbeat'`` ends in an ERROR alert mail."""
    bot = bot_factory(None, mail_env(smtp_server))
    result = bot.shell("crash heartbeat")
    assert result.returncode == 0, result.stderr

    def crash_mail() -> list[str]:
        return [
            str(m.message["Subject"])
            for m in smtp_server.messages()
            if "actor_crashed heartbeat" in str(m.message["Subject"])
        ]

    (subject,) = wait_until(crash_mail, 30, "the crash alert")
    assert subject.startswith("[trading-bot] ERROR SYSTEM: actor_crashed heartbeat")
    assert "CrashDrill" in subject


def test_without_a_server_a_first_run_writes_eml_files(bot_factory: BotFactory) -> None:
    """No TRADINGBOT_SMTP_HOST: the crash alert is an .eml file in TRADINGBOT_HOME/outbox."""
    bot = bot_factory(None, {"TRADINGBOT_NOTIFY_MIN_SEVERITY": "ERROR"})
    assert bot.shell("crash heartbeat").returncode == 0
    outbox = bot.home / "outbox"

    def eml_files() -> list[Path]:
        return sorted(outbox.glob("*.eml")) if outbox.is_dir() else []

    files = wait_until(eml_files, 30, "an .eml file")
    text = "\n".join(f.read_text() for f in files)
    assert "actor_crashed heartbeat" in text
    # Written atomically: a temporary file exists only while a mail is being written
    # (another one may be, right now), and none is left behind.
    wait_until(lambda: not list(outbox.glob(".tmp-*")), 30, "no temporary file left")
    details = bot.node("notifier")["details"]
    assert details["mode"] == "eml"


def test_a_refused_mail_is_listed_and_retried_from_the_shell(
    bot_factory: BotFactory, smtp_server: SmtpServer
) -> None:
    """A 550 leaves the mail failed, shown by ``mail``; ``mail retry ID`` sends it (once)."""
    bot = bot_factory(None, mail_env(smtp_server))
    smtp_server.fail_always(REJECT)
    note(bot, "refused-then-retried")

    def failed() -> list[dict[str, object]]:
        result = bot.shell("mail", as_json=True)
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)["mail"]
        return [r for r in rows if r["status"] == "failed" and "refused-then" in r["subject"]]

    (row,) = wait_until(failed, 30, "the refused mail listed as failed")
    assert "550" in str(row["last_error"])
    smtp_server.heal()
    result = bot.shell(f"mail retry {row['id']}")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: note_subjects(smtp_server, "refused-then-retried"), 30, "the retried mail")
    assert smtp_server.message_ids()[str(row["message_id"])] == 1
    assert bot.shell(f"mail retry {row['id']}").returncode != 0  # not failed any more
