"""The start-up catch-up mails the events a crash kept out of the outbox — once, and only them."""

from __future__ import annotations

from pathlib import Path

from support.notify_support import (
    WallClock,
    mailed_by_the_actor,
    mailed_event_ids,
    notifier_to_folder,
    trade_event,
)
from tradingbot.events import RISK, Event, Severity
from tradingbot.storage import Database


def loss_alert(wall: WallClock) -> Event:
    return Event(
        type=RISK,
        severity=Severity.ERROR,
        source="risk",
        message="daily loss limit reached",
        context={"event": "loss_limit"},
        timestamp=wall(),
    )


def test_a_mail_no_event_made_does_not_hide_a_lost_trade(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """The watchdog's alert, written after the crash, does not shorten the look-back."""
    notifier = notifier_to_folder(database, tmp_path, wall)
    mailed_by_the_actor(database, notifier, trade_event(wall, "AAPL"))
    wall.advance(60)
    lost = trade_event(wall, "MSFT")
    database.events.insert_many([lost])  # committed, then kill -9 before its outbox row
    wall.advance(9 * 60)
    notifier.enqueue("alert", {"message": "trading-bot is dead"}, severity="CRITICAL")
    wall.advance(2 * 60)

    assert notifier.catch_up() == 1
    assert mailed_event_ids(notifier)[-1] == str(lost.id)
    assert notifier.catch_up() == 0  # the next start finds it in the outbox


def test_an_event_another_process_mailed_under_another_sender_is_not_mailed_again(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """Two accounts on one database: the other account's mail names the event too."""
    other = notifier_to_folder(database, tmp_path, wall, sender="Desk B <bot@desk-b.example>")
    mailed_by_the_actor(database, other, trade_event(wall, "AAPL"))
    mailed_by_the_actor(database, other, loss_alert(wall))
    wall.advance(30)

    ours = notifier_to_folder(database, tmp_path, wall)
    assert ours.catch_up() == 0
    assert len(ours.repository.rows()) == 2


def test_a_lost_alert_after_its_storm_window_ended_is_mailed(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """An identical alert after the window (a new follow-up mail) is not taken as covered."""
    notifier = notifier_to_folder(database, tmp_path, wall, storm_window_s=300.0)
    mailed_by_the_actor(database, notifier, loss_alert(wall))  # the first mail
    wall.advance(10)
    mailed_by_the_actor(database, notifier, loss_alert(wall))  # a follow-up until t0 + 300
    wall.advance(390)
    lost = loss_alert(wall)
    database.events.insert_many([lost])
    wall.advance(30)

    assert notifier.catch_up() == 1
    assert mailed_event_ids(notifier)[-1] == str(lost.id)


def test_identical_alerts_lost_together_are_one_mail_and_a_follow_up_counting_the_rest(
    database: Database, tmp_path: Path, wall: WallClock
) -> None:
    """The catch-up's own mail does not swallow the older lost alerts: they are counted."""
    notifier = notifier_to_folder(database, tmp_path, wall, storm_window_s=300.0)
    lost = []
    for _ in range(3):
        lost.append(loss_alert(wall))
        wall.advance(1)
    database.events.insert_many(lost)
    wall.advance(20)

    assert notifier.catch_up() == 3
    rows = notifier.repository.rows()
    assert [(row.event_id, row.coalesced) for row in rows] == [
        (str(lost[0].id), 1),
        (str(lost[1].id), 2),  # the follow-up counts the second and the third
    ]
    assert notifier.catch_up() == 0
