"""The notifier's edges the mutation check found unguarded (docs/TESTING.md).

Long dedup keys, the catch-up's look-back and paging, the retry schedule after the quick
burst, what the status and the pass report say after a failure, a mail sent but not
marked, and a digest that lists a storm follow-up and a mail that cannot be rendered.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy

from support.bot_config import bot_config
from support.notify_support import (
    RECOVERY_REPORT,
    TRADE,
    WallClock,
    alert,
    mailed_by_the_actor,
    mailed_event_ids,
    notifier_over_smtp,
    notifier_to_folder,
    trade_event,
)
from support.smtp_server import REJECT, TEMPFAIL, SmtpServer
from tradingbot.events import RISK, SYSTEM, Event, Severity
from tradingbot.notify import Notifier, route
from tradingbot.storage import Database
from tradingbot.storage.outbox import FAILED, FOLDED, PENDING, SENT

KEY = "SYSTEM:broker:actor_crashed"


def risk_alert(wall: WallClock, what: str = "loss_limit") -> Event:
    return Event(
        type=RISK,
        severity=Severity.ERROR,
        source="risk",
        message=f"{what} reached",
        context={"event": what},
        timestamp=wall(),
    )


# -- dedup keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("window_s", [300.0, 0.0])
def test_long_dedup_keys_are_stored_short_and_never_collide(
    database: Database, tmp_path: Path, wall: WallClock, window_s: float
) -> None:
    """Alerts whose keys differ only after 255 characters stay two alerts, each stored with a
    255-character key (also with storm coalescing off), and a key of exactly 255 stays as is."""
    notifier = notifier_to_folder(database, tmp_path, wall, storm_window_s=window_s)
    prefix = "SYSTEM:broker:" + "x" * 300
    first = notifier.enqueue("alert", alert("one"), dedup_key=prefix + ":one").record
    second = notifier.enqueue("alert", alert("two"), dedup_key=prefix + ":two").record
    exact = notifier.enqueue("alert", alert("three"), dedup_key="k" * 255).record
    assert first is not None
    assert second is not None
    assert exact is not None
    assert first.dedup_key is not None
    assert second.dedup_key is not None
    assert len(first.dedup_key) == len(second.dedup_key) == 255
    assert first.dedup_key != second.dedup_key
    assert first.dedup_key.startswith(prefix[:200])
    assert exact.dedup_key == "k" * 255
    if window_s:
        # The same long key again: a follow-up, then counted into it (one storm).
        follow_up = notifier.enqueue("alert", alert("one"), dedup_key=prefix + ":one").record
        assert follow_up is not None
        again = notifier.enqueue("alert", alert("one"), dedup_key=prefix + ":one")
        assert again.coalesced_into == follow_up.id
    assert notifier.deliver_due().sent == 3


# -- routing into the outbox --------------------------------------------------------------


def test_a_routed_alert_keeps_the_severity_of_its_event(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """The mail of an ERROR risk event says ERROR in its severity header and outbox row."""
    notifier = notifier_over_smtp(database, smtp_server, tmp_path, wall)
    mailed_by_the_actor(database, notifier, risk_alert(wall))
    (row,) = notifier.repository.rows()
    assert row.severity == Severity.ERROR
    assert notifier.deliver_due().sent == 1
    (received,) = smtp_server.wait_for(1)
    assert received.message["X-Trading-Bot-Severity"] == "ERROR"


# -- catch-up -----------------------------------------------------------------------------


def test_catch_up_with_trade_and_alert_mail_switched_off_mails_nothing(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Only summaries and reports configured: the catch-up has nothing to look for."""
    notifier = notifier_to_folder(
        database, tmp_path, wall, types=frozenset({"daily_summary", "recovery_report"})
    )
    database.events.insert_many([trade_event(wall, "AAPL"), risk_alert(wall)])
    wall.advance(30)
    assert notifier.catch_up() == 0
    assert notifier.repository.rows() == []


def test_events_older_than_a_day_are_never_caught_up(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Mail switched on over a database with old trades: yesterday's trades are not mailed."""
    old = trade_event(wall, "AAPL")
    database.events.insert_many([old])
    wall.advance(25 * 3600)
    recent = trade_event(wall, "MSFT")
    database.events.insert_many([recent])
    wall.advance(30)
    notifier = notifier_to_folder(database, tmp_path, wall)
    assert notifier.catch_up() == 1
    assert mailed_event_ids(notifier) == [str(recent.id)]


def test_the_look_back_starts_five_minutes_before_the_newest_event_mail(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Warnings stored while only errors were mailed are not mailed after the operator lowers
    the alert severity: the catch-up looks back from the newest event mail, not a full day."""
    strict = notifier_to_folder(database, tmp_path, wall)  # alerts from ERROR up
    warning = Event(
        type=SYSTEM,
        severity=Severity.WARNING,
        source="feed",
        message="market data is slow",
        timestamp=wall(),
    )
    database.events.insert_many([warning])
    assert route(warning, strict.settings) is None
    wall.advance(3600)
    mailed_by_the_actor(database, strict, trade_event(wall, "AAPL"))
    wall.advance(60)

    lenient = notifier_to_folder(database, tmp_path, wall, min_severity=Severity.WARNING)
    assert lenient.catch_up() == 0


def test_the_catch_up_reads_every_page_of_a_busy_day(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Two lost alerts with 2100 unmailed warnings between them: both are mailed."""
    notifier = notifier_to_folder(database, tmp_path, wall)
    first = risk_alert(wall, "loss_limit")
    base = wall()
    fillers = [
        Event(
            type=SYSTEM,
            severity=Severity.WARNING,
            source="feed",
            message=f"slow tick {n}",
            timestamp=base + timedelta(milliseconds=n + 1),
        )
        for n in range(2100)
    ]
    wall.advance(10)
    last = risk_alert(wall, "drawdown_limit")
    database.events.insert_many([first, *fillers, last])
    wall.advance(60)
    assert notifier.catch_up() == 2
    assert sorted(mailed_event_ids(notifier), key=str) == sorted(
        [str(first.id), str(last.id)], key=str
    )


def test_without_storm_coalescing_an_identical_lost_alert_is_mailed(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Coalescing off: an alert lost a second before an identical mailed one still gets its
    own mail."""
    notifier = notifier_to_folder(database, tmp_path, wall, storm_window_s=0.0)
    lost = risk_alert(wall)
    database.events.insert_many([lost])
    wall.advance(1)
    mailed_by_the_actor(database, notifier, risk_alert(wall))
    wall.advance(30)
    assert notifier.catch_up() == 1
    assert mailed_event_ids(notifier)[-1] == str(lost.id)


def test_a_one_second_storm_window_covers_an_identical_lost_alert(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """A storm window of one second: the identical alert lost half a second after a mailed
    one is counted as covered, not mailed again."""
    notifier = notifier_to_folder(database, tmp_path, wall, storm_window_s=1.0)
    mailed_by_the_actor(database, notifier, risk_alert(wall))
    wall.advance(0.5)
    database.events.insert_many([risk_alert(wall)])
    wall.advance(30)
    assert notifier.catch_up() == 0


def test_a_covered_alert_neither_stops_the_catch_up_nor_hides_behind_its_own_mail(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Lost: a trade, an alert an identical mail covers, a second trade. The two trades are
    mailed (the later one too) and the covered alert is not, although the catch-up wrote a
    row before reaching it."""
    notifier = notifier_to_folder(database, tmp_path, wall)
    early = trade_event(wall, "AAPL")
    database.events.insert_many([early])
    wall.advance(10)
    mailed_by_the_actor(database, notifier, risk_alert(wall))
    wall.advance(10)
    database.events.insert_many([risk_alert(wall)])  # covered by the mail just made
    wall.advance(10)
    late = trade_event(wall, "MSFT")
    database.events.insert_many([late])
    wall.advance(30)
    assert notifier.catch_up() == 2
    assert mailed_event_ids(notifier)[-2:] == [str(early.id), str(late.id)]


# -- delivery: retries, failures, status --------------------------------------------------


def test_a_delivered_mail_shows_in_the_status(
    smtp_notifier: Notifier, smtp_server: SmtpServer, wall: WallClock
) -> None:
    """After one delivery the status says: server up, one sent, sent at this moment."""
    smtp_notifier.enqueue("trade_execution", TRADE)
    assert smtp_notifier.deliver_due().sent == 1
    snapshot = smtp_notifier.status.snapshot(wall())
    assert snapshot["server"] == "up"
    assert snapshot["sent_total"] == 1
    assert snapshot["last_sent_at"] == wall().isoformat()


def test_a_server_answering_451_is_retried_on_the_documented_schedule(
    smtp_notifier: Notifier, smtp_server: SmtpServer, wall: WallClock
) -> None:
    """Three tries 5 s apart, then pauses that double (10, 20, 40 ... s); every failure is
    in the status, the pass report and the row as the server's own error."""
    record = smtp_notifier.enqueue("alert", alert()).record
    assert record is not None
    smtp_server.fail_always(TEMPFAIL)
    pauses = []
    for _ in range(8):
        report = smtp_notifier.deliver_due()
        assert report.retried == 1
        stored = smtp_notifier.repository.get(record.id)
        assert stored is not None
        assert stored.status == PENDING
        assert stored.last_error is not None
        assert stored.last_error.startswith("SMTPDataError: (451")
        assert report.errors == (stored.last_error,)
        snapshot = smtp_notifier.status.snapshot(wall())
        assert snapshot["last_error"] == stored.last_error
        assert snapshot["last_error_at"] == wall().isoformat()
        assert stored.next_attempt_at is not None
        pause = (stored.next_attempt_at - wall()).total_seconds()
        pauses.append(pause)
        wall.advance(pause)
    assert pauses == [5.0, 5.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0]
    frozen = smtp_notifier.repository.get(record.id)
    assert frozen is not None
    assert frozen.mime is not None  # rendered once, at the first attempt
    smtp_server.heal()
    assert smtp_notifier.deliver_due().sent == 1
    (received,) = smtp_server.wait_for(1)
    assert received.message["Date"] == email.message_from_string(frozen.mime)["Date"]
    assert received.message["From"] == "Trading Bot <bot@example.com>"


def test_while_the_server_is_down_the_rest_of_the_pass_waits_for_the_same_retry(
    smtp_notifier: Notifier, smtp_server: SmtpServer, wall: WallClock
) -> None:
    """The first mail's failed connect is an outage: the other two are not attempted, are
    counted as released, and wait for the same retry time as the first."""
    records = [smtp_notifier.enqueue("alert", alert(f"limit {n}")).record for n in range(3)]
    smtp_server.stop()
    report = smtp_notifier.deliver_due()
    assert (report.retried, report.released, report.sent) == (1, 2, 0)
    stored = [smtp_notifier.repository.get(r.id) for r in records if r is not None]
    retry_at = {r.next_attempt_at for r in stored if r is not None}
    assert len(retry_at) == 1
    assert retry_at.pop() > wall()
    assert [r.attempts for r in stored if r is not None] == [1, 0, 0]


def test_a_451_for_one_mail_does_not_hold_back_the_next(
    smtp_notifier: Notifier, smtp_server: SmtpServer
) -> None:
    """A refusal of one message is no outage: the other mails of the pass are still tried,
    each refusal is counted, and the server is not reported down."""
    records = [smtp_notifier.enqueue("alert", alert(f"limit {n}")).record for n in range(3)]
    smtp_server.fail_next(2, TEMPFAIL)
    report = smtp_notifier.deliver_due()
    assert (report.retried, report.released, report.sent) == (2, 0, 1)
    assert all(smtp_server.data_attempts[r.message_id] == 1 for r in records if r is not None)
    assert smtp_notifier.status.snapshot()["server"] == "up"


def test_mails_refused_for_good_are_each_counted_and_the_server_is_up(
    smtp_notifier: Notifier, smtp_server: SmtpServer
) -> None:
    """Two 550 replies: both mails fail with the server's error, the pass says two failed,
    and the status shows a server that answers (it refused the mails, not the connection)."""
    records = [smtp_notifier.enqueue("alert", alert(f"limit {n}")).record for n in range(2)]
    smtp_server.fail_next(2, REJECT)
    report = smtp_notifier.deliver_due()
    assert (report.failed, report.sent) == (2, 0)
    for record in records:
        assert record is not None
        stored = smtp_notifier.repository.get(record.id)
        assert stored is not None
        assert (stored.last_error or "").startswith("SMTPDataError: (550")
    assert smtp_notifier.status.snapshot()["server"] == "up"


@pytest.fixture
def mark_sent_refused(database: Database, database_url: str) -> Iterator[sqlalchemy.Engine]:
    """A database that refuses to mark any mail sent (a trigger) until the test drops it."""
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as connection:
        if database.dialect == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER drill_refuse_sent BEFORE UPDATE OF status ON outbox "
                f"WHEN NEW.status = '{SENT}' BEGIN SELECT RAISE(ABORT, 'drill'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION drill_refuse_sent() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'drill'; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER drill_refuse_sent BEFORE UPDATE ON outbox FOR EACH ROW "
                f"WHEN (NEW.status = '{SENT}') EXECUTE FUNCTION drill_refuse_sent()"
            )
    yield engine
    engine.dispose()


def drop_refusal(engine: sqlalchemy.Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS drill_refuse_sent")
        else:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS drill_refuse_sent ON outbox")
            connection.exec_driver_sql("DROP FUNCTION IF EXISTS drill_refuse_sent()")


def test_a_mail_the_database_could_not_mark_sent_is_not_sent_again(
    smtp_notifier: Notifier,
    smtp_server: SmtpServer,
    wall: WallClock,
    mark_sent_refused: sqlalchemy.Engine,
) -> None:
    """The server took the mail but the row could not be marked: this process never sends
    it again, and marks it sent once the database takes writes again."""
    record = smtp_notifier.enqueue("alert", alert()).record
    other = smtp_notifier.enqueue("trade_execution", TRADE).record
    assert record is not None
    assert other is not None
    smtp_notifier.deliver_due()
    assert smtp_server.message_ids() == {record.message_id: 1, other.message_id: 1}
    drop_refusal(mark_sent_refused)
    for _ in range(3):
        wall.advance(3600)  # long past every claim's lease
        smtp_notifier.deliver_due()
    assert smtp_server.message_ids() == {record.message_id: 1, other.message_id: 1}
    for row in (record, other):
        stored = smtp_notifier.repository.get(row.id)
        assert stored is not None
        assert stored.status == SENT


def test_a_mail_whose_template_breaks_in_any_way_fails_alone(
    smtp_notifier: Notifier, smtp_server: SmtpServer
) -> None:
    """An alert whose details are a list, not a mapping, breaks its template: that mail fails
    with the error, and the pass goes on to deliver the next one (it used to end the pass
    at the broken mail, every pass, holding back all mail after it)."""
    broken = smtp_notifier.enqueue("alert", {**alert(), "details": ["not", "a", "dict"]}).record
    other = smtp_notifier.enqueue("trade_execution", TRADE).record
    assert broken is not None
    assert other is not None
    report = smtp_notifier.deliver_due()
    assert (report.failed, report.sent) == (1, 1)
    stored = smtp_notifier.repository.get(broken.id)
    assert stored is not None
    assert stored.status == FAILED
    assert (stored.last_error or "").startswith("AttributeError")
    assert smtp_server.message_ids() == {other.message_id: 1}


# -- digests ------------------------------------------------------------------------------


def test_a_digest_lists_a_held_storm_follow_up_and_a_mail_that_cannot_be_rendered(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """Over the limit: the storm's follow-up (4 occurrences) and two mails whose templates fail
    are folded into one digest, which goes out listing all three — the follow-up with its
    count, time, kind and severity, the broken ones under their stored subjects."""
    notifier = notifier_over_smtp(
        database, smtp_server, tmp_path, wall, rate_limit_per_hour=1, storm_window_s=300.0
    )
    notifier.enqueue("alert", alert(), dedup_key=KEY, severity="ERROR")
    assert notifier.deliver_due().sent == 1
    for _ in range(4):
        wall.advance(1)
        notifier.enqueue("alert", alert(), dedup_key=KEY, severity="ERROR")
    broken = notifier.enqueue(
        "recovery_report", {**RECOVERY_REPORT, "discrepancies": 3}, severity="ERROR"
    ).record
    odd = notifier.enqueue("alert", {**alert("odd details"), "details": ["not", "a", "dict"]})
    assert broken is not None
    assert odd.record is not None
    assert notifier.deliver_due().folded == 2  # the report and the odd alert, now
    wall.advance(300)
    assert notifier.deliver_due().folded == 1  # the follow-up, at its window's end
    wall.advance(3600)
    assert notifier.deliver_due().sent == 1
    _first, digest = smtp_server.wait_for(2)
    assert digest.message_id.endswith("@example.com>")
    assert str(digest.message["Subject"]).startswith("[trading-bot] DIGEST of 3 notifications")
    part = digest.message.get_body(("plain",))
    assert part is not None
    text = part.get_content()
    assert "[trading-bot] ERROR x4 SYSTEM: actor_crashed broker: CrashDrill: drill" in text
    assert "2025-01-06 14:30:01 UTC · alert · ERROR · 4 occurrences" in text
    assert "This alert happened 4 times since the last mail about it" in text
    assert f". {broken.subject}" in text
    assert f". {odd.record.subject}" in text
    assert "(not rendered: object of type 'int' has no len())" in text
    assert "(not rendered: 'list' object has no attribute 'items')" in text
    stored = notifier.repository.get(broken.id)
    assert stored is not None
    assert stored.status == FOLDED


# -- what enqueue answers -----------------------------------------------------------------


def test_enqueue_says_what_it_did_and_stores_the_rendered_subject(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Unknown kinds (and the digest, which only the rate limit makes) are refused by name;
    a kind switched off says disabled; a second mail of one event says duplicate; a stored
    row has its rendered subject and a Message-ID naming its kind from the start."""
    notifier = notifier_to_folder(database, tmp_path, wall, types=("alert", "trade_execution"))
    for kind in ("nope", "digest"):
        with pytest.raises(ValueError, match=f"unknown notification kind '{kind}'"):
            notifier.enqueue(kind, alert())
    assert notifier.enqueue("daily_summary", {"date": "2025-01-06"}).disabled is True
    first = notifier.enqueue("trade_execution", TRADE, token="e-1", event_id="e-1")
    assert first.record is not None
    assert (first.disabled, first.duplicate) == (False, False)
    assert first.record.subject == "[trading-bot] FILLED BUY 10 AAPL @ 189.20"
    assert first.record.message_id.endswith(".trade_execution@example.com>")
    again = notifier.enqueue("trade_execution", TRADE, token="e-1-again", event_id="e-1")
    assert (again.record, again.duplicate) == (None, True)
    single = notifier.enqueue("alert", alert("disk full"), severity=Severity.ERROR).record
    assert single is not None
    assert single.subject == "[trading-bot] ERROR SYSTEM: disk full"
    # A context without a severity (a caller's own alert) takes the enqueued one.
    bare = {k: v for k, v in alert("disk full").items() if k != "severity"}
    warned = notifier.enqueue("alert", bare, severity=Severity.WARNING).record
    assert warned is not None
    assert warned.subject == "[trading-bot] WARNING SYSTEM: disk full"


def test_identical_alerts_coalesce_only_inside_a_storm_window(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Without a storm window three identical alerts are three mails due now; with a
    one-second window the second is a follow-up due when the window ends, the third is
    counted into it, and an event already mailed is a duplicate, not counted again."""
    off = notifier_to_folder(database, tmp_path, wall, storm_window_s=0.0)
    results = [off.enqueue("alert", alert("off"), dedup_key="off") for _ in range(3)]
    records = [r.record for r in results]
    assert all(r is not None and r.next_attempt_at == wall() for r in records)
    on = notifier_to_folder(database, tmp_path, wall, storm_window_s=1.0)
    first, second, third = (
        on.enqueue("alert", alert(), dedup_key=KEY, token=f"a-{n}", event_id=f"a-{n}")
        for n in range(3)
    )
    assert first.record is not None
    assert second.record is not None
    assert second.record.next_attempt_at == wall() + timedelta(seconds=1)
    assert second.record.context["follow_up"] is True
    assert (third.record, third.coalesced_into) == (None, second.record.id)
    # The first event again (a catch-up): a duplicate, not one more occurrence of the storm.
    again = on.enqueue("alert", alert(), dedup_key=KEY, token="a-0", event_id="a-0")
    assert (again.duplicate, again.coalesced_into) == (True, None)
    follow_up = on.repository.get(second.record.id)
    assert follow_up is not None
    assert follow_up.coalesced == 2  # itself and the third


def test_a_notifier_follows_its_settings_and_its_status_says_so(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """The operator's template folder, the batch size per pass and the longest retry pause
    are those configured; the status names the SMTP mode and counts failed mail."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "alert.subject.txt").write_text("OPS {{ message }}")
    notifier = notifier_over_smtp(
        database, smtp_server, tmp_path, wall, batch_size=2, max_backoff_s=12.0
    )
    assert notifier.status.snapshot()["mode"] == "smtp"
    records = [notifier.enqueue("alert", alert(f"limit {n}")).record for n in range(3)]
    assert [r.subject for r in records if r is not None] == [f"OPS limit {n}" for n in range(3)]
    assert notifier.deliver_due().sent == 2
    assert notifier.deliver_due().sent == 1
    smtp_server.fail_next(1, REJECT)
    notifier.enqueue("alert", alert("refused"))
    assert notifier.deliver_due().failed == 1
    notifier.refresh()
    assert notifier.status.snapshot()["failed"] == 1
    retried = notifier.enqueue("alert", alert("retried")).record
    assert retried is not None
    smtp_server.fail_always(TEMPFAIL)
    pauses = []
    for _ in range(6):
        notifier.deliver_due()
        stored = notifier.repository.get(retried.id)
        assert stored is not None
        pauses.append((stored.next_attempt_at - wall()).total_seconds())
        wall.advance(pauses[-1])
    assert pauses == [5.0, 5.0, 5.0, 10.0, 12.0, 12.0]


# -- the API without the actor ------------------------------------------------------------


def test_a_notifier_from_the_configuration_sends_at_once(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """``Notifier.from_config`` + ``send`` (a command without the actor): the mail goes out in
    the same call, to the configured address, and sending it again with the same token does
    not mail it twice."""
    config = bot_config(
        tmp_path,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_server.port),
        SMTP_TLS="none",
        EMAIL_FROM="Trading Bot <bot@example.com>",
        EMAIL_TO="ops@example.com",
    )
    notifier = Notifier.from_config(config, database, now=wall)
    result = notifier.send("trade_execution", TRADE, token="cli:1", severity="WARNING")
    assert result.record is not None
    assert result.record.created_at == wall()
    assert result.record.severity == 30
    (received,) = smtp_server.wait_for(1)
    assert received.message_id == result.record.message_id
    assert received.rcpt_tos == ("ops@example.com",)
    assert notifier.send("trade_execution", TRADE, token="cli:1").duplicate
    assert len(smtp_server.messages()) == 1


def test_mail_for_other_recipients_goes_to_them_and_bad_addresses_are_refused(
    smtp_notifier: Notifier, smtp_server: SmtpServer
) -> None:
    """A mail addressed to the desk reaches only the desk; no address, or a malformed one, is
    refused when it is enqueued."""
    record = smtp_notifier.enqueue("alert", alert(), recipients=("Desk <desk@example.com>",)).record
    assert record is not None
    assert smtp_notifier.deliver_due().sent == 1
    (received,) = smtp_server.wait_for(1)
    assert received.rcpt_tos == ("desk@example.com",)
    with pytest.raises(ValueError, match=r"^recipients: at least one address$"):
        smtp_notifier.enqueue("alert", alert(), recipients=())
    with pytest.raises(ValueError, match="not an e-mail address"):
        smtp_notifier.enqueue("alert", alert(), recipients=("not an address",))
    assert len(smtp_notifier.repository.rows()) == 1
