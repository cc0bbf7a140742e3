"""Helpers for end-to-end tests of the example strategy trading against a simulator that
outlives the bot: its configuration, what the simulator holds, and what the bot stored.

The simulator runs on a thread of the test process (:class:`SimulatorThread`), so a
``kill -9`` of the bot leaves it, its orders and its executions in place, like an IB
Gateway; the tests read its books directly. :func:`check_books` is the chaos test's
verdict: nothing sent twice, every fill one TRADE event and one trade mail, every signal
stored before its order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tradingbot.events import ORDER, SIGNAL, TRADE, Event
from tradingbot.gateway import GatewaySimulator, SimulatorThread
from tradingbot.storage import Database
from tradingbot.storage.event_query import EventQuery

EXAMPLE = "tradingbot.strategies.example:MovingAverageCrossover"
STRATEGY_ID = "ma_cross"
WATCHLIST = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META")

# The example made hasty: a decision every 0.2 s on short averages, a small gap, orders
# of a few shares, a short cooldown. Still inside the default risk limits.
FAST_EXAMPLE_TOML = f"""\
[{STRATEGY_ID}]
sample_s = 0.2
fast = 2
slow = 5
min_gap_bps = 0.5
order_usd = 600.0
max_shares = 6
cooldown_s = 1.0
max_orders_per_minute = 25
watchlist = [{", ".join(f'"{s}"' for s in WATCHLIST)}]
"""


def example_env(folder: Path, sim_port: int, **extra: str) -> dict[str, str]:
    """The bot's environment: the hasty example against the simulator on ``sim_port``."""
    toml = folder / "strategies.toml"
    toml.write_text(FAST_EXAMPLE_TOML)
    return {
        "TRADINGBOT_BROKER": "ibkr",
        "TRADINGBOT_IB_HOST": "127.0.0.1",
        "TRADINGBOT_IB_PORT": str(sim_port),
        "TRADINGBOT_IB_CLIENT_ID": "17",  # the same in every run: its order ids continue
        "TRADINGBOT_STRATEGIES": EXAMPLE,
        "TRADINGBOT_STRATEGY_CONFIG": str(toml),
        # Chaos crashes the strategy on purpose: its supervisor must not give up.
        "TRADINGBOT_STRATEGY_MAX_RESTARTS": "1000",
        # One mail per fill: the rate limit would fold them into a digest.
        "TRADINGBOT_NOTIFY_RATE_LIMIT_PER_HOUR": "100000",
        **extra,
    }


@dataclass(frozen=True, slots=True)
class SimBooks:
    """What the simulator holds: every order's ``orderRef``, every execution, what is
    still open and the account's non-zero positions."""

    order_refs: tuple[str, ...]
    executions: tuple[tuple[str, str], ...]  # (exec id, orderRef)
    open_orders: int
    positions: dict[str, float]


def sim_books(sim: SimulatorThread) -> SimBooks:
    """A consistent snapshot of the simulator's books (taken on its loop thread)."""

    def read(s: GatewaySimulator) -> SimBooks:
        brokerage = s.brokerage
        return SimBooks(
            order_refs=tuple(o.order_ref for o in brokerage.orders.values()),
            executions=tuple((e.exec_id, e.order.order_ref) for e in brokerage.executions),
            open_orders=len(brokerage.open_orders()),
            positions={
                p.instrument.symbol: p.quantity for p in brokerage.account_positions() if p.quantity
            },
        )

    return sim.call(read)


def stored_events(database_url: str, *types: str) -> list[Event]:
    """Every stored event of ``types``, oldest first (all pages)."""
    found: list[Event] = []
    cursor: str | None = None
    with Database.open(database_url) as database:
        while True:
            page = database.events.query(EventQuery(types=types, limit=1000, cursor=cursor))
            found.extend(page.events)
            cursor = page.next_cursor
            if cursor is None:
                break
    return sorted(found, key=lambda event: event.timestamp)


def trade_mails(outbox: Path) -> dict[str, int]:
    """Execution id -> how many trade e-mails in the outbox folder name it."""
    counts: Counter[str] = Counter()
    for path in outbox.glob("*trade_execution*.eml"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Execution id:"):
                counts[line.removeprefix("Execution id:").strip()] += 1
                break
    return dict(counts)


def iter_problems(books: SimBooks, database_url: str, outbox: Path) -> Iterator[str]:
    """Every way the simulator, the database and the outbox disagree (nothing: agreed)."""
    sent_twice = {ref: n for ref, n in Counter(books.order_refs).items() if n > 1}
    if sent_twice:
        yield f"orders sent more than once (orderRef: count): {sent_twice}"
    foreign = [ref for ref in books.order_refs if not ref.startswith(f"TB-{STRATEGY_ID}.")]
    if foreign:
        yield f"orders at the simulator not from the strategy: {foreign}"
    signals = {str(e.id): e for e in stored_events(database_url, SIGNAL)}
    placed = {
        e.trade_id: e
        for e in stored_events(database_url, ORDER)
        if e.context.get("action") == "place"
    }
    for ref in set(books.order_refs):
        order = placed.get(ref)
        if order is None:
            yield f"order {ref} reached the simulator without a stored ORDER event"
            continue
        signal = signals.get(str(order.context.get("signal_id")))
        if signal is None:
            yield f"order {ref}: its signal {order.context.get('signal_id')} is not stored"
        elif not signal.timestamp < order.timestamp:
            yield f"order {ref}: SIGNAL at {signal.timestamp} is not before ORDER {order.timestamp}"
    trades = Counter(str(e.context.get("exec_id")) for e in stored_events(database_url, TRADE))
    executed = Counter(exec_id for exec_id, _ in books.executions)
    if trades != executed:
        missing = sorted(set(executed) - set(trades))
        extra = sorted(set(trades) - set(executed))
        twice = {k: n for k, n in trades.items() if n > 1}
        yield f"TRADE events vs executions: missing {missing}, unknown {extra}, twice {twice}"
    mails = trade_mails(outbox)
    if mails != dict.fromkeys(executed, 1):
        missing = sorted(set(executed) - set(mails))
        twice = {k: n for k, n in mails.items() if n != 1 or k not in executed}
        yield f"trade mails vs executions: missing {missing}, twice or unknown {twice}"


def books_agree(sim: SimulatorThread, database_url: str, outbox: Path) -> list[str]:
    """:func:`iter_problems` of a fresh snapshot, as a list."""
    return list(iter_problems(sim_books(sim), database_url, outbox))
