"""Fixtures for the bar update: the real simulator, a real broker actor, its ``historical_bars``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.simulator import running_simulator
from support.waiting import wait_until
from tradingbot.broker import BrokerActor, BrokerSettings, BrokerStatus, ConnectionState
from tradingbot.gateway import SimulatorThread
from tradingbot.history import FetchBars
from tradingbot.scheduler.shipped import broker_bars
from tradingbot.supervision import SupervisionTree, supervisor, worker


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A gateway simulator on an ephemeral loopback port (always-open session)."""
    with running_simulator() as thread:
        yield thread


@pytest.fixture
def broker_tree(sim: SimulatorThread) -> Iterator[tuple[SupervisionTree, BrokerStatus]]:
    """A tree with one broker actor synced with ``sim``."""
    status = BrokerStatus()
    settings = BrokerSettings(host="127.0.0.1", port=sim.port, client_id=9, connect_timeout_s=2.0)
    tree = SupervisionTree(
        supervisor("root", [worker("broker", lambda: BrokerActor(settings, status))]),
        listeners=(),
    )
    tree.start()
    wait_until(lambda: status.view().state == ConnectionState.SYNCED, message="the broker synced")
    yield tree, status
    tree.stop()


@pytest.fixture
def fetch(broker_tree: tuple[SupervisionTree, BrokerStatus]) -> FetchBars:
    """``historical_bars`` through the broker actor, as the runtime wires it."""
    tree, status = broker_tree
    return broker_bars(lambda: tree, status)
