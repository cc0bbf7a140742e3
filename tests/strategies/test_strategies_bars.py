"""Bars for strategies: warm-up from the gateway's history, then live bars as they complete."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from strategy_samples import FiveSecondBars, MinuteBars

from support.bot_config import bot_config
from support.waiting import wait_until
from tradingbot.runtime import Runtime


@pytest.fixture
def bot(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """A runtime running the sample strategy named by the test's parameter."""
    MinuteBars.warm.clear()
    FiveSecondBars.seen.clear()
    runtime = Runtime(
        bot_config(tmp_path, STRATEGIES=f"strategy_samples:{request.param}", WATCHLIST="AAPL")
    )
    runtime.start()
    yield runtime
    runtime.stop()


@pytest.mark.parametrize("bot", ["MinuteBars"], indirect=True)
def test_a_strategy_starts_with_its_warm_up_bars(bot: Runtime) -> None:
    """`warmup_bars` one-minute bars from the gateway's history are in ctx.bars at on_start."""
    (warm,) = wait_until(lambda: MinuteBars.warm, 30, "the strategy to start")
    assert len(warm) == 5
    assert all(b.symbol == "AAPL" and b.seconds == 60 for b in warm)
    starts = [b.start for b in warm]
    assert starts == sorted(starts)
    assert all(
        later - earlier == timedelta(minutes=1) for earlier, later in itertools.pairwise(starts)
    )


@pytest.mark.parametrize("bot", ["FiveSecondBars"], indirect=True)
def test_a_strategy_receives_live_bars_as_they_complete(bot: Runtime) -> None:
    """A strategy with bar_seconds=5 gets each completed real-time bar in on_bar."""
    seen = wait_until(lambda: FiveSecondBars.seen, 40, "a completed 5-second bar")
    assert seen[0].symbol == "AAPL"
    assert seen[0].seconds == 5
