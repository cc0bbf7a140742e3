"""Alert storms are coalesced and a global rate limit folds overflow into a digest."""

from __future__ import annotations

from pathlib import Path

from support.notify_support import WallClock, alert, notify_settings, smtp_settings
from support.smtp_server import SmtpServer
from tradingbot.notify import Notifier
from tradingbot.storage import Database
from tradingbot.storage.outbox import FOLDED, SENT

KEY = "SYSTEM:broker:actor_crashed"


def storm_notifier(
    database: Database, server: SmtpServer, tmp_path: Path, wall: WallClock, **settings: object
) -> Notifier:
    return Notifier(
        database, notify_settings(tmp_path, smtp_settings(server), **settings), now=wall
    )


def test_a_storm_of_1000_identical_alerts_becomes_two_mails(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """The first alert goes at once; the other 999 become one mail when the window ends."""
    notifier = storm_notifier(database, smtp_server, tmp_path, wall, storm_window_s=300.0)
    for _ in range(1000):
        notifier.enqueue("alert", alert(), dedup_key=KEY, severity="ERROR")
        notifier.deliver_due()
        wall.advance(0.01)
    assert len(smtp_server.messages()) == 1
    wall.advance(300.0)
    notifier.deliver_due()
    first, follow_up = smtp_server.wait_for(2)
    assert "x999" in str(follow_up.message["Subject"])
    text = follow_up.message.get_body(("plain",))
    assert text is not None
    assert "999 times" in text.get_content()
    assert "x" not in str(first.message["Subject"]).split("ERROR")[1].split()[0]
    wall.advance(3600.0)
    notifier.deliver_due()
    assert len(smtp_server.messages()) == 2
    assert notifier.status.snapshot()["outbox_depth"] == 0


def test_a_sustained_storm_sends_one_mail_per_window(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """An alert every 10 s for 20 minutes with a 5-minute window: the first at once, then
    one mail per window counting the alerts in it (29 in the first, 30 in each other)."""
    notifier = storm_notifier(database, smtp_server, tmp_path, wall, storm_window_s=300.0)
    for _ in range(120):
        notifier.enqueue("alert", alert(), dedup_key=KEY, severity="ERROR")
        notifier.deliver_due()
        wall.advance(10.0)
    wall.advance(600.0)
    notifier.deliver_due()
    subjects = [str(m.message["Subject"]) for m in smtp_server.messages()]
    assert len(subjects) == 5
    counts = [1] + [int(s.split(" x", 1)[1].split()[0]) for s in subjects[1:]]
    assert counts == [1, 29, 30, 30, 30]  # every occurrence, each in its own window


def test_different_alerts_are_not_coalesced(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """Alerts with different dedup keys each get their own mail."""
    notifier = storm_notifier(database, smtp_server, tmp_path, wall)
    for n in range(3):
        notifier.enqueue("alert", alert(f"limit {n}"), dedup_key=f"RISK:risk:limit {n}")
    assert notifier.deliver_due().sent == 3


def test_rate_limit_folds_the_overflow_into_one_digest(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """Over the hourly limit, mail is folded into a digest sent when the limit allows."""
    notifier = storm_notifier(database, smtp_server, tmp_path, wall, rate_limit_per_hour=5)
    records = [notifier.enqueue("alert", alert(f"limit {n} breached")).record for n in range(12)]
    report = notifier.deliver_due()
    assert (report.sent, report.folded) == (5, 7)
    wall.advance(1800.0)
    assert notifier.deliver_due().sent == 0  # the digest waits for a free slot
    wall.advance(1800.0)
    assert notifier.deliver_due().sent == 1
    messages = smtp_server.wait_for(6)
    assert len(messages) == 6
    digest = messages[-1]
    assert str(digest.message["Subject"]).startswith("[trading-bot] DIGEST of 7 notifications")
    text = digest.message.get_body(("plain",))
    assert text is not None
    for n in range(5, 12):
        assert f"limit {n} breached" in text.get_content()
    stored = [notifier.repository.get(r.id) for r in records if r is not None]
    assert [r.status for r in stored if r is not None] == [SENT] * 5 + [FOLDED] * 7
    digest_row = notifier.repository.by_message_id(digest.message_id)
    assert digest_row is not None
    assert {r.folded_into for r in stored[5:] if r is not None} == {digest_row.id}


def test_mail_arriving_while_limited_joins_the_pending_digest(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """Everything over the limit in the same hour ends up in the same digest."""
    notifier = storm_notifier(database, smtp_server, tmp_path, wall, rate_limit_per_hour=2)
    for n in range(3):
        notifier.enqueue("alert", alert(f"first wave {n}"))
    notifier.deliver_due()
    wall.advance(600.0)
    for n in range(2):
        notifier.enqueue("alert", alert(f"second wave {n}"))
    notifier.deliver_due()
    wall.advance(3600.0)
    notifier.deliver_due()
    messages = smtp_server.wait_for(3)
    assert len(messages) == 3
    text = messages[-1].message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "first wave 2" in body
    assert "second wave 0" in body
    assert "second wave 1" in body
