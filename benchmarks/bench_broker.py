"""Broker: order round trip and market data throughput, through the actor vs bare ib_async.

The gateway simulator runs in its own process (``trading-bot gateway-sim``), so the
client side is measured without the simulator competing for this process's GIL.

1. Order round trip, place -> ``Filled``, market orders of 1 share (alternating BUY and
   SELL): the anchor is bare ``ib_async`` (``placeOrder`` then the ``Filled`` order
   status, timed inside the client's own event loop); the subjects are the broker actor
   (``place_order`` + ``BrokerStatus.wait_for_order`` from the caller's thread), once with
   the durable ORDER/TRADE events acknowledged in memory (the actor's own cost) and once
   with the real event logger on SQLite (the product's whole path: the ORDER event is
   committed before the order is sent), and once more in memory with the pre-trade risk
   limits on (generous limits, AAPL streamed as a strategy's symbol is: the cost of the
   checks, not of a snapshot quote). Rounds of each are interleaved, and each client
   sends at most one order per ``PACE_S`` (ib_async's request pacing, 45 requests per
   second, would otherwise queue a burst for up to a second). Goal: actor p50 / bare p50
   <= 1.5.
2. Market data: N symbols subscribed, the simulator pushing a round of bid/ask/last/volume
   ticks for every symbol each ``--tick-interval`` seconds; price ticks handled per second
   at a subscriber of the broker actor (the sum of ``Quote.ticks``: ticks arriving
   together are folded into one quote) vs price ticks seen by a bare ``ib_async``
   ``pendingTickersEvent`` handler (the sum of ``len(ticker.ticks)``) on the same gateway
   (a separate simulator per symbol count; one client at a time, so each has this
   process's CPU).

Run: ``.venv/bin/python benchmarks/bench_broker.py [--quick] [--json PATH] [--orders N]
[--symbols 10,50,100] [--seconds S] [--tick-interval S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ib_async import IB, MarketOrder, Stock

from benchlib import fmt_met, gateway_process, machine, percentile, rotated
from tradingbot.broker import (
    BrokerActor,
    BrokerSettings,
    BrokerStatus,
    ConnectionState,
    LoopThread,
    OrderRequest,
    RiskBook,
    place_order,
    subscribe_market_data,
)
from tradingbot.broker.market import MarketData, Quote
from tradingbot.events.event_logger import EventLoggerActor, EventLoggerSettings
from tradingbot.events.hub import EventHub
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.events.spool import EventSpool
from tradingbot.logconfig import configure_logging
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree, supervisor, worker
from tradingbot.trading.risk import RiskLimits

SYMBOLS = [f"S{i:03d}" for i in range(200)]
GOAL_RATIO = 1.5
# ib_async paces requests like the real gateway demands (``Client.MaxRequests`` = 45 per
# ``RequestsInterval`` = 1 s): a faster burst waits up to a second in the client's queue.
# Orders are sent at most every PACE_S per client, so the round trip is measured, not
# the pacing queue.
PACE_S = 0.03
# Limits no benchmark order comes near: every check runs, none refuses.
WIDE_LIMITS = RiskLimits(
    max_position_shares=1e6,
    max_position_usd=1e9,
    max_order_usd=1e9,
    max_open_orders=10_000,
    max_orders_per_minute=10_000,
    price_band_pct=100,
    daily_loss_limit_usd=1e9,
)


def gateway(tick_interval_s: float) -> AbstractContextManager[int]:
    """The simulator in its own process, with the default symbols plus :data:`SYMBOLS`."""
    symbols = {name: {"price": 100.0 + i} for i, name in enumerate(SYMBOLS)}
    return gateway_process({"symbols": symbols}, tick_interval_s)


class AckSink:
    """Durable events acknowledged in memory: the broker actor's own cost, no database."""

    def tell(self, message: Any) -> None:
        if isinstance(message, RecordEvents) and message.ack is not None:
            message.ack.set_result(None)


class BrokerUnderTest:
    """A tree of (event logger and) broker actor connected to the gateway."""

    def __init__(
        self, port: int, client_id: int, database_dir: Path | None, *, risk: bool = False
    ) -> None:
        self.status = BrokerStatus()
        self.market = MarketData()
        settings = BrokerSettings(port=port, client_id=client_id, probe_interval_s=5.0)
        children = []
        self.database: Database | None = None
        if database_dir is not None:
            database = self.database = Database.open(f"sqlite:///{database_dir / 'bench.db'}")
            database.upgrade()
            spool, hub = EventSpool(database_dir / "spool"), EventHub()
            children.append(
                worker(
                    "event_logger",
                    lambda: EventLoggerActor(database, spool, hub, EventLoggerSettings()),
                )
            )
        book = RiskBook(WIDE_LIMITS) if risk else None
        children.append(
            worker(
                "broker",
                lambda: BrokerActor(settings, self.status, self.recorder, self.market, risk=book),
            )
        )
        self.tree = SupervisionTree(supervisor("root", children, intensity=10), listeners=())
        sink: Any = self.tree.handle("event_logger") if database_dir is not None else AckSink()
        self.recorder = EventRecorder(sink)
        self.tree.start()
        deadline = time.monotonic() + 15
        while self.status.view().state != ConnectionState.SYNCED:
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not sync")
            time.sleep(0.01)
        self.handle = self.tree.handle("broker")
        if risk:  # a strategy streams its symbols: the checks read the streamed quote
            subscribe_market_data(self.handle, self.status, "AAPL", AckSink())
            while self.market.quote("AAPL") is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("no AAPL quote")
                time.sleep(0.01)

    def round_trip(self, side: str) -> float:
        started = time.perf_counter()
        ref = place_order(self.handle, self.status, OrderRequest("AAPL", side, 1))
        if self.status.wait_for_order(ref, {"Filled"}, 10.0) is None:
            raise RuntimeError(f"order {ref} did not fill")
        return time.perf_counter() - started

    def stop(self) -> None:
        self.tree.stop()
        if self.database is not None:
            self.database.dispose()


class BareClient:
    """Bare ib_async on its own loop thread; timings are taken inside that loop."""

    def __init__(self, port: int, client_id: int) -> None:
        self.loop = LoopThread("bench-bare")
        self.loop.start()
        self.ib = IB()
        self.loop.run(self.ib.connectAsync("127.0.0.1", port, clientId=client_id), 15)

    def round_trip(self, side: str) -> float:
        ib = self.ib

        async def once() -> float:
            filled = asyncio.Event()

            def on_status(trade: Any) -> None:
                if trade.orderStatus.status == "Filled":
                    filled.set()

            started = time.perf_counter()
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder(side, 1))
            trade.statusEvent += on_status
            await asyncio.wait_for(filled.wait(), 10)
            return time.perf_counter() - started

        return self.loop.run(once(), 15)

    def stop(self) -> None:
        self.loop.stop(before=self.ib.disconnect)


def latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 0.5) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
    }


def bench_round_trip(orders: int, batch: int) -> dict[str, Any]:
    with gateway(0.2) as port, tempfile.TemporaryDirectory() as tmp:
        bare = BareClient(port, 31)
        actor = BrokerUnderTest(port, 32, None)
        product = BrokerUnderTest(port, 33, Path(tmp))
        checked = BrokerUnderTest(port, 34, None, risk=True)
        subjects: list[tuple[str, Callable[[str], float]]] = [
            ("bare ib_async", bare.round_trip),
            ("broker actor (events in memory)", actor.round_trip),
            ("broker actor + SQLite events", product.round_trip),
            ("broker actor + risk limits", checked.round_trip),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _ in subjects}
        try:
            for _name, fn in subjects:  # warm up: first orders, contract lookups
                for i in range(5):
                    fn("BUY" if i % 2 == 0 else "SELL")
            for round_ in range(max(1, orders // batch)):
                for name, fn in rotated(subjects, round_):
                    for i in range(batch):
                        paced = time.perf_counter() + PACE_S
                        samples[name].append(fn("BUY" if i % 2 == 0 else "SELL"))
                        time.sleep(max(0.0, paced - time.perf_counter()))
        finally:
            checked.stop()
            product.stop()
            actor.stop()
            bare.stop()
    result = {name: latency(values) for name, values in samples.items()}
    anchor = result["bare ib_async"]["p50_ms"]
    for name in samples:
        ratio = result[name]["p50_ms"] / anchor
        result[name]["ratio"] = round(ratio, 2)
        result[name]["goal_met"] = None if name == "bare ib_async" else ratio <= GOAL_RATIO
    return result


class QuoteCounter:
    """A subscriber that counts the quotes told to it."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def tell(self, message: Any) -> None:
        if isinstance(message, Quote):
            with self._lock:
                self.count += message.ticks


def bench_market_data(symbols: int, seconds: float, tick_interval_s: float) -> dict[str, Any]:
    """Quote updates per second at each client, one client at a time on one gateway."""
    names = SYMBOLS[:symbols]

    def window(count: Callable[[], int]) -> float:
        time.sleep(1.0)  # every stream running
        start, started = count(), time.perf_counter()
        time.sleep(seconds)
        return (count() - start) / (time.perf_counter() - started)

    with gateway(tick_interval_s) as port:
        bare = BareClient(port, 41)
        bare_count = [0]

        def on_tickers(tickers: set[Any]) -> None:
            bare_count[0] += sum(len(t.ticks) for t in tickers)

        async def subscribe_bare() -> None:
            bare.ib.pendingTickersEvent += on_tickers
            for name in names:
                contract = Stock(name, "SMART", "USD")
                await bare.ib.qualifyContractsAsync(contract)
                bare.ib.reqMktData(contract)

        try:
            bare.loop.run(subscribe_bare(), 60)
            bare_rate = window(lambda: bare_count[0])
        finally:
            bare.stop()
        actor, counter = BrokerUnderTest(port, 42, None), QuoteCounter()
        try:
            for name in names:
                subscribe_market_data(actor.handle, actor.status, name, counter)
            actor_rate = window(lambda: counter.count)
        finally:
            actor.stop()
    return {
        "symbols": symbols,
        "offered_per_s": round(3 * symbols / tick_interval_s),  # bid, ask, last each round
        "bare_per_s": round(bare_rate),
        "actor_per_s": round(actor_rate),
        "ratio": round(actor_rate / bare_rate, 3) if bare_rate else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few orders, short windows")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--orders", type=int, default=600, help="round trips per subject")
    parser.add_argument("--symbols", default="10,50,100", help="symbol counts to stream")
    parser.add_argument("--seconds", type=float, default=10.0, help="market data window")
    parser.add_argument("--tick-interval", type=float, default=0.01, help="simulator ticks")
    args = parser.parse_args(argv)
    orders, seconds = (60, 2.0) if args.quick else (args.orders, args.seconds)
    # The product's logging chain (JSON lines to a file, console to /dev/null): every
    # order and fill writes log lines, as in production.
    log_dir = Path(tempfile.mkdtemp(prefix="bench-broker-logs-"))
    configure_logging(level="INFO", log_dir=log_dir, stream=open(os.devnull, "w"))  # noqa: SIM115
    info = machine("ib_async", "pykka")
    print(json.dumps(info))

    trips = bench_round_trip(orders, batch=20)
    print(f"\nOrder round trip, place -> Filled ({orders} per subject, batches of 20)")
    print(f"{'subject':34} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'goal <=1.5':>10}")
    for name, row in trips.items():
        print(
            f"{name:34} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} {row['ratio']:6.2f}"
            f" {fmt_met(row['goal_met']):>10}"
        )

    streams = [
        bench_market_data(int(n), seconds, args.tick_interval) for n in args.symbols.split(",")
    ]
    print(f"\nMarket data, price ticks handled per second ({seconds:g} s windows)")
    print(f"{'symbols':>7} {'offered/s':>10} {'bare/s':>9} {'actor/s':>9} {'ratio':>6}")
    for row in streams:
        print(
            f"{row['symbols']:7d} {row['offered_per_s']:10d} {row['bare_per_s']:9d}"
            f" {row['actor_per_s']:9d} {row['ratio']:6.3f}"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"machine": info, "round_trip": trips, "market_data": streams}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
