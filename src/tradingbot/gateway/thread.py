"""Run a ``GatewaySimulator`` on its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .server import GatewaySimulator

__all__ = ["SimulatorThread"]

T = TypeVar("T")


class SimulatorThread:
    """A simulator on a daemon thread; ``start()`` returns once it is listening."""

    def __init__(
        self,
        simulator: GatewaySimulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.simulator = simulator
        self._host = host
        self._requested_port = port
        self._timeout = start_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0

    def start(self) -> int:
        """Start the thread and the simulator; return the bound port (raises on failure)."""
        if self._thread is not None:
            raise RuntimeError("SimulatorThread already started")
        self._thread = threading.Thread(target=self._run, name="gateway-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError("gateway simulator did not start in time")
        if self._error is not None:
            raise RuntimeError("gateway simulator failed to start") from self._error
        return self.port

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            if self.simulator is None:
                self.simulator = GatewaySimulator()
            self.port = loop.run_until_complete(
                self.simulator.start(self._host, self._requested_port)
            )
        except (OSError, RuntimeError, ValueError) as exc:  # start() re-raises it
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.simulator.stop())
            loop.close()

    def call(self, fn: Callable[[GatewaySimulator], T], timeout_s: float = 10.0) -> T:
        """Run ``fn(simulator)`` on the simulator's loop thread and return its result."""
        return self.run(self._call(fn), timeout_s)

    async def _call(self, fn: Callable[[GatewaySimulator], T]) -> T:
        assert self.simulator is not None
        return fn(self.simulator)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        """Run a coroutine on the simulator's loop and wait for its result."""
        if self._loop is None or not self._ready.is_set():
            coro.close()
            raise RuntimeError("SimulatorThread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the simulator and join the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._thread = None
        self._loop = None
