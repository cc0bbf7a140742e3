"""Reconciliation through the whole runtime, against one gateway that outlives the bot.

Each scenario: the bot runs (a filled market order, a resting limit order), stops, the
world changes at the gateway (or in the database) while it is down, and the bot starts
again. The change must be found and reported once, trading must stay blocked for the
blocking ones until accepted, and the start after that must be clean.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.ports import free_port
from support.simulator import running_simulator
from support.waiting import wait_until
from tradingbot.broker import (
    BrokerConnectionError,
    ConnectionState,
    OrderRequest,
    TradingBlocked,
    place_order,
)
from tradingbot.broker import orders as orders_module
from tradingbot.broker.ids import order_ref_for
from tradingbot.config import Config, load_config
from tradingbot.events import ORDER, TRADE, Event
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.gateway import SimulatorThread, build_simulator
from tradingbot.gateway.brokerage import OrderRequest as GatewayOrderRequest
from tradingbot.health.model import Check
from tradingbot.recovery import reconciler as reconciler_module
from tradingbot.recovery.reconciler import Accept, ReconcileResult, RunNow
from tradingbot.runtime import Runtime
from tradingbot.storage import Database
from tradingbot.storage.event_query import EventQuery

CLIENT_ID = 21


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with running_simulator(seed=3) as thread:
        yield thread


def bot_config(tmp_path: Path, port: int, **extra: str) -> Config:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    environ = {
        "TRADINGBOT_HOME": str(tmp_path / "home"),
        "TRADINGBOT_ENV_FILE": str(env_file),
        "TRADINGBOT_BROKER": "ibkr",
        "TRADINGBOT_IB_HOST": "127.0.0.1",
        "TRADINGBOT_IB_PORT": str(port),
        "TRADINGBOT_IB_CLIENT_ID": str(CLIENT_ID),
        "TRADINGBOT_IB_CONNECT_TIMEOUT_S": "2",
        "TRADINGBOT_HEALTH_INTERVAL_S": "0.2",
        # The scenarios rest limit orders at half the market: far outside the price band.
        "TRADINGBOT_RISK_PRICE_BAND_PCT": "100",
        **{f"TRADINGBOT_{k}": v for k, v in extra.items()},
    }
    return load_config(environ=environ)


class Bots:
    """Starts runtimes one after another on one home; stops whatever is left."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.running: Runtime | None = None

    def start(self) -> Runtime:
        assert self.running is None
        bot = self.running = Runtime(self.config)
        bot.start()
        return bot

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None


@pytest.fixture
def bots(tmp_path: Path, sim: SimulatorThread) -> Iterator[Bots]:
    runner = Bots(bot_config(tmp_path, sim.port, RECONCILE_INTERVAL_S="3600"))
    yield runner
    runner.stop()


def first_result(bot: Runtime) -> ReconcileResult:
    return wait_until(lambda: bot.reconciliations[:1], 20, "the start reconciliation")[0]


def trading_open(bot: Runtime) -> None:
    wait_until(lambda: bot.broker_status.trading_blocked() is None, 20, "trading to open")


def trading_health(bot: Runtime, status: str, says: str) -> Check:
    """Wait until the health report's trading check has ``status`` and an output with ``says``."""

    def found() -> Check | None:
        report = bot.health.latest()
        for check in () if report is None else report.checks:
            if (check.component, check.status) == ("trading", status) and says in (
                check.output or ""
            ):
                return check
        return None

    return wait_until(found, 20, f"the trading health check to {status} with {says!r}")


def stored(database: Database, type_: str, trade_id: str) -> list[Event]:
    return list(database.events.query(EventQuery(types=(type_,), trade_id=trade_id)).events)


class World:
    """What the first run left behind: a position and a resting order."""

    def __init__(self, bot: Runtime, sim: SimulatorThread) -> None:
        assert bot.tree is not None
        handle, status = bot.tree.handle("broker"), bot.broker_status
        self.account = sim.call(lambda s: s.brokerage.account_ids[0])
        self.bought = place_order(handle, status, OrderRequest("AAPL", "BUY", 5))
        assert status.wait_for_order(self.bought, {"Filled"}, 10) is not None
        self.limit = round(sim.call(lambda s: s.brokerage.prices.price("MSFT")) * 0.5, 2)
        self.resting = place_order(
            handle, status, OrderRequest("MSFT", "BUY", 2, "LMT", self.limit)
        )
        assert status.wait_for_order(self.resting, {"Submitted"}, 10) is not None
        database = bot.database
        assert database is not None
        wait_until(lambda: stored(database, TRADE, self.bought), message="the fill stored")


def change_position(sim: SimulatorThread, world: World, database: Database) -> None:
    """Someone trades AAPL by hand at the broker (no execution reported to us)."""
    sim.call(lambda s: s.brokerage.seed_position(world.account, "AAPL", 8, 190.0))


def fill_resting(sim: SimulatorThread, world: World, database: Database) -> None:
    def fill(s: Any) -> None:
        s.brokerage.prices.set_price("MSFT", world.limit * 0.9)
        s.tick()

    sim.call(fill)


def cancel_resting(sim: SimulatorThread, world: World, database: Database) -> None:
    def cancel(s: Any) -> None:
        [order] = [o for o in s.brokerage.orders.values() if o.order_ref == world.resting]
        s.brokerage.cancel(order.client_id, order.order_id)

    sim.call(cancel)


def external_position(sim: SimulatorThread, world: World, database: Database) -> None:
    sim.call(lambda s: s.brokerage.seed_position(world.account, "NVDA", 3, 120.0))


def database_orphan(sim: SimulatorThread, world: World, database: Database) -> None:
    """An order in our books the broker never got (placed, then the process died)."""

    class Direct:
        def tell(self, message: Any) -> None:
            assert isinstance(message, RecordEvents)
            database.events.insert_many(message.events)

    EventRecorder(Direct()).record(
        ORDER,
        "BUY 1 AMZN MKT",
        trade_id="TB-ghost-1",
        context={
            "order_ref": "TB-ghost-1",
            "action": "place",
            "symbol": "AMZN",
            "side": "BUY",
            "quantity": 1.0,
            "order_type": "MKT",
            "account": "",
        },
    )


def external_order(sim: SimulatorThread, world: World, database: Database) -> None:
    """An order placed by hand (another client, no reference) rests at the broker."""

    def place(s: Any) -> None:
        limit = round(s.brokerage.prices.price("GOOG") * 0.5, 2)
        request = GatewayOrderRequest(
            order_id=s.brokerage.next_order_id(99), con_id=0, symbol="GOOG", sec_type="STK",
            exchange="SMART", currency="USD", action="BUY", quantity=1, order_type="LMT",
            lmt_price=limit, tif="GTC", account=world.account, order_ref="",
        )  # fmt: skip
        s.brokerage.place(99, request)

    sim.call(place)


SCENARIOS: list[tuple[str, Callable[[SimulatorThread, World, Database], None], set[str], bool]] = [
    ("position changed", change_position, {"position_mismatch"}, True),
    ("fill while down", fill_resting, {"missing_fill", "fill_while_down", "order_closed"}, False),
    ("order cancelled", cancel_resting, {"order_closed"}, False),
    ("external position", external_position, {"external_position"}, True),
    ("database orphan", database_orphan, {"orphaned_order"}, True),
    ("external order", external_order, {"external_order"}, True),
]


@pytest.mark.parametrize(
    ("change", "kinds", "blocking"),
    [pytest.param(fn, kinds, blocking, id=name) for name, fn, kinds, blocking in SCENARIOS],
)
def test_a_change_while_down_is_found_reported_once_and_the_next_start_is_clean(
    bots: Bots,
    sim: SimulatorThread,
    change: Callable[[SimulatorThread, World, Database], None],
    kinds: set[str],
    blocking: bool,
) -> None:
    """Each kind of change made at the broker while the bot was down is found at the next start,
    blocks trading only when it must, and is not reported again after that."""
    first = bots.start()
    assert first_result(first).record.status == "clean"
    trading_open(first)
    world = World(first, sim)
    database = first.database
    assert database is not None
    bots.stop()

    with Database.open(bots.config.database_url) as offline:
        change(sim, world, offline)

    second = bots.start()
    result = first_result(second)
    found = {d["kind"] for d in result.record.discrepancies}
    assert found, result.record
    assert found <= kinds, result.record.discrepancies
    assert result.record.status == ("discrepancies" if blocking else "clean")
    assert second.database is not None
    assert second.tree is not None
    if blocking:
        blocked = second.broker_status.trading_blocked()
        assert blocked is not None
        assert "discrepancies" in blocked
        check = trading_health(second, "warn", "discrepancies")
        assert (check.output or "").startswith("blocked: reconciliation")
        with pytest.raises(TradingBlocked):
            place_order(
                second.tree.handle("broker"), second.broker_status, OrderRequest("AAPL", "BUY", 1)
            )
        accept = Accept(by="test operator")
        second.tree.handle("reconciler").tell(accept)
        assert accept.reply.result(10)["status"] == "accepted"
    trading_open(second)
    if "order_closed" in found:
        ends = [e.context for e in stored(second.database, ORDER, world.resting)]
        assert [c["status"] for c in ends if c.get("action") == "final"] == [
            "Cancelled" if change is cancel_resting else "Filled"
        ]
    if found & {"missing_fill", "fill_while_down"}:
        assert len(stored(second.database, TRADE, world.resting)) == 1
    bots.stop()

    third = bots.start()
    again = first_result(third)
    assert again.record.status == "clean"
    assert again.record.discrepancies == ()
    trading_open(third)


def test_an_unreachable_broker_keeps_trading_blocked_and_nothing_is_read_as_flat(
    tmp_path: Path,
) -> None:
    """While the broker cannot be reached trading stays blocked and no empty book is taken as a flat
    baseline; once it connects, reconciliation passes and trading opens."""
    port = free_port()
    bot = Runtime(bot_config(tmp_path, port))
    bot.start()
    sim: SimulatorThread | None = None
    try:
        assert bot.database is not None
        database = bot.database
        wait_until(
            lambda: (
                "reconciliation pending: the broker is"
                in (bot.broker_status.trading_blocked() or "")
            ),
            message="the gate to say it waits for the broker",
        )
        trading_health(bot, "warn", "blocked: reconciliation (reconciliation pending: the broker")
        assert database.reconciliations.latest("") == []  # no result, no "flat" baseline
        # The gateway comes up: the broker connects, reconciliation passes, trading opens.
        sim = SimulatorThread(build_simulator(seed=1), port=port)
        sim.start()
        wait_until(
            lambda: bot.broker_status.view().state == ConnectionState.SYNCED, 40, "the broker"
        )
        trading_open(bot)
        [record] = database.reconciliations.latest("")
        assert record.status == "clean"
    finally:
        bot.stop()
        if sim is not None:
            sim.stop()


def test_an_unknown_id_never_reaches_the_broker(bots: Bots) -> None:
    """Sanity for the scenarios: a fresh install with an empty gateway starts clean."""
    bot = bots.start()
    result = first_result(bot)
    assert (result.record.status, result.record.discrepancies) == ("clean", ())
    assert result.record.positions == {}
    assert uuid.UUID(result.record.id)


def at_gateway(sim: SimulatorThread, order_ref: str) -> list[str]:
    """Statuses of the simulator's orders carrying ``order_ref``."""
    return sim.call(
        lambda s: [o.status for o in s.brokerage.orders.values() if o.order_ref == order_ref]
    )


def run_now(bot: Runtime) -> dict[str, Any]:
    """An operator's ``reconcile run``: the summary of one reconciliation while trading."""
    assert bot.tree is not None
    command = RunNow()
    bot.tree.handle("reconciler").tell(command)
    return command.reply.result(30)


def test_an_order_placed_while_the_broker_is_asked_is_ours_not_unknown(
    bots: Bots, sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order placed after our books were read and before the broker's snapshot (trading goes on
    during a periodic run) is open at the broker and ours: the run is clean, trading stays open."""
    bot = bots.start()
    trading_open(bot)
    assert bot.tree is not None
    handle, status = bot.tree.handle("broker"), bot.broker_status
    limit = round(sim.call(lambda s: s.brokerage.prices.price("MSFT")) * 0.5, 2)
    placed: list[str] = []
    real_executions = reconciler_module.executions

    def place_then_ask(*args: Any, **kwargs: Any) -> Any:
        if not placed:  # the snapshot's first question: our books were read just before
            placed.append(place_order(handle, status, OrderRequest("MSFT", "BUY", 2, "LMT", limit)))
            assert status.wait_for_order(placed[0], {"Submitted"}, 10) is not None
        return real_executions(*args, **kwargs)

    monkeypatch.setattr(reconciler_module, "executions", place_then_ask)
    summary = run_now(bot)
    assert placed
    assert (summary["status"], summary["discrepancies"]) == ("clean", []), summary
    assert status.trading_blocked() is None


def test_an_order_still_being_sent_when_the_broker_is_asked_is_in_flight_not_orphaned(
    bots: Bots, sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reduce-only order stored but held in its position check while the broker is asked is in
    flight, not an orphaned order: the run is clean, and the order completes once released."""
    bot = bots.start()
    trading_open(bot)
    world = World(bot, sim)
    assert bot.tree is not None
    handle, status = bot.tree.handle("broker"), bot.broker_status
    held, release = threading.Event(), threading.Event()
    real_check = orders_module.refuse_unless_reducing

    async def held_check(*args: Any) -> None:
        held.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        await real_check(*args)

    monkeypatch.setattr(orders_module, "refuse_unless_reducing", held_check)
    request = OrderRequest("AAPL", "SELL", 5, client_order_id="flatten-aapl", reduce_only=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sent = pool.submit(place_order, handle, status, request)
        assert held.wait(10), "the reduce-only order to reach its position check"
        try:
            summary = run_now(bot)
        finally:
            release.set()
        order_ref = sent.result(10)
    assert (summary["status"], summary["discrepancies"]) == ("clean", []), summary
    assert status.trading_blocked() is None
    assert status.wait_for_order(order_ref, {"Filled"}, 10) is not None
    assert world.bought != order_ref
    assert run_now(bot)["status"] == "clean"  # the next run sees it, filled, in both books


def test_a_closing_order_cut_off_by_a_lost_connection_leaves_nothing_to_reconcile(
    bots: Bots, sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reduce-only order cut off by a lost connection during its position check was never
    sent: its Cancelled end is in the database, and after the reconnect reconciliation
    finds nothing orphaned and trading reopens without an operator."""
    bot = bots.start()
    trading_open(bot)
    World(bot, sim)
    assert bot.tree is not None
    database = bot.database
    assert database is not None
    handle, status = bot.tree.handle("broker"), bot.broker_status

    async def cut_in_the_check(*args: Any) -> None:
        sim.call(lambda s: s.close_all_connections())
        await asyncio.Event().wait()  # never answered: the broker's loop ends

    monkeypatch.setattr(orders_module, "refuse_unless_reducing", cut_in_the_check)
    request = OrderRequest("AAPL", "SELL", 5, client_order_id="flatten-cut", reduce_only=True)
    with pytest.raises(BrokerConnectionError, match="before the order was sent"):
        place_order(handle, status, request)
    order_ref = order_ref_for("flatten-cut")
    ends = wait_until(
        lambda: [e for e in stored(database, ORDER, order_ref) if e.context["action"] == "final"],
        20,
        "the order's end stored",
    )
    assert ends[0].context["status"] == "Cancelled"
    assert "before the order was sent" in ends[0].context["never_sent"]
    wait_until(lambda: len(bot.reconciliations) >= 2, 30, "the reconciliation after the reconnect")
    trading_open(bot)
    assert bot.reconciliations[-1].record.status == "clean"
    assert (summary := run_now(bot))["status"] == "clean", summary
    assert at_gateway(sim, order_ref) == []


def test_an_order_ended_unsent_whose_end_is_not_stored_yet_is_not_orphaned(
    bots: Bots, sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reduce-only order stopped before its send ends Cancelled at once, but its end
    reaches our books later (by the next broker incarnation after a lost connection): a
    reconciliation in between finds it open only in our books and must not call it an
    orphaned order; once its end is stored the run is clean too."""
    bot = bots.start()
    trading_open(bot)
    assert bot.tree is not None
    database = bot.database
    assert database is not None
    handle, status = bot.tree.handle("broker"), bot.broker_status

    async def check_cut_off(*args: Any) -> None:
        raise ConnectionError("the connection closed during the position check")

    held: list[Any] = []  # the end on its way to the broker actor, held here
    real_never_sent = orders_module.never_sent

    def deliver_later(status: Any, deliver: Any, order_ref: str, why: str) -> None:
        real_never_sent(status, held.append, order_ref, why)

    monkeypatch.setattr(orders_module, "refuse_unless_reducing", check_cut_off)
    monkeypatch.setattr(orders_module, "never_sent", deliver_later)
    request = OrderRequest("AAPL", "SELL", 5, client_order_id="unsent-end", reduce_only=True)
    with pytest.raises(ConnectionError, match="during the position check"):
        place_order(handle, status, request)
    order_ref = order_ref_for("unsent-end")
    record = status.order(order_ref)
    assert record is not None
    assert record.status == "Cancelled"
    assert held
    assert [e.context["action"] for e in stored(database, ORDER, order_ref)] == ["place"]
    summary = run_now(bot)
    assert (summary["status"], summary["discrepancies"]) == ("clean", []), summary
    assert status.trading_blocked() is None
    handle.tell(held[0])
    wait_until(lambda: len(stored(database, ORDER, order_ref)) == 2, 10, "the end stored")
    assert run_now(bot)["status"] == "clean"
