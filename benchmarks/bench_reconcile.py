"""Reconciliation time for 1,000 positions and 10,000 executions against the simulator.

The simulator (``trading-bot gateway-sim`` in its own process, as a real gateway is)
is seeded with 1,000 symbols and the day's 10,000 executions of one client (10 per
symbol over six hours: 1,000 positions, 10,000 completed orders); the bot's SQLite
database holds the matching 10,000 TRADE events and 20,000 ORDER events (placed, ended).
A reconciler and a broker actor run in a supervision tree; each round is one whole
reconciliation (``RunNow``): a stable snapshot (executions, positions, open and
completed orders, executions again), our books rebuilt from the database, the
comparison, the stored result. Goal: p50 < 2 s.

Two cases: with a baseline (every periodic reconciliation, and every restart after a
first good one: only the executions since the baseline are asked for — the gateway
filters them by time) and without one (the first reconciliation of an install: every
execution of the day is fetched and replayed onto empty books). The anchor, in the same
run, is bare ``ib_async`` asking for everything: all executions twice, positions, open
and completed orders, on its own event loop.

Run: ``.venv/bin/python benchmarks/bench_reconcile.py [--quick] [--json PATH]
[--positions N] [--executions N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ib_async import IB

from benchlib import fmt_met, gateway_process, machine, percentile
from tradingbot.broker import (
    BrokerActor,
    BrokerSettings,
    BrokerStatus,
    ConnectionState,
    LoopThread,
    trade_event_id,
)
from tradingbot.events import ORDER, TRADE, Event
from tradingbot.events.recorder import EventRecorder, RecordEvents
from tradingbot.logconfig import configure_logging
from tradingbot.recovery.reconciler import ReconcilerActor, ReconcileSettings, RunNow
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree, supervisor, worker

GOAL_S = 2.0
CLIENT_ID = 5


class DatabaseSink:
    """Stores recorded events at once (the reconciler's few durable events)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def tell(self, message: Any) -> None:
        assert isinstance(message, RecordEvents)
        self.database.events.insert_many(message.events)
        if message.ack is not None:
            message.ack.set_result(None)


def seed_file(symbols: int, executions: int) -> dict[str, Any]:
    """1,000 symbols and the day's executions (spread over six hours, 2 buys : 1 sell)."""
    names = [f"R{i:04d}" for i in range(symbols)]
    start = datetime.now(UTC) - timedelta(hours=6)
    step = timedelta(hours=6) / max(1, executions)
    fills = [
        {
            "time": (start + step * n).isoformat(),
            "symbol": names[n % symbols],
            "side": "BUY" if (n // symbols) % 3 != 2 else "SELL",
            "quantity": 10,
            "price": 50.0 + n % 300,
            "client_id": CLIENT_ID,
            "order_ref": f"TB-seed-{n}",
        }
        for n in range(executions)
    ]
    return {"symbols": {name: {"price": 100.0} for name in names}, "executions": fills}


def gateway_executions(port: int) -> list[Any]:
    """The gateway's executions, as the bot recorded them (fetched once, not timed)."""
    loop = LoopThread("bench-seed")
    loop.start()
    ib = IB()
    try:
        loop.run(ib.connectAsync("127.0.0.1", port, clientId=42), 60)

        async def fetch() -> list[Any]:
            await ib.reqExecutionsAsync()
            return [f for f in ib.fills() if f.commissionReport.execId]

        return loop.run(fetch(), 300)
    finally:
        loop.stop(before=ib.disconnect)


def seed_database(database: Database, fills: list[Any]) -> None:
    """The bot's books: a placed and an ended ORDER event and a TRADE event per fill."""
    recorder = EventRecorder(DatabaseSink(database))
    events: list[Event] = []
    for fill in fills:
        e, report = fill.execution, fill.commissionReport
        ref, symbol = e.orderRef, fill.contract.symbol
        side = "BUY" if e.side == "BOT" else "SELL"
        place = {"order_ref": ref, "action": "place", "symbol": symbol, "side": side,
                 "quantity": float(e.shares), "order_type": "MKT", "account": ""}  # fmt: skip
        events.append(recorder.build(ORDER, f"{side} {symbol}", trade_id=ref, context=place))
        trade = {"symbol": symbol, "side": side, "quantity": float(e.shares),
                 "price": float(e.price), "commission": report.commission,
                 "order_ref": ref, "exec_id": e.execId,
                 "exec_time": fill.time.timestamp(), "account": ""}  # fmt: skip
        events.append(
            recorder.build(
                TRADE,
                f"{side} {symbol}",
                trade_id=ref,
                context=trade,
                event_id=trade_event_id(e.execId),
            )
        )
        end = {"order_ref": ref, "action": "final", "status": "Filled", "account": ""}
        events.append(recorder.build(ORDER, f"order {ref} Filled", trade_id=ref, context=end))
    for start in range(0, len(events), 5000):
        database.events.insert_many(events[start : start + 5000])


def bare_round(port: int) -> list[float]:
    """Bare ib_async: the same five requests, timed inside its own loop."""
    loop = LoopThread("bench-bare")
    loop.start()
    ib = IB()
    loop.run(ib.connectAsync("127.0.0.1", port, clientId=41), 30)

    async def five() -> float:
        started = time.perf_counter()
        await ib.reqExecutionsAsync()
        await ib.reqPositionsAsync()
        await ib.reqAllOpenOrdersAsync()
        await ib.reqCompletedOrdersAsync(apiOnly=False)
        await ib.reqExecutionsAsync()
        return time.perf_counter() - started

    try:
        return [loop.run(five(), 300) for _ in range(ROUNDS)]
    finally:
        loop.stop(before=ib.disconnect)


ROUNDS = 5


def main(argv: list[str] | None = None) -> int:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 positions, 1,000 fills")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    positions, executions = (100, 1000) if args.quick else (args.positions, args.executions)
    ROUNDS = args.rounds
    log_dir = Path(tempfile.mkdtemp(prefix="bench-reconcile-logs-"))
    configure_logging(level="WARNING", log_dir=log_dir, stream=open(os.devnull, "w"))  # noqa: SIM115
    info = machine("ib_async", "pykka", positions=positions, executions=executions)
    print(json.dumps(info))

    with gateway_process(seed_file(positions, executions), 3600) as port:
        seeded = gateway_executions(port)
        assert len(seeded) == executions, len(seeded)
        with tempfile.TemporaryDirectory() as tmp:
            db_path = Path(tmp) / "bench.db"
            database = Database.open(f"sqlite:///{db_path}")
            database.upgrade()
            seed_database(database, seeded)
            status = BrokerStatus()
            recorder = EventRecorder(DatabaseSink(database))
            settings = BrokerSettings(port=port, client_id=CLIENT_ID, request_timeout_s=120)
            tree: SupervisionTree | None = None

            def reconciler() -> ReconcilerActor:
                assert tree is not None
                return ReconcilerActor(
                    database=database,
                    broker=tree.handle("broker"),
                    status=status,
                    recorder=recorder,
                    settings=ReconcileSettings(interval_s=3600, query_timeout_s=300),
                    run_id="00000000-0000-4000-8000-000000000000",
                )

            tree = SupervisionTree(
                supervisor(
                    "root",
                    [
                        worker(
                            "broker",
                            lambda: BrokerActor(settings, status, recorder),
                            start_timeout_s=120,
                        ),
                        worker("reconciler", reconciler, critical=False),
                    ],
                ),
                listeners=(),
            )
            status.block_trading("benchmark")
            tree.start()
            deadline = time.monotonic() + 300
            while status.trading_blocked() is not None:  # the start reconciliation
                if time.monotonic() > deadline:
                    raise RuntimeError("the start reconciliation did not pass")
                time.sleep(0.05)
            assert status.view().state == ConnectionState.SYNCED
            reconciler_handle = tree.handle("reconciler")

            def one_round() -> tuple[float, dict[str, Any]]:
                message = RunNow()
                started = time.perf_counter()
                reconciler_handle.tell(message)
                summary = message.reply.result(600)
                return time.perf_counter() - started, summary

            # Steady state: a baseline exists (the start reconciliation's), so only the
            # executions since it are asked for.
            steady = [one_round() for _ in range(ROUNDS)]
            # First reconciliation of an install (or after the table is emptied): no
            # baseline, every execution of the day is fetched and replayed.
            first = []
            for _ in range(ROUNDS):
                with sqlite3.connect(db_path) as raw:
                    raw.execute("DELETE FROM reconciliations")
                first.append(one_round())
            rounds = [t for t, _ in steady]
            first_rounds = [t for t, _ in first]
            statuses = {s["status"] for _, s in steady + first}
            tree.stop()
            database.dispose()
        bare = bare_round(port)

    anchor = sorted(bare)
    a50, a99 = percentile(anchor, 0.5), percentile(anchor, 0.99)
    rows = {}
    for name, values in (("steady", rounds), ("first", first_rounds)):
        ordered = sorted(values)
        p50 = percentile(ordered, 0.5)
        rows[name] = {
            "p50_s": round(p50, 3),
            "p99_s": round(percentile(ordered, 0.99), 3),
            "ratio": round(p50 / a50, 2),
            "goal_met": p50 < GOAL_S,
        }
    result = {
        "rounds": ROUNDS,
        "statuses": sorted(statuses),
        "bare_five_requests_p50_s": round(a50, 3),
        "bare_five_requests_p99_s": round(a99, 3),
        **rows,
    }
    print(f"\nReconciliation, {positions} positions, {executions} executions ({ROUNDS} rounds)")
    print(f"{'subject':52} {'p50 s':>7} {'p99 s':>7} {'ratio':>6} {'goal <2 s':>9}")
    print(f"{'bare ib_async: all executions x2, positions, orders':52} {a50:7.3f} {a99:7.3f}"
          f" {1.0:6.2f} {'-':>9}")  # fmt: skip
    labels = {
        "steady": "reconciliation with a baseline (periodic, restart)",
        "first": "first reconciliation (no baseline: all executions)",
    }
    for name, row in rows.items():
        print(f"{labels[name]:52} {row['p50_s']:7.3f} {row['p99_s']:7.3f} {row['ratio']:6.2f}"
              f" {fmt_met(row['goal_met']):>9}")  # fmt: skip
    print(f"results: {', '.join(result['statuses'])}")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": info, "result": result}, indent=2))
    return 0 if result["statuses"] == ["clean"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
