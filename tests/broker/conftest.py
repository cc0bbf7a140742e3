"""Fixtures for broker tests: the real simulator, the real ib_async client, real sockets.

Every test fails on an ERROR record from the ``ib_async`` loggers, ``asyncio`` or the
simulator unless it allowed that message with ``ib_errors.allow(pattern)``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from brokerharness import BrokerHarness

from tradingbot.gateway import SimulatorThread, build_simulator

WATCHED_LOGGERS = ("ib_async", "asyncio", "tradingbot.gateway")


class IbErrorGuard(logging.Handler):
    """Collects ERROR records; the test fails at teardown on any not explicitly allowed."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._allowed: list[re.Pattern[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def allow(self, pattern: str) -> None:
        """Expect ERROR records whose message matches ``pattern`` (a regex)."""
        self._allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if not any(p.search(r.getMessage()) for p in self._allowed)
        ]


@pytest.fixture(autouse=True)
def ib_errors() -> Iterator[IbErrorGuard]:
    """Fail the test on unexpected ERROR logs from ib_async, asyncio or the simulator."""
    guard = IbErrorGuard()
    loggers = [logging.getLogger(name) for name in WATCHED_LOGGERS]
    for lg in loggers:
        lg.addHandler(guard)
    try:
        yield guard
    finally:
        for lg in loggers:
            lg.removeHandler(guard)
    problems = guard.unexpected()
    if problems:
        pytest.fail("unexpected ERROR log records:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A gateway simulator on an ephemeral loopback port, in its own thread."""
    thread = SimulatorThread(build_simulator(seed=0, tick_interval_s=0.05), port=0)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def broker(sim: SimulatorThread) -> Iterator[BrokerHarness]:
    """A tree with one broker actor connected to ``sim`` (quick probes, quick backoff)."""
    harness = BrokerHarness(sim.port)
    harness.start()
    yield harness
    harness.stop()
