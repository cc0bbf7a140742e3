"""The chaos test: the example strategy trades while its actors, the broker actor and (in
a second run) the whole process are killed at seeded random moments; afterwards the
simulator, the database and the outbox must agree.

The simulator runs in the test process (it outlives every ``kill -9`` of the bot, like an
IB Gateway). The moments are seeded: ``TRADINGBOT_CHAOS_SEED`` replays a failed run, and
every failure names its seed.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_support import Bot, BotFactory
from trading_support import books_agree, example_env, sim_books

from support.simulator import running_simulator
from support.waiting import wait_until
from tradingbot.gateway import SimulatorThread
from tradingbot.storage import Database

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("TRADINGBOT_CHAOS_SEED", "1414"))
ORDER_WAIT_S = 90.0  # a restart reconciles before the strategy starts again
SETTLE_WAIT_S = 60.0
ACTOR_KILLS = 8
PROCESS_KILLS = 3
STRATEGY = "strategy-ma_cross"
# The strategy and the broker, and the two actors between a fill and its mail.
ACTOR_TARGETS = (STRATEGY, "broker", "notifier", "event_logger")
# The root gives up (the process exits for systemd to restart it) after 3 restarts of its
# children in 5 s, by design; chaos stays below that: at most 2 root children in 6 s,
# else the strategy (under its own supervisor) is crashed instead.
ROOT_BUDGET = 2
ROOT_WINDOW_S = 6.0


@pytest.fixture
def gateway() -> Iterator[SimulatorThread]:
    """A simulator ticking fast, in the test process: it outlives the bot's kill -9. Its
    partial fills (2 shares per execution, one per tick) keep orders open across kills."""
    with running_simulator(seed=SEED % 997, tick_interval_s=0.1, max_fill_shares=2) as sim:
        yield sim


@contextmanager
def seeded(seed: int) -> Iterator[random.Random]:
    """The chaos schedule's random numbers; a failure inside names the seed to replay."""
    print(f"chaos seed {seed} (replay: TRADINGBOT_CHAOS_SEED={seed})")
    try:
        yield random.Random(seed)
    except AssertionError as exc:
        raise AssertionError(f"chaos seed {seed} (TRADINGBOT_CHAOS_SEED={seed}): {exc}") from exc


def _await_new_order(sim: SimulatorThread, bot: Bot, what: str) -> None:
    """Wait until one more order reached the simulator (the bot trades again)."""
    before = len(sim_books(sim).order_refs)

    def traded() -> bool:
        assert bot.alive(), f"trading-bot exited\n{bot.diagnostics()}"
        return len(sim_books(sim).order_refs) > before

    try:
        wait_until(traded, ORDER_WAIT_S, f"an order at the simulator {what}")
    except AssertionError as exc:
        trading = bot.shell("trading", as_json=True)
        raise AssertionError(f"{exc}\ntrading state: {trading.stdout or trading.stderr}") from None


def _settle_and_check(sim: SimulatorThread, bot: Bot) -> int:
    """Pause trading, let the last orders fill and the bot catch up; then the simulator,
    the database and the outbox must agree. Returns the number of executions."""
    paused = bot.shell("pause chaos over: checking the books")
    assert paused.returncode == 0, paused.stderr
    problems: list[str] = []

    def agreed() -> bool:
        problems[:] = books_agree(sim, bot.database_url, bot.home / "outbox")
        return sim_books(sim).open_orders == 0 and not problems

    try:
        wait_until(agreed, SETTLE_WAIT_S, "the simulator, database and outbox to agree")
    except AssertionError:
        raise AssertionError("books disagree:\n" + "\n".join(problems)) from None
    books = sim_books(sim)
    executions = len(books.executions)
    print(f"books agree: {len(books.order_refs)} orders, {executions} executions")
    assert executions > 0
    return executions


def test_killing_actors_while_trading_loses_and_duplicates_nothing(
    bot_factory: BotFactory,
    bot_database_url: str | None,
    gateway: SimulatorThread,
    short_tmp: Path,
) -> None:
    """While the example trades, the strategy, broker, notifier and event logger actors
    are crashed at random moments: no order reaches the simulator twice, every fill is
    one TRADE event and one trade mail, and every order's signal was stored before it."""
    env = example_env(short_tmp, gateway.port)
    bot = bot_factory(bot_database_url, env)
    with seeded(SEED) as rng:
        _await_new_order(gateway, bot, "from the first start")
        root_crashes: list[float] = []
        for n in range(ACTOR_KILLS):
            time.sleep(rng.uniform(0.0, 0.8))  # the seeded random moment, not a wait
            target = rng.choice(ACTOR_TARGETS)
            if target != STRATEGY:
                now = time.monotonic()
                root_crashes = [t for t in root_crashes if now - t < ROOT_WINDOW_S]
                if len(root_crashes) >= ROOT_BUDGET:
                    target = STRATEGY
                else:
                    root_crashes.append(now)
            print(f"crash #{n + 1}: {target}")
            crashed = bot.shell(f"crash {target}")
            assert crashed.returncode == 0, crashed.stderr
            _await_new_order(gateway, bot, f"after crash #{n + 1} of {target}")
        _settle_and_check(gateway, bot)
        for actor in ACTOR_TARGETS:
            node = bot.node(actor)
            assert node["status"] == "running", node


def test_kill_9_of_the_whole_process_loses_and_duplicates_nothing(
    bot_factory: BotFactory, gateway: SimulatorThread, short_tmp: Path
) -> None:
    """While the example trades, the process is killed with SIGKILL at random moments and
    restarted on the same home, database and simulator: no order is sent twice, every
    fill is one TRADE event and one trade mail, and every signal precedes its order."""
    env = example_env(short_tmp, gateway.port)
    bot = bot_factory(None, env)
    home = bot.home
    with seeded(SEED + 1) as rng:
        for n in range(PROCESS_KILLS):
            _await_new_order(gateway, bot, f"in run #{n + 1}")
            time.sleep(rng.uniform(0.0, 1.2))  # the seeded random moment, not a wait
            bot.signal(signal.SIGKILL)
            assert bot.wait() == -signal.SIGKILL
            bot = bot_factory(None, env, home=home)
        _await_new_order(gateway, bot, "after the last restart")
        _settle_and_check(gateway, bot)
        with Database.open(bot.database_url) as database:
            crashes = database.recovery.latest(100)
        assert len(crashes) == PROCESS_KILLS, crashes  # each kill -9 detected once
