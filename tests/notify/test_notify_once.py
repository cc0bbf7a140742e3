"""No mail doubled: concurrent notifiers, an event enqueued twice, a report enqueued twice.

Every check counts what the real SMTP server accepted — per Message-ID and per event
(``X-Trading-Bot-Event``) — so a duplicate sent under a new Message-ID is caught too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.notify_support import RECOVERY_REPORT, TRADE, WallClock, notify_settings, smtp_settings
from support.smtp_server import SmtpServer
from tradingbot.events import RISK, Event, Severity
from tradingbot.events import TRADE as TRADE_TYPE
from tradingbot.notify import Notifier, NotifySettings, route
from tradingbot.storage import Database

ROUNDS = 3
MAILS_PER_ROUND = 60
OTHER_SENDER = "Desk B <bot@desk-b.example>"


@pytest.fixture
def second_database(database: Database, database_url: str) -> Iterator[Database]:
    """The same database through its own engine and pool, as a second process sees it."""
    other = Database.open(database_url)
    yield other
    other.dispose()


def settings_for(tmp_path: Path, server: SmtpServer, **overrides: object) -> NotifySettings:
    values: dict[str, object] = {
        "rate_limit_per_hour": 100_000,  # the rate limit is not what these tests are about
        "batch_size": MAILS_PER_ROUND,
        **overrides,
    }
    return notify_settings(tmp_path, smtp_settings(server), **values)


def at_once(*jobs: Callable[[], object]) -> None:
    """Run ``jobs`` on their own threads, released together; re-raise the first error."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait(30)
            job()
        except Exception as error:  # noqa: BLE001 - re-raised by the test thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a job did not finish"
    if errors:
        raise errors[0]


def drain(notifier: Notifier) -> Callable[[], None]:
    """A job: deliver passes until one finds nothing left to claim."""

    def job() -> None:
        while notifier.deliver_due().claimed:
            pass

    return job


def trade_event(wall: WallClock, symbol: str) -> Event:
    context = {**TRADE, "symbol": symbol}
    return Event(type=TRADE_TYPE, message=f"BUY 1 {symbol}", context=context, timestamp=wall())


def loss_alert(wall: WallClock, n: int = 0) -> Event:
    return Event(
        type=RISK,
        severity=Severity.ERROR,
        source="risk",
        message="daily loss limit reached",
        context={"event": "loss_limit", "n": n},
        timestamp=wall(),
    )


def enqueue_live(notifier: Notifier, event: Event) -> None:
    """What the running notifier actor does with an event from the hub: route, enqueue."""
    wanted = route(event, notifier.settings)
    assert wanted is not None
    notifier.enqueue_notification(wanted)


def test_two_notifiers_delivering_the_same_due_mail_at_once_send_each_mail_once(
    database: Database,
    second_database: Database,
    smtp_server: SmtpServer,
    tmp_path: Path,
    wall: WallClock,
) -> None:
    """Two processes on one database claiming the same due mail at the same moment: every
    mail reaches the SMTP server exactly once."""
    first = Notifier(database, settings_for(tmp_path, smtp_server), now=wall, owner="run-a")
    second = Notifier(second_database, settings_for(tmp_path, smtp_server), now=wall, owner="run-b")
    expected: list[str] = []
    for round_ in range(ROUNDS):
        for n in range(MAILS_PER_ROUND):
            record = first.enqueue("alert", {"message": f"round {round_} mail {n}"}).record
            assert record is not None
            expected.append(record.message_id)
        at_once(drain(first), drain(second))
    assert smtp_server.message_ids() == dict.fromkeys(expected, 1)
    assert first.repository.stats().pending == 0


def test_an_event_mailed_by_the_catch_up_is_not_mailed_again_by_the_live_path(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """An event that reaches the notifier after the start-up catch-up mailed it: one mail."""
    notifier = Notifier(database, settings_for(tmp_path, smtp_server), now=wall)
    fill = trade_event(wall, "AAPL")
    alarm = loss_alert(wall)
    database.events.insert_many([fill, alarm])
    assert notifier.catch_up() == 2
    enqueue_live(notifier, fill)
    enqueue_live(notifier, alarm)
    assert len(notifier.repository.rows()) == 2
    assert [row.coalesced for row in notifier.repository.rows()] == [1, 1]  # not a storm of 2
    drain(notifier)()
    assert smtp_server.event_ids() == {str(fill.id): 1, str(alarm.id): 1}


def test_an_event_enqueued_by_two_processes_with_different_senders_is_mailed_once(
    database: Database,
    second_database: Database,
    smtp_server: SmtpServer,
    tmp_path: Path,
    wall: WallClock,
) -> None:
    """Two runs on one database whose sender addresses (hence Message-IDs) differ: an event
    they both enqueue is one outbox row and one mail."""
    ours = Notifier(database, settings_for(tmp_path, smtp_server), now=wall)
    theirs = Notifier(
        second_database, settings_for(tmp_path, smtp_server, sender=OTHER_SENDER), now=wall
    )
    fill = trade_event(wall, "MSFT")
    database.events.insert_many([fill])
    enqueue_live(ours, fill)
    enqueue_live(theirs, fill)
    assert len(ours.repository.rows()) == 1
    at_once(drain(ours), drain(theirs))
    assert smtp_server.event_ids() == {str(fill.id): 1}
    assert len(smtp_server.messages()) == 1


def test_two_catch_ups_at_the_same_moment_mail_each_lost_event_once(
    database: Database,
    second_database: Database,
    smtp_server: SmtpServer,
    tmp_path: Path,
    wall: WallClock,
) -> None:
    """Two runs starting together on one database both catch up the same lost events: each
    event is mailed once, whatever the two sender addresses."""
    ours = Notifier(database, settings_for(tmp_path, smtp_server), now=wall)
    theirs = Notifier(
        second_database, settings_for(tmp_path, smtp_server, sender=OTHER_SENDER), now=wall
    )
    lost = [trade_event(wall, f"SYM{n}") for n in range(40)]
    database.events.insert_many(lost)
    at_once(ours.catch_up, theirs.catch_up)
    assert len(ours.repository.rows()) == len(lost)
    at_once(drain(ours), drain(theirs))
    assert smtp_server.event_ids() == {str(event.id): 1 for event in lost}
    assert len(smtp_server.messages()) == len(lost)


def test_a_recovery_report_enqueued_by_two_starts_is_mailed_once(
    database: Database,
    second_database: Database,
    smtp_server: SmtpServer,
    tmp_path: Path,
    wall: WallClock,
) -> None:
    """The report of one crash, enqueued again by a second start (same token, no event): one
    mail, because its Message-ID is derived from the token."""
    first = Notifier(database, settings_for(tmp_path, smtp_server), now=wall)
    again = Notifier(second_database, settings_for(tmp_path, smtp_server), now=wall)
    made = first.enqueue("recovery_report", RECOVERY_REPORT, token="recovery:7", severity="ERROR")
    repeat = again.enqueue("recovery_report", RECOVERY_REPORT, token="recovery:7")
    assert made.record is not None
    assert repeat.duplicate
    drain(first)()
    drain(again)()
    assert smtp_server.message_ids() == {made.record.message_id: 1}
    assert len(smtp_server.messages()) == 1


def test_an_event_mail_has_the_same_message_id_wherever_it_is_made(
    database: Database, smtp_server: SmtpServer, tmp_path: Path, wall: WallClock
) -> None:
    """The mail of an event carries a Message-ID derived from the event: the same when a
    database restored from a backup makes it again, so mail readers show it once."""
    fill = trade_event(wall, "NVDA")
    first = Notifier(database, settings_for(tmp_path, smtp_server), now=wall)
    enqueue_live(first, fill)
    stored = first.repository.rows()
    assert len(stored) == 1
    restored_db = Database.open(f"sqlite:///{tmp_path / 'restored' / 'trading-bot.db'}")
    try:
        restored_db.upgrade()
        restored = Notifier(restored_db, settings_for(tmp_path, smtp_server), now=wall)
        enqueue_live(restored, fill)
        assert [row.message_id for row in restored.repository.rows()] == [stored[0].message_id]
    finally:
        restored_db.dispose()
