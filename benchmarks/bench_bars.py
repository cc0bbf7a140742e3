"""Bars: a historical bar request through the broker actor vs bare ib_async, and the daily
bar update of a watchlist into SQLite vs the bare requests it makes.

The gateway simulator runs in its own process (``trading-bot gateway-sim``), so the
client side is measured without the simulator competing for this process's GIL.

1. ``historical_bars(symbol, bar_size, duration)`` from the caller's thread (the actor
   qualifies the contract, requests the bars on the client's loop, converts them to
   ``Bar``) vs bare ``ib_async`` (``reqHistoricalDataAsync`` with an already qualified
   contract, timed inside the client's loop), for one hour (60 bars) and one day (1,440
   one-minute bars; the simulator's session is always open). Rounds interleaved.
2. The daily bar update of N symbols into a fresh SQLite file (per symbol: the session's
   390 one-minute bars and a year of daily bars, upserted) vs bare ``ib_async`` making
   the same 2 x N requests without storing anything.

Run: ``.venv/bin/python benchmarks/bench_bars.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ib_async import IB, Stock

from benchlib import gateway_process, machine, percentile, rotated
from tradingbot.broker import (
    BrokerActor,
    BrokerSettings,
    BrokerStatus,
    ConnectionState,
    LoopThread,
    historical_bars,
)
from tradingbot.history import update_bars
from tradingbot.scheduler import EXCHANGE_TZ, nyse
from tradingbot.scheduler.shipped import broker_bars
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree, supervisor, worker

WATCHLIST = ["AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "TSLA", "JPM", "V", "SPY"]
CASES = [("1 min", "3600 S"), ("1 min", "1 D")]
PACE_S = 0.03  # ib_async paces 45 requests per second: stay under it


class Bare:
    """Bare ib_async on its own loop thread, contracts qualified once."""

    def __init__(self, port: int) -> None:
        self.loop = LoopThread("bench-bare")
        self.loop.start()
        self.ib = IB()
        self.loop.run(self.ib.connectAsync("127.0.0.1", port, clientId=41), 15)
        self.contracts: dict[str, Any] = {}
        for symbol in WATCHLIST:
            contract = Stock(symbol, "SMART", "USD")
            self.loop.run(self.ib.qualifyContractsAsync(contract), 15)
            self.contracts[symbol] = contract

    def fetch(self, symbol: str, bar_size: str, duration: str, end: Any = "") -> float:
        ib, contract = self.ib, self.contracts[symbol]

        async def once() -> float:
            started = time.perf_counter()
            bars = await ib.reqHistoricalDataAsync(
                contract, end, duration, bar_size, "TRADES", True, formatDate=2, timeout=0
            )
            if not bars:
                raise RuntimeError("no bars")
            return time.perf_counter() - started

        return self.loop.run(once(), 30)

    def stop(self) -> None:
        self.loop.stop(before=self.ib.disconnect)


class Actor:
    """A tree with one broker actor connected to the gateway."""

    def __init__(self, port: int) -> None:
        self.status = BrokerStatus()
        settings = BrokerSettings(port=port, client_id=42, probe_interval_s=5.0)
        self.tree = SupervisionTree(
            supervisor("root", [worker("broker", lambda: BrokerActor(settings, self.status))]),
            listeners=(),
        )
        self.tree.start()
        deadline = time.monotonic() + 15
        while self.status.view().state != ConnectionState.SYNCED:
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not sync")
            time.sleep(0.01)
        self.handle = self.tree.handle("broker")

    def fetch(self, symbol: str, bar_size: str, duration: str) -> float:
        started = time.perf_counter()
        bars = historical_bars(
            self.handle, self.status, symbol, bar_size=bar_size, duration=duration
        )
        if not bars:
            raise RuntimeError("no bars")
        return time.perf_counter() - started

    def stop(self) -> None:
        self.tree.stop()


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 0.5) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
    }


def bench_fetch(port: int, bare: Bare, actor: Actor, rounds: int, batch: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for bar_size, duration in CASES:
        subjects = [("bare ib_async", bare.fetch), ("historical_bars (actor)", actor.fetch)]
        samples: dict[str, list[float]] = {name: [] for name, _ in subjects}
        for _name, fn in subjects:  # warm up
            for _ in range(3):
                fn("AAPL", bar_size, duration)
        for round_ in range(rounds):
            for name, fn in rotated(subjects, round_):
                for i in range(batch):
                    paced = time.perf_counter() + PACE_S
                    samples[name].append(fn(WATCHLIST[i % len(WATCHLIST)], bar_size, duration))
                    time.sleep(max(0.0, paced - time.perf_counter()))
        result = {name: stats(v) for name, v in samples.items()}
        anchor = result["bare ib_async"]["p50_ms"]
        result["ratio_p50"] = round(result["historical_bars (actor)"]["p50_ms"] / anchor, 2)
        out[f"{bar_size} x {duration}"] = result
    return out


def bench_update(bare: Bare, actor: Actor, runs: int) -> dict[str, Any]:
    calendar = nyse()
    day = calendar.session_on_or_before(datetime.now(EXCHANGE_TZ).date() - timedelta(days=1))
    opened, closed = calendar.open_at(day), calendar.close_at(day)
    seconds = int((closed - opened).total_seconds())
    fetch = broker_bars(lambda: actor.tree, actor.status)
    product: list[float] = []
    anchor: list[float] = []
    for run in range(runs):
        for which in rotated(["anchor", "product"], run):
            if which == "anchor":
                started = time.perf_counter()
                for symbol in WATCHLIST:
                    bare.fetch(symbol, "1 min", f"{seconds} S", closed)
                    bare.fetch(symbol, "1 day", "1 Y", closed)
                anchor.append(time.perf_counter() - started)
                continue
            with tempfile.TemporaryDirectory() as tmp:
                database = Database.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
                database.upgrade()
                started = time.perf_counter()
                result = update_bars(database, fetch, WATCHLIST, day, calendar)
                product.append(time.perf_counter() - started)
                if result.failed:
                    raise RuntimeError(str(result))
                stored = database.bars.count()
                database.dispose()
    out = {
        "symbols": len(WATCHLIST),
        "bars_stored": stored,
        "bare requests (no storage)": stats(anchor),
        "bar update into SQLite": stats(product),
    }
    out["ratio_p50"] = round(
        out["bar update into SQLite"]["p50_ms"] / out["bare requests (no storage)"]["p50_ms"], 2
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    rounds, batch, runs = (2, 10, 2) if args.quick else (5, 20, 5)
    seed = {"symbols": {s: {"price": 100.0 + i} for i, s in enumerate(WATCHLIST)}}
    with gateway_process(seed, 0.2) as port:
        bare, actor = Bare(port), Actor(port)
        try:
            results = {
                "machine": machine("ib_async"),
                "historical_bars": bench_fetch(port, bare, actor, rounds, batch),
                "bar_update": bench_update(bare, actor, runs),
            }
        finally:
            actor.stop()
            bare.stop()
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
