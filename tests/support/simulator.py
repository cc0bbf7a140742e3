"""A gateway simulator running in its own thread for the length of a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tradingbot.gateway import GatewaySimulator, SimulatorThread, build_simulator


@contextmanager
def running_simulator(
    simulator: GatewaySimulator | None = None, **build: Any
) -> Iterator[SimulatorThread]:
    """``simulator`` (default: ``build_simulator(seed=0, tick_interval_s=0.05, **build)``)
    on an ephemeral loopback port in its own thread; stopped on exit."""
    if simulator is None:
        simulator = build_simulator(**{"seed": 0, "tick_interval_s": 0.05, **build})
    thread = SimulatorThread(simulator, port=0)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()
