"""Fixtures for gateway simulator tests: the real ib_async client against the simulator.

Every test fails on any ERROR record from the ``ib_async`` loggers (decoder, wrapper,
client), from ``asyncio`` or from the simulator, unless the test allowed that exact
message with ``ib_errors.allow(pattern)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from simharness import WATCHED_LOGGERS, IbErrorGuard


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
