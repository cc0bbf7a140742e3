"""A dedicated asyncio event loop on its own thread, for the ``ib_async`` client.

One ``ib_async.IB`` lives on one loop and is touched only from that loop's thread:
callers hand it coroutines (:meth:`LoopThread.submit`), which run there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every task of ``loop`` and let each finish its cancellation."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


class LoopThread:
    """An event loop running forever on a daemon thread until :meth:`stop`."""

    def __init__(self, name: str = "ib-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        # Every submitted coroutine's future until it is done: asyncio keeps only a weak
        # reference to a waiting task, so a task awaiting something nothing else holds
        # would be garbage-collected mid-flight -- its done callback (a caller's answer,
        # an order's end) never run. Held here, it runs, or is cancelled at stop.
        self._in_flight: dict[concurrent.futures.Future[Any], Coroutine[Any, Any, Any]] = {}
        self._in_flight_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            raise RuntimeError("LoopThread already started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"{self._name}: the event loop did not start")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                # Let callbacks scheduled by the last ones (transport closes) run.
                loop.run_until_complete(asyncio.sleep(0))
                _cancel_all(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                _cancel_all(loop)  # any submitted meanwhile
            finally:
                loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; the future resolves in the loop's thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeError(f"{self._name} is not running")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        with self._in_flight_lock:
            self._in_flight[future] = coro
        future.add_done_callback(self._done)
        return future

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._in_flight_lock:
            self._in_flight.pop(future, None)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coro`` on the loop and wait for its result (TimeoutError after ``timeout_s``)."""
        future = self.submit(coro)
        # Not future.result(timeout): a TimeoutError raised *by* the coroutine must not be
        # mistaken for this wait running out.
        done, _ = concurrent.futures.wait([future], timeout_s)
        if not done:
            future.cancel()
            raise TimeoutError(f"no result within {timeout_s:g} s")
        return future.result()

    def call(self, fn: Callable[[], T], timeout_s: float) -> T:
        """Run ``fn()`` on the loop thread and return its result."""

        async def call() -> T:
            return fn()

        return self.run(call(), timeout_s)

    def stop(self, before: Callable[[], object] | None = None, timeout_s: float = 5.0) -> None:
        """Run ``before`` on the loop (``ib.disconnect``), stop the loop, join (idempotent)."""
        loop, thread = self._loop, self._thread
        self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("LoopThread.stop() called from its own thread")

        def finish() -> None:
            try:
                if before is not None:
                    before()
            finally:
                loop.stop()

        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(finish)
        thread.join(timeout_s)
        if thread.is_alive():
            return
        # Submitted as the loop was ending, never started: cancel them, so that their
        # callbacks still answer (every task that did start was cancelled on the loop).
        with self._in_flight_lock:
            left, self._in_flight = self._in_flight, {}
        for future, coro in left.items():
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()  # never started: nothing of it ran
            future.cancel()
