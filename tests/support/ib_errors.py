"""Failing a test on unexpected ERROR records from ib_async, asyncio or the simulator.

``IbErrorGuard`` collects the ERROR records of ``WATCHED_LOGGERS``; ``guard_ib_errors``
attaches a guard for the body of a fixture and fails the test at teardown on any record
whose message the test did not allow with ``guard.allow(pattern)``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TypeVar

import pytest

WATCHED_LOGGERS = ("ib_async", "asyncio", "tradingbot.gateway")
# What ib_async logs at ERROR while a gateway refuses connections (a restart window).
REFUSED = r"API connection failed|Make sure API port|ConnectionRefusedError|Connect call failed"


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
        """Messages of ERROR records not matched by an allowed pattern."""
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if not any(p.search(r.getMessage()) for p in self._allowed)
        ]


G = TypeVar("G", bound=IbErrorGuard)


def guard_ib_errors(guard: G) -> Iterator[G]:
    """Yield ``guard`` attached to the watched loggers; fail on its unexpected records."""
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
