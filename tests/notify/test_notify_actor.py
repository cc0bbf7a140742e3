"""The notifier actor in a real tree: events become mail, crashes become alerts, and a
blocked mail server never blocks the actor."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.notify_support import TRADE, notify_settings, smtp_settings
from support.smtp_server import SmtpServer
from support.waiting import wait_until
from tradingbot.events import RISK, SYSTEM, Severity
from tradingbot.events import TRADE as TRADE_TYPE
from tradingbot.events.event_logger import EventLoggerActor, EventLoggerSettings
from tradingbot.events.hub import EventHub, Listener
from tradingbot.events.recorder import EventRecorder
from tradingbot.events.spool import EventSpool
from tradingbot.events.system import SystemEventRecorder
from tradingbot.notify import Enqueued, Notifier, NotifySettings
from tradingbot.notify.actor import DeliverNow, EventsPublished, NotifierActor, SendNotification
from tradingbot.storage import Database
from tradingbot.supervision import SupervisedActor, SupervisionTree, supervisor, worker


def restarts(tree: SupervisionTree, actor_id: str) -> int:
    node = tree.snapshot().find(actor_id)
    assert node is not None
    return node.restarts


class Victim(SupervisedActor):
    """A worker for crash drills."""


@dataclass
class Bench:
    tree: SupervisionTree
    notifier: Notifier
    recorder: EventRecorder
    listener: Listener

    def stop(self) -> None:
        # As the runtime does: no more events for the notifier once the tree stops (the
        # event logger's last flush would tell a stopped notifier).
        self.listener.close()
        self.tree.stop()


def start_tree(database: Database, tmp_path: Path, settings: NotifySettings) -> Bench:
    hub = EventHub()
    notifier = Notifier(database, settings)
    tree = SupervisionTree(
        supervisor(
            "root",
            [
                worker(
                    "event_logger",
                    lambda: EventLoggerActor(
                        database, EventSpool(tmp_path / "spool"), hub, EventLoggerSettings()
                    ),
                ),
                worker("notifier", lambda: NotifierActor(notifier)),
                worker("victim", Victim),
            ],
            intensity=10,
        ),
        listeners=(),
        probe_interval_s=0.05,
        probe_deadline_s=0.5,
    )
    recorder = EventRecorder(tree.handle("event_logger"))
    tree.add_listener(SystemEventRecorder(recorder))
    handle = tree.handle("notifier")
    listener = hub.listen(lambda events: handle.tell(EventsPublished(tuple(events))))
    tree.start()
    return Bench(tree, notifier, recorder, listener)


@pytest.fixture
def bench(database: Database, smtp_server: SmtpServer, tmp_path: Path) -> Iterator[Bench]:
    settings = notify_settings(
        tmp_path, smtp_settings(smtp_server), poll_interval_s=0.05, retry_interval_s=0.05
    )
    bench = start_tree(database, tmp_path, settings)
    yield bench
    bench.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def test_a_trade_event_becomes_a_trade_mail(bench: Bench, smtp_server: SmtpServer) -> None:
    """A durable TRADE event is mailed once, with the fill in the subject."""
    bench.recorder.record_durable(TRADE_TYPE, "BUY 10 AAPL @ 189.2", context=dict(TRADE))
    (received,) = smtp_server.wait_for(1)
    assert received.message["Subject"] == "[trading-bot] FILLED BUY 10 AAPL @ 189.20"
    wait_until(lambda: bench.notifier.status.snapshot()["outbox_depth"] == 0)
    assert len(smtp_server.messages()) == 1


def test_an_actor_crash_drill_produces_a_system_error_alert(
    bench: Bench, smtp_server: SmtpServer
) -> None:
    """Crashing an actor on purpose mails an ERROR alert naming it."""
    bench.tree.crash("victim")
    received = smtp_server.wait_for(1)[0]
    subject = str(received.message["Subject"])
    assert subject.startswith("[trading-bot] ERROR SYSTEM: actor_crashed victim")
    assert "CrashDrill" in subject
    text = received.message.get_body(("plain",))
    assert text is not None
    assert "victim" in text.get_content()


def test_low_severity_and_other_events_do_not_mail(bench: Bench, smtp_server: SmtpServer) -> None:
    """A RISK warning under the alert severity is not mailed; a RISK error is."""
    bench.recorder.record(RISK, "exposure at 80 %", severity=Severity.WARNING)
    bench.recorder.record(RISK, "exposure at 120 %", severity=Severity.ERROR)
    (received,) = smtp_server.wait_for(1)
    assert "exposure at 120 %" in str(received.message["Subject"])
    bench.tree.handle("notifier").ask(DeliverNow(), 5.0)
    assert len(smtp_server.messages()) == 1


def test_send_notification_is_durable_when_answered(bench: Bench, smtp_server: SmtpServer) -> None:
    """Asking the actor to send returns once the outbox row exists; the mail follows."""
    result = bench.tree.handle("notifier").ask(
        SendNotification(
            kind="recovery_report",
            context={"discrepancies": [], "previous_run": {"pid": 1}},
            severity=Severity.ERROR,
        ),
        5.0,
    )
    assert isinstance(result, Enqueued)
    assert result.record is not None
    assert bench.notifier.repository.get(result.record.id) is not None
    (received,) = smtp_server.wait_for(1)
    assert received.message_id == result.record.message_id


def test_a_crash_of_the_notifier_loses_and_doubles_nothing(
    bench: Bench, smtp_server: SmtpServer
) -> None:
    """Events told while the notifier restarts reach its replacement; each mail arrives
    once; its own crashes are alerts too."""
    handle = bench.tree.handle("notifier")
    for n in range(5):
        wait_until(lambda: handle.status == "running")
        bench.tree.crash("notifier")
        wait_until(lambda n=n: restarts(bench.tree, "notifier") == n + 1)
        bench.recorder.record(SYSTEM, f"disk {n} failing", severity=Severity.ERROR)
    # Five disk alerts, and the first crash alert (the other four wait in its storm window).
    smtp_server.wait_for(6)
    wait_until(lambda: bench.notifier.status.snapshot()["outbox_depth"] == 1)
    subjects = sorted(str(m.message["Subject"]) for m in smtp_server.messages())
    assert [s for s in subjects if "disk" in s] == [
        f"[trading-bot] ERROR SYSTEM: disk {n} failing" for n in range(5)
    ]
    assert sum("actor_crashed notifier" in s for s in subjects) == 1
    assert set(smtp_server.message_ids().values()) == {1}


def test_a_black_holed_server_does_not_block_the_actor(database: Database, tmp_path: Path) -> None:
    """While a pass waits on a server that never answers, the actor answers at once."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # accepts connections, never says a word
    port = hole.getsockname()[1]
    settings = notify_settings(
        tmp_path,
        smtp_settings_for_port(port, timeout_s=3.0),
        poll_interval_s=0.05,
    )
    bench = start_tree(database, tmp_path, settings)
    try:
        bench.recorder.record(SYSTEM, "disk failing", severity=Severity.ERROR)
        wait_until(lambda: bench.notifier.status.snapshot()["outbox_depth"] == 1)
        handle = bench.tree.handle("notifier")
        for _ in range(20):  # 1 s of asks, each answered quickly while the pass hangs
            handle.ask(DeliverNow(), 0.5)
            time.sleep(0.05)
        assert bench.tree.unresponsive() == []
        wait_until(lambda: bench.notifier.status.snapshot()["server"] == "down")
    finally:
        bench.stop()
        hole.close()


def smtp_settings_for_port(port: int, timeout_s: float) -> Any:
    from tradingbot.notify import SmtpSettings

    return SmtpSettings(host="127.0.0.1", port=port, tls="none", timeout_s=timeout_s)


def start_and_stop(
    database: Database,
    tmp_path: Path,
    settings: NotifySettings,
    smtp_server: SmtpServer,
    mails: int,
) -> None:
    """One start of the tree: wait until ``mails`` are at the server, a last pass, stop."""
    bench = start_tree(database, tmp_path, settings)
    try:
        smtp_server.wait_for(mails)
        bench.tree.handle("notifier").ask(DeliverNow(), 5.0)
    finally:
        bench.stop()


def test_a_trade_stored_but_never_enqueued_is_mailed_at_the_next_start(
    database: Database, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """A TRADE event whose mail a kill -9 kept out of the outbox is mailed once at start."""
    from tradingbot.events import Event

    earlier = Notifier(database, notify_settings(tmp_path, smtp_settings(smtp_server)))
    earlier.enqueue("trade_execution", dict(TRADE), token="an-older-trade")
    earlier.deliver_due()
    event = Event(type=TRADE_TYPE, message="SELL 5 MSFT @ 405", context={**TRADE, "symbol": "MSFT"})
    database.events.insert_many([event])  # stored, but the process died before the outbox
    settings = notify_settings(tmp_path, smtp_settings(smtp_server), poll_interval_s=0.05)
    for _ in range(2):  # the second start finds it already enqueued
        start_and_stop(database, tmp_path, settings, smtp_server, mails=2)
    subjects = [str(m.message["Subject"]) for m in smtp_server.messages()]
    assert subjects[1] == "[trading-bot] FILLED BUY 10 MSFT @ 189.20"
    assert len(subjects) == 2


def test_an_alert_stored_but_never_enqueued_is_mailed_once_at_the_next_start(
    database: Database, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """An ERROR event whose alert a kill -9 kept out of the outbox is mailed at start, once."""
    from tradingbot.events import Event

    event = Event(
        type=SYSTEM,
        severity=Severity.ERROR,
        source="broker",
        message="order TB-7 rejected by the gateway",
        context={"event": "order_rejected"},
    )
    database.events.insert_many([event])  # stored, but the process died before the outbox
    settings = notify_settings(tmp_path, smtp_settings(smtp_server), poll_interval_s=0.05)
    for _ in range(2):  # the second start finds it already in the outbox
        start_and_stop(database, tmp_path, settings, smtp_server, mails=1)
    subjects = [str(m.message["Subject"]) for m in smtp_server.messages()]
    assert subjects == ["[trading-bot] ERROR SYSTEM: order TB-7 rejected by the gateway"]


def test_an_alert_counted_into_a_storm_mail_is_not_mailed_again_at_the_next_start(
    database: Database, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """A restart does not replay the alerts a storm mail already covered."""
    from tradingbot.events import Event
    from tradingbot.notify.routing import route

    settings = notify_settings(tmp_path, smtp_settings(smtp_server), poll_interval_s=0.05)
    earlier = Notifier(database, settings)
    storm = [
        Event(
            type=RISK,
            severity=Severity.ERROR,
            source="risk",
            message="daily loss limit reached",
            context={"event": "loss_limit"},
        )
        for _ in range(5)
    ]
    database.events.insert_many(storm)
    for event in storm:  # what the running notifier did: one mail, four counted
        wanted = route(event, settings)
        assert wanted is not None
        earlier.enqueue_notification(wanted)  # as the actor does
    counts_before = [row.coalesced for row in earlier.repository.rows()]
    assert counts_before == [1, 4]  # the first alert, and its follow-up counting the rest
    start_and_stop(database, tmp_path, settings, smtp_server, mails=1)
    assert [row.coalesced for row in earlier.repository.rows()] == counts_before
    assert len(smtp_server.messages()) == 1  # the follow-up waits for its window to end


@pytest.mark.postgres
def test_a_database_outage_holds_notifications_then_writes_and_sends_them(
    fresh_postgres_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """With the outbox unwritable, alerts wait in memory (health fails); then all are sent."""
    from sqlalchemy.engine import make_url

    from support.tcp_proxy import TcpProxy
    from tradingbot.health.checks import notifier_check

    url = make_url(fresh_postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    database = Database.open(proxied)
    database.upgrade()
    settings = notify_settings(tmp_path, smtp_settings(smtp_server), poll_interval_s=0.05)
    bench = start_tree(database, tmp_path, settings)
    try:
        proxy.cut()
        for n in range(3):
            bench.recorder.record(SYSTEM, f"disk {n} failing", severity=Severity.ERROR)
        wait_until(lambda: bench.notifier.status.snapshot()["unstored"] == 3)
        (depth, _) = notifier_check(bench.notifier.status)()
        assert depth.status == "fail"
        assert smtp_server.messages() == []
        proxy.restore()
        smtp_server.wait_for(3, timeout_s=60)
        wait_until(lambda: bench.notifier.status.snapshot()["unstored"] == 0)
        (depth, _) = notifier_check(bench.notifier.status)()
        assert depth.status == "pass"
        assert set(smtp_server.message_ids().values()) == {1}
    finally:
        bench.stop()
        database.dispose()
        proxy.close()
