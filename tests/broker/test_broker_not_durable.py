"""Events that cannot be made durable: an order is refused and never sent; a fill is
not lost (its next report stores it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from brokerharness import BrokerHarness, at_gateway, wait_until
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from support.tcp_proxy import TcpProxy
from tradingbot.broker import ConnectionState, OrderRequest, cancel_order, place_order
from tradingbot.events import TRADE
from tradingbot.events.event_logger import EventLoggerActor, EventLoggerSettings
from tradingbot.events.hub import EventHub
from tradingbot.events.recorder import EventNotDurable, EventRecorder
from tradingbot.events.spool import EventSpool
from tradingbot.gateway import SimulatorThread
from tradingbot.storage import Database, EventQuery
from tradingbot.supervision import SupervisionTree, supervisor, worker


@pytest.fixture
def proxy(fresh_postgres_url: str) -> Iterator[TcpProxy]:
    """A link to PostgreSQL that the test can cut: a real database outage."""
    url = make_url(fresh_postgres_url)
    link = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield link
    link.close()


@pytest.fixture
def logger_tree(
    fresh_postgres_url: str, proxy: TcpProxy, tmp_path: Path
) -> Iterator[SupervisionTree]:
    """A real event logger on PostgreSQL (through ``proxy``) whose spool is full."""
    url = make_url(fresh_postgres_url).set(host="127.0.0.1", port=proxy.port)
    database = Database.open(url.render_as_string(hide_password=False))
    database.upgrade()
    spool = EventSpool(tmp_path / "spool", max_bytes=1)  # any append fails: SpoolFull
    settings = EventLoggerSettings(flush_interval_s=0.05, retry_interval_s=0.2)
    tree = SupervisionTree(
        supervisor(
            "root",
            [
                worker(
                    "event_logger", lambda: EventLoggerActor(database, spool, EventHub(), settings)
                )
            ],
        ),
        listeners=(),
    )
    tree.start()
    yield tree
    tree.stop()
    database.dispose()


@pytest.mark.postgres
def test_an_order_whose_event_is_not_durable_is_refused_and_never_reaches_the_gateway(
    sim: SimulatorThread, proxy: TcpProxy, logger_tree: SupervisionTree
) -> None:
    """Database down and spool full: placing an order raises EventNotDurable and the gateway
    never sees it; once the database is back the next order goes through, alone."""
    broker = BrokerHarness(sim.port)
    broker.recorder = EventRecorder(logger_tree.handle("event_logger"))
    broker.start()
    try:
        broker.wait_state(ConnectionState.SYNCED)
        proxy.cut()
        with pytest.raises(EventNotDurable, match="database and spool both failed"):
            place_order(
                broker.tree.handle("broker"),
                broker.status,
                OrderRequest("AAPL", "BUY", 5, client_order_id="not-durable"),
                timeout_s=30,
            )
        assert broker.status.order("TB-not-durable") is None

        proxy.restore()
        # The broker handles one message at a time and the gateway reads one connection in
        # order: once this later order is at the gateway, the refused one would be too.
        later = wait_until(
            lambda: _place_when_durable(broker, "after-outage"),
            timeout_s=30,
            message="an order accepted once the database is back",
        )
        wait_until(
            lambda: sim.call(lambda s: [o.order_ref for o in s.brokerage.orders.values()]),
            message="the later order at the gateway",
        )
        at_gateway = sim.call(lambda s: [o.order_ref for o in s.brokerage.orders.values()])
        assert at_gateway == [later]
    finally:
        broker.stop()


def _place_when_durable(broker: BrokerHarness, key: str) -> str | None:
    """Place an order; ``None`` while its event still cannot be made durable."""
    try:
        return place_order(
            broker.tree.handle("broker"),
            broker.status,
            OrderRequest("AAPL", "BUY", 1, client_order_id=key),
            timeout_s=30,
        )
    except EventNotDurable:
        return None


@pytest.mark.postgres
def test_a_fill_that_could_not_be_stored_is_stored_once_when_reported_again(
    sim: SimulatorThread, proxy: TcpProxy, logger_tree: SupervisionTree, fresh_postgres_url: str
) -> None:
    """A cancel that cannot be stored is refused and not sent; a fill that arrives while
    neither the database nor the spool can take its TRADE event is not lost: the gateway's
    report after the next reconnect stores it, once."""
    broker = BrokerHarness(sim.port)
    broker.recorder = EventRecorder(logger_tree.handle("event_logger"))
    broker.start()
    database = Database.open(fresh_postgres_url)
    try:
        broker.wait_state(ConnectionState.SYNCED)
        market = sim.call(lambda s: s.brokerage.prices.price("MSFT"))
        limit = round(market * 0.5, 2)
        ref = place_order(
            broker.tree.handle("broker"),
            broker.status,
            OrderRequest("MSFT", "BUY", 3, "LMT", limit, client_order_id="fill-outage"),
        )
        wait_until(
            lambda: (o := broker.status.order(ref)) is not None and o.status == "Submitted",
            message="the order to rest at the gateway",
        )
        proxy.cut()
        # A cancel whose ORDER event cannot be stored is refused: the order stays open.
        with pytest.raises(EventNotDurable, match="database and spool both failed"):
            cancel_order(broker.tree.handle("broker"), broker.status, ref, timeout_s=30)
        assert at_gateway(sim, ref) == ["Submitted"]
        with capture_logs() as logs:

            def fill_now(s: Any) -> list[str]:
                s.brokerage.prices.set_price("MSFT", limit * 0.9)
                s.tick()
                return [e.exec_id for e in s.brokerage.executions]

            [exec_id] = sim.call(fill_now)
            wait_until(
                lambda: any(line["event"] == "broker_fill_not_recorded" for line in logs),
                timeout_s=60,
                message="the fill's TRADE event to fail (database and spool down)",
            )
        assert not broker.status.fill_seen(exec_id)
        proxy.restore()
        sim.run(sim.call(lambda s: s.refuse_connections(1.0)))
        broker.wait_state(ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
        broker.wait_state(ConnectionState.SYNCED, timeout_s=30)
        wait_until(
            lambda: len(_trades(database)) >= 1, timeout_s=60, message="the TRADE event stored"
        )
        [trade] = _trades(database)
        assert trade.context["exec_id"] == exec_id
        assert trade.trade_id == ref
    finally:
        database.dispose()
        broker.stop()


def _trades(database: Database) -> list[Any]:
    return list(database.events.query(EventQuery(types=[TRADE], limit=100)).events)
