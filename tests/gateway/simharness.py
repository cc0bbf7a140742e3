"""Helpers for gateway simulator tests: run scenarios, start simulators, connect clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from ib_async import IB

from support.ib_errors import IbErrorGuard
from tradingbot.gateway import Brokerage, GatewaySimulator, PriceModel

__all__ = ["IbErrorGuard", "connected", "run", "running_simulator", "wait_for"]


def run(coro: Coroutine[Any, Any, None], timeout_s: float = 20.0) -> None:
    """Run one test scenario on a fresh event loop with an overall timeout."""

    async def bounded() -> None:
        await asyncio.wait_for(coro, timeout_s)

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def running_simulator(
    *, seed: int = 1, tick_interval_s: float = 0.05, **kwargs: Any
) -> AsyncIterator[GatewaySimulator]:
    """A started simulator on an ephemeral loopback port, stopped afterwards."""
    brokerage = kwargs.pop("brokerage", None) or Brokerage(prices=PriceModel(seed))
    sim = GatewaySimulator(brokerage, tick_interval_s=tick_interval_s, **kwargs)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@contextlib.asynccontextmanager
async def connected(sim: GatewaySimulator, client_id: int = 1, **kwargs: Any) -> AsyncIterator[IB]:
    """A real ib_async client connected and synced; always disconnected afterwards."""
    ib = IB()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=client_id, timeout=3, **kwargs)
    try:
        yield ib
    finally:
        ib.disconnect()


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Poll ``predicate`` on the loop until it holds (fails the test on timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.01)
