"""Alert storms are coalesced and a global rate limit folds overflow into a digest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from support.notify_support import WallClock, alert, notifier_over_smtp
from support.smtp_server import SmtpServer
from tradingbot.storage import Database
from tradingbot.storage.outbox import FOLDED, SENT

KEY = "SYSTEM:broker:actor_crashed"


def test_a_storm_of_1000_identical_alerts_becomes_two_mails(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """The first alert goes at once; the other 999 become one mail when the window ends."""
    notifier = notifier_over_smtp(database, smtp_server, tmp_path, wall, storm_window_s=300.0)
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
    notifier = notifier_over_smtp(database, smtp_server, tmp_path, wall, storm_window_s=300.0)
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
    notifier = notifier_over_smtp(database, smtp_server, tmp_path, wall)
    for n in range(3):
        notifier.enqueue("alert", alert(f"limit {n}"), dedup_key=f"RISK:risk:limit {n}")
    assert notifier.deliver_due().sent == 3


def test_rate_limit_folds_the_overflow_into_one_digest(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """Over the hourly limit, mail is folded into a digest sent when the limit allows."""
    notifier = notifier_over_smtp(database, smtp_server, tmp_path, wall, rate_limit_per_hour=5)
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
    notifier = notifier_over_smtp(database, smtp_server, tmp_path, wall, rate_limit_per_hour=2)
    for n in range(3):
        notifier.enqueue("alert", alert(f"first wave {n}"))
    notifier.deliver_due()
    wall.advance(600.0)
    for n in range(2):
        notifier.enqueue("alert", alert(f"second wave {n}"))
    notifier.deliver_due()
    wall.advance(3600.0)
    assert notifier.deliver_due().sent == 1  # the digest: fails here, not after a wait
    messages = smtp_server.wait_for(3)
    assert len(messages) == 3
    text = messages[-1].message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "first wave 2" in body
    assert "second wave 0" in body
    assert "second wave 1" in body


def test_the_digest_is_due_when_the_oldest_counted_mail_is_an_hour_old(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """Mail sent at 0, 10 and 20 minutes fills a limit of 3; mail folded at 20 minutes is
    due at 60 (the first send then leaves the hour), not a second before; under a limit
    lowered to 2 meanwhile the digest claimed at 60 is released to 70, and sent then."""
    notifier = notifier_over_smtp(database, smtp_server, tmp_path, wall, rate_limit_per_hour=3)
    start = wall()
    for n in range(2):
        notifier.enqueue("alert", alert(f"early {n}"))
        assert notifier.deliver_due().sent == 1
        wall.advance(600.0)
    for n in range(3):  # at 20 minutes: the last free slot takes one, two are folded
        notifier.enqueue("alert", alert(f"late {n}"))
    report = notifier.deliver_due()
    assert (report.sent, report.folded) == (1, 2)
    wall.advance(600.0)
    digest = notifier.repository.open_digest()
    assert digest is not None
    assert digest.next_attempt_at == start + timedelta(minutes=60)

    wall.advance(1799.0)
    assert notifier.deliver_due().claimed == 0  # not a second early
    lowered = notifier_over_smtp(database, smtp_server, tmp_path, wall, rate_limit_per_hour=2)
    wall.advance(1.0)  # 60 minutes: the send at 0 has left the hour, two remain
    report = lowered.deliver_due()
    assert (report.claimed, report.sent, report.released) == (1, 0, 1)
    released = lowered.repository.get(digest.id)
    assert released is not None
    assert released.next_attempt_at == start + timedelta(minutes=70)  # the send at 10 leaves

    wall.advance(599.0)
    assert notifier.deliver_due().claimed == 0
    wall.advance(1.0)
    assert notifier.deliver_due().sent == 1
    messages = smtp_server.wait_for(4)
    assert str(messages[-1].message["Subject"]).startswith("[trading-bot] DIGEST of 2")
