"""Fixtures for gateway simulator tests: the real ib_async client against the simulator.

Every test fails on any ERROR record from the ``ib_async`` loggers (decoder, wrapper,
client), from ``asyncio`` or from the simulator, unless the test allowed that exact
message with ``ib_errors.allow(pattern)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from simharness import IbErrorGuard

from support.ib_errors import guard_ib_errors


@pytest.fixture(autouse=True)
def ib_errors() -> Iterator[IbErrorGuard]:
    """Fail the test on unexpected ERROR logs from ib_async, asyncio or the simulator."""
    yield from guard_ib_errors(IbErrorGuard())
