"""Fixtures for broker tests: the real simulator, the real ib_async client, real sockets.

Every test fails on an ERROR record from the ``ib_async`` loggers, ``asyncio`` or the
simulator unless it allowed that message with ``ib_errors.allow(pattern)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from brokerharness import BrokerHarness

from support.ib_errors import IbErrorGuard, guard_ib_errors
from support.simulator import running_simulator
from tradingbot.gateway import SimulatorThread


@pytest.fixture(autouse=True)
def ib_errors() -> Iterator[IbErrorGuard]:
    """Fail the test on unexpected ERROR logs from ib_async, asyncio or the simulator."""
    yield from guard_ib_errors(IbErrorGuard())


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A gateway simulator on an ephemeral loopback port, in its own thread."""
    with running_simulator() as thread:
        yield thread


@pytest.fixture
def broker(sim: SimulatorThread) -> Iterator[BrokerHarness]:
    """A tree with one broker actor connected to ``sim`` (quick probes, quick backoff)."""
    harness = BrokerHarness(sim.port)
    harness.start()
    yield harness
    harness.stop()
