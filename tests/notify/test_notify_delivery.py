"""Delivery from the outbox to a real aiosmtpd server: TLS, AUTH, retries, outages."""

from __future__ import annotations

import os
import smtplib
from pathlib import Path

import pytest

from support.notify_support import TRADE, WallClock, alert, notify_settings, smtp_settings
from support.smtp_server import AUTH_WITHOUT_STARTTLS, REJECT, TEMPFAIL, SmtpServer
from tradingbot.notify import Notifier
from tradingbot.storage import Database
from tradingbot.storage.outbox import FAILED, PENDING, SENT, OutboxRecord

pytestmark = pytest.mark.filterwarnings(AUTH_WITHOUT_STARTTLS)


def test_trade_mail_is_delivered_once_with_its_message_id(
    smtp_notifier: Notifier, smtp_server: SmtpServer
) -> None:
    """An enqueued trade mail reaches the server once, with the Message-ID stored in the row."""
    record = smtp_notifier.enqueue("trade_execution", TRADE).record
    assert record is not None
    assert record.status == PENDING
    report = smtp_notifier.deliver_due()
    assert report.sent == 1
    (received,) = smtp_server.wait_for(1)
    assert received.message_id == record.message_id
    assert received.message["Subject"] == "[trading-bot] FILLED BUY 10 AAPL @ 189.20"
    assert received.mail_from == "bot@example.com"
    assert received.rcpt_tos == ("ops@example.com",)
    stored = smtp_notifier.repository.get(record.id)
    assert stored is not None
    assert stored.status == SENT
    assert stored.attempts == 1
    assert smtp_notifier.deliver_due().claimed == 0  # never sent again
    assert smtp_server.message_ids() == {record.message_id: 1}


def test_auth_over_starttls_with_a_self_signed_certificate(
    database: Database, tmp_path: Path, wall: WallClock, certificate: tuple[Path, Path]
) -> None:
    """STARTTLS is negotiated (the certificate verified against the configured CA) before AUTH."""
    with SmtpServer(tls="starttls", cert=certificate, credentials=("bot", "s3cret")) as server:
        smtp = smtp_settings(
            server, tls="starttls", username="bot", password="s3cret", ca_file=certificate[0]
        )
        notifier = Notifier(database, notify_settings(tmp_path, smtp), now=wall)
        notifier.enqueue("alert", alert())
        assert notifier.deliver_due().sent == 1
        (received,) = server.wait_for(1)
    assert received.tls
    assert received.authenticated_as == "bot"


def test_auth_over_implicit_tls(
    database: Database, tmp_path: Path, wall: WallClock, certificate: tuple[Path, Path]
) -> None:
    """Implicit TLS (SMTPS) with AUTH delivers the mail."""
    with SmtpServer(tls="tls", cert=certificate, credentials=("bot", "s3cret")) as server:
        smtp = smtp_settings(
            server, tls="tls", username="bot", password="s3cret", ca_file=certificate[0]
        )
        notifier = Notifier(database, notify_settings(tmp_path, smtp), now=wall)
        notifier.enqueue("alert", alert())
        assert notifier.deliver_due().sent == 1
        (received,) = server.wait_for(1)
    assert received.tls
    assert received.authenticated_as == "bot"


def test_plain_auth_with_a_wrong_password_keeps_the_mail_pending(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """A refused login is the server's, not the mail's fault: the mail waits, nothing fails."""
    with SmtpServer(credentials=("bot", "right")) as server:
        smtp = smtp_settings(server, username="bot", password="wrong")
        notifier = Notifier(database, notify_settings(tmp_path, smtp), now=wall)
        record = notifier.enqueue("alert", alert()).record
        assert record is not None
        report = notifier.deliver_due()
        assert (report.sent, report.failed, report.retried) == (0, 0, 1)
        stored = notifier.repository.get(record.id)
        assert stored is not None
        assert stored.status == PENDING
        assert stored.last_error is not None
        assert stored.last_error.startswith("SMTPAuthenticationError: (535")  # the real cause
        assert server.auth_failures >= 1
        assert notifier.status.snapshot()["server"] == "down"


def test_transient_failures_then_success_are_counted_at_the_server(
    smtp_notifier: Notifier, smtp_server: SmtpServer, wall: WallClock
) -> None:
    """Two 451 replies, then acceptance: three DATA attempts, 5 s apart, one delivery."""
    record = smtp_notifier.enqueue("trade_execution", TRADE).record
    assert record is not None
    smtp_server.fail_next(2, TEMPFAIL)
    assert smtp_notifier.deliver_due().retried == 1
    assert smtp_notifier.deliver_due().claimed == 0  # not due before the retry interval
    wall.advance(5.0)
    assert smtp_notifier.deliver_due().retried == 1
    wall.advance(5.0)
    assert smtp_notifier.deliver_due().sent == 1
    assert smtp_server.data_attempts[record.message_id] == 3
    assert smtp_server.message_ids() == {record.message_id: 1}
    stored = smtp_notifier.repository.get(record.id)
    assert stored is not None
    assert (stored.status, stored.attempts) == (SENT, 3)


def test_a_permanent_550_is_tried_exactly_once(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """A 5xx reply fails the mail at once, reports it, and later passes leave it alone."""
    failures: list[tuple[OutboxRecord, BaseException]] = []
    notifier = Notifier(
        database,
        notify_settings(tmp_path, smtp_settings(smtp_server)),
        now=wall,
        on_failed=lambda record, error: failures.append((record, error)),
    )
    record = notifier.enqueue("alert", alert()).record
    other = notifier.enqueue("trade_execution", TRADE).record
    assert record is not None
    assert other is not None
    smtp_server.fail_next(1, REJECT)
    report = notifier.deliver_due()
    assert (report.failed, report.sent) == (1, 1)  # the next mail still went out
    for _ in range(3):
        wall.advance(3600)
        notifier.deliver_due()
    assert smtp_server.data_attempts[record.message_id] == 1
    stored = notifier.repository.get(record.id)
    assert stored is not None
    assert stored.status == FAILED
    assert stored.attempts == 1
    assert [r.id for r, _ in failures] == [record.id]
    assert isinstance(failures[0][1], smtplib.SMTPDataError)


def test_a_long_outage_then_every_mail_is_delivered_exactly_once(
    smtp_notifier: Notifier, smtp_server: SmtpServer, wall: WallClock
) -> None:
    """Three days without a server: mail keeps waiting, then each arrives once."""
    ids = []
    for n in range(5):
        record = smtp_notifier.enqueue("alert", alert(f"risk limit {n} breached")).record
        assert record is not None
        ids.append(record.message_id)
    smtp_server.stop()
    passes = 0
    elapsed = 0.0
    while elapsed < 3 * 86400:
        report = smtp_notifier.deliver_due()
        assert report.sent == 0
        passes += 1
        wall.advance(900.0)
        elapsed += 900.0
    snapshot = smtp_notifier.status.snapshot(wall())
    assert snapshot["server"] == "down"
    assert snapshot["outbox_depth"] == 5
    assert snapshot["oldest_pending_age_s"] >= 3 * 86400
    stored = [smtp_notifier.repository.by_message_id(i) for i in ids]
    assert all(r is not None and r.status == PENDING for r in stored)
    # One row per pass was attempted while down; the rest waited without an attempt.
    assert max(r.attempts for r in stored if r is not None) > 3
    smtp_server.start()
    wall.advance(300.0)  # the longest pause between attempts
    report = smtp_notifier.deliver_due()
    assert report.sent == 5
    assert smtp_server.message_ids() == {i: 1 for i in ids}
    for _ in range(3):
        wall.advance(3600)
        smtp_notifier.deliver_due()
    assert smtp_server.message_ids() == {i: 1 for i in ids}
    assert smtp_notifier.status.snapshot()["outbox_depth"] == 0


def test_without_a_server_mail_is_written_as_eml_files(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """No SMTP host: each mail becomes one .eml file named by its Message-ID, atomically."""
    notifier = Notifier(database, notify_settings(tmp_path, None), now=wall)
    record = notifier.enqueue("trade_execution", TRADE).record
    assert record is not None
    assert notifier.deliver_due().sent == 1
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [record.message_id.strip("<>") + ".eml"]
    text = files[0].read_text()
    assert "Subject: [trading-bot] FILLED BUY 10 AAPL @ 189.20" in text
    assert f"Message-ID: {record.message_id}" in text
    assert notifier.deliver_due().claimed == 0
    assert notifier.status.snapshot()["mode"] == "eml"


def test_a_mail_being_written_is_never_visible_as_an_eml_file(
    database: Database, tmp_path: Path, wall: WallClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a message is being written (at its fsync) no ``*.eml`` file shows a partial mail."""
    notifier = Notifier(database, notify_settings(tmp_path, None), now=wall)
    notifier.enqueue("trade_execution", TRADE)
    seen_during_write: list[list[str]] = []
    real_fsync = os.fsync

    def watching_fsync(fd: int) -> None:
        seen_during_write.append(sorted(p.name for p in (tmp_path / "outbox").glob("*.eml")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watching_fsync)
    assert notifier.deliver_due().sent == 1
    assert seen_during_write[0] == []  # the file's own fsync, before its rename
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert list((tmp_path / "outbox").glob(".tmp-*")) == []


def test_a_sent_row_is_never_claimed_by_a_second_notifier(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """Two notifiers on one database (the actor and a CLI) deliver each mail once."""
    settings = notify_settings(tmp_path, smtp_settings(smtp_server))
    first = Notifier(database, settings, now=wall)
    second = Notifier(database, settings, now=wall)
    ids = [first.enqueue("alert", alert(f"limit {n}")).record for n in range(10)]
    first.deliver_due()
    second.deliver_due()
    assert smtp_server.message_ids() == {r.message_id: 1 for r in ids if r is not None}


@pytest.mark.parametrize("code", [421, 450, 451, 452])
def test_every_4xx_reply_is_transient(
    smtp_notifier: Notifier, smtp_server: SmtpServer, code: int
) -> None:
    """Any 4xx reply keeps the mail pending for a retry."""
    record = smtp_notifier.enqueue("alert", alert()).record
    assert record is not None
    smtp_server.fail_next(1, f"{code} 4.0.0 later")
    smtp_notifier.deliver_due()
    stored = smtp_notifier.repository.get(record.id)
    assert stored is not None
    assert stored.status == PENDING
    assert str(code) in (stored.last_error or "")


def test_a_421_reply_costs_only_its_own_mail_an_attempt(
    smtp_notifier: Notifier, smtp_server: SmtpServer
) -> None:
    """A 421 reply (the server closing the channel) keeps that mail pending; the next mail
    of the same pass goes out at its first attempt on a new connection, and the server
    is not reported down."""
    first = smtp_notifier.enqueue("alert", alert("first")).record
    second = smtp_notifier.enqueue("alert", alert("second")).record
    assert first is not None
    assert second is not None
    smtp_server.fail_next(1, "421 4.3.2 Service shutting down, closing channel")
    report = smtp_notifier.deliver_due()
    assert (report.sent, report.retried) == (1, 1)
    assert smtp_server.message_ids() == {second.message_id: 1}
    assert smtp_server.data_attempts[second.message_id] == 1
    stored = smtp_notifier.repository.get(first.id)
    assert stored is not None
    assert stored.status == PENDING
    assert "421" in (stored.last_error or "")
    assert smtp_notifier.status.snapshot()["server"] == "up"


def test_prune_keeps_mail_for_the_retention_period(
    smtp_notifier: Notifier, wall: WallClock
) -> None:
    """Sent mail is deleted only once older than the retention; pending mail never."""
    sent = smtp_notifier.enqueue("alert", alert("old")).record
    smtp_notifier.deliver_due()
    wall.advance(29 * 86400)
    assert smtp_notifier.prune() == 0
    wall.advance(2 * 86400)
    assert smtp_notifier.prune() == 1
    assert sent is not None
    assert smtp_notifier.repository.get(sent.id) is None
