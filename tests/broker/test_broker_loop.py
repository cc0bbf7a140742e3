"""The client's event-loop thread: every submitted coroutine's caller gets an answer, even
when nothing else holds what the coroutine waits for, and even as the loop closes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
from collections.abc import AsyncIterator

import pytest

from tradingbot.broker import loop as loop_module
from tradingbot.broker.loop import LoopThread


def test_a_waiting_coroutine_nothing_else_holds_is_cancelled_at_stop_not_collected() -> None:
    """A coroutine waiting on an event only it references survives a garbage collection
    (asyncio holds waiting tasks weakly) and is cancelled when the loop stops, so its
    done callback runs (an order's caller is answered, its end recorded)."""
    loop = LoopThread(name="test-loop")
    loop.start()
    waiting = threading.Event()
    answered: list[concurrent.futures.Future[None]] = []

    async def wait_forever() -> None:
        waiting.set()
        await asyncio.Event().wait()

    # The future is not kept (as a caller that only adds a callback does not keep it).
    loop.submit(wait_forever()).add_done_callback(answered.append)
    assert waiting.wait(5)
    gc.collect()
    assert answered == []
    loop.stop()
    assert len(answered) == 1
    assert answered[0].cancelled()


def _submit_while_stopping(
    loop: LoopThread, closing: threading.Event, go_on: threading.Event
) -> concurrent.futures.Future[None]:
    """Stop ``loop`` in a thread; once it says ``closing`` (and waits for ``go_on``),
    submit a coroutine; return its future after the stop has finished."""
    stopper = threading.Thread(target=loop.stop)
    stopper.start()
    assert closing.wait(5)
    late = loop.submit(asyncio.sleep(30))
    go_on.set()
    stopper.join(10)
    assert not stopper.is_alive()
    return late


def test_a_coroutine_submitted_during_the_loops_last_clean_up_is_cancelled_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A coroutine submitted while the stopping loop closes its async generators (after
    it cancelled its tasks) is cancelled by the loop too: its caller is answered, and no
    task is left to be destroyed pending."""
    loop = LoopThread(name="test-loop")
    loop.start()
    closing, go_on = threading.Event(), threading.Event()
    generators: list[AsyncIterator[int]] = []

    async def generator() -> AsyncIterator[int]:
        try:
            yield 1
        finally:  # run by the loop's shutdown_asyncgens()
            closing.set()
            go_on.wait(5)

    async def start_generator() -> None:
        started = generator()
        await anext(started)
        generators.append(started)

    loop.run(start_generator(), 5)
    late = _submit_while_stopping(loop, closing, go_on)
    assert late.cancelled()
    del late
    gc.collect()
    assert "Task was destroyed but it is pending" not in caplog.text


def test_a_coroutine_submitted_after_the_loops_last_pass_is_cancelled_by_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A coroutine submitted after the loop's last cancellation pass, just before it
    closes, never runs: stop() cancels its future, so its caller never waits forever."""
    closing, go_on = threading.Event(), threading.Event()
    passes: list[int] = []
    real_cancel_all = loop_module._cancel_all

    def last_pass_then_wait(loop: asyncio.AbstractEventLoop) -> None:
        real_cancel_all(loop)
        passes.append(1)
        if len(passes) == 2:  # the last pass: the loop closes next
            closing.set()
            go_on.wait(5)

    monkeypatch.setattr(loop_module, "_cancel_all", last_pass_then_wait)
    loop = LoopThread(name="test-loop")
    loop.start()
    assert _submit_while_stopping(loop, closing, go_on).cancelled()
