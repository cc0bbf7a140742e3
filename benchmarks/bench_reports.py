"""The daily summary and a one-year P&L report over 100,000 TRADE events.

A database (SQLite file, and PostgreSQL when reachable) holds 100,000 TRADE events:
fills of 50 symbols over one year of sessions, round trips with partial closes,
commissions and the broker's realized P&L on closing fills. Measured, interleaved:

* ``daily_report`` of one date (the e-mail's content), as served every time but the
  first: from the stored books of the day before (``books_snapshots``) plus the day;
* ``daily_report`` of that date with the stored books deleted first (the first report
  of a date with no snapshot at all: every fill replayed, the snapshot stored);
* ``pnl_report`` of the whole year ``--by day``: the day totals of the stored
  snapshots plus the last day's fills;
* ``pnl_report`` with the stored books deleted first (every fill replayed);
* the anchor: the raw SQL aggregate over the same rows (count and sum of realized P&L
  of the TRADE events, one query), in the same run.

Goal: each report < 1 s (p50), reported with its ratio to the anchor.

Run: ``.venv/bin/python benchmarks/bench_reports.py [--quick] [--events N] [--rounds N]
[--postgres URL|none] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import sqlalchemy

from benchlib import fmt_met, machine, percentile
from tradingbot.events import TRADE, Event
from tradingbot.reports.daily import daily_report
from tradingbot.reports.pnl import pnl_report
from tradingbot.scheduler import EXCHANGE_TZ, nyse
from tradingbot.storage import Database

GOAL_S = 1.0
DEFAULT_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
FIRST = date(2025, 1, 2)
LAST = date(2025, 12, 31)


def fills(count: int, seed: int = 7) -> list[Event]:
    """``count`` TRADE events: per session and symbol, buy, partial sell, final sell."""
    rng = random.Random(seed)
    calendar = nyse()
    sessions = calendar.sessions(FIRST, LAST)
    symbols = [f"S{n:02d}" for n in range(50)]
    events: list[Event] = []
    held: dict[str, tuple[float, float]] = {}
    while len(events) < count:
        for day in sessions:
            for symbol in symbols:
                if len(events) >= count:
                    return events
                at = datetime.combine(day, dtime(10, rng.randrange(60)), tzinfo=EXCHANGE_TZ)
                price = round(100 + rng.uniform(-5, 5), 2)
                qty, _ = held.get(symbol, (0.0, 0.0))
                if qty == 0:
                    side, size, realized = "BOT", 100.0, None
                    held[symbol] = (100.0, price)
                else:
                    size = 50.0
                    avg = held[symbol][1]
                    realized = round((price - avg) * size - 1.0, 2)
                    side = "SLD"
                    held[symbol] = (qty - size, avg)
                events.append(
                    Event(
                        type=TRADE,
                        message=f"{side} {size:g} {symbol}",
                        context={
                            "symbol": symbol,
                            "side": side,
                            "quantity": size,
                            "price": price,
                            "commission": 1.0,
                            "realized_pnl": realized,
                            "exec_id": str(uuid.uuid4()),
                            "exec_time": at.timestamp(),
                        },
                        timestamp=at.astimezone(UTC),
                    )
                )
    return events


@contextmanager
def databases(postgres: str | None) -> Iterator[list[tuple[str, str]]]:
    """(name, url) of a fresh SQLite file and, when reachable, a fresh PostgreSQL database."""
    with tempfile.TemporaryDirectory() as tmp:
        found = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        admin = None
        name = f"tradingbot_bench_{uuid.uuid4().hex[:10]}"
        if postgres:
            admin = sqlalchemy.create_engine(postgres, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
                url = sqlalchemy.engine.make_url(postgres).set(database=name)
                found.append(("postgresql", url.render_as_string(hide_password=False)))
            except sqlalchemy.exc.SQLAlchemyError as error:
                print(f"PostgreSQL skipped: {str(error).splitlines()[0]}")
                admin.dispose()
                admin = None
        try:
            yield found
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.dispose()


def anchor_query(dialect: str) -> str:
    if dialect == "postgresql":
        return (
            "SELECT count(*), sum((context->>'realized_pnl')::float) FROM events"
            " WHERE type = 'TRADE'"
        )
    return (
        "SELECT count(*), sum(json_extract(context, '$.realized_pnl')) FROM events"
        " WHERE type = 'TRADE'"
    )


Subject = tuple[Callable[[], Any], Callable[[], Any]]  # (untimed preparation, timed run)


def measure(
    rounds: int, subjects: dict[str, Subject]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds (this process only: not the database server) per round."""
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    cpu: dict[str, list[float]] = {name: [] for name in subjects}
    names = list(subjects)
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            prepare, subject = subjects[name]
            prepare()
            started, used = time.perf_counter(), time.process_time()
            subject()
            samples[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - used)
    return samples, cpu


def run(kind: str, url: str, events: list[Event], rounds: int) -> list[dict[str, Any]]:
    database = Database.open(url)
    database.upgrade()
    for start in range(0, len(events), 5000):
        database.events.insert_many(events[start : start + 5000])
    engine = sqlalchemy.create_engine(url)
    query = sqlalchemy.text(anchor_query(kind))
    day = LAST - timedelta(days=1)

    def anchor() -> Any:
        with engine.connect() as connection:
            return connection.execute(query).one()

    def forget() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM books_snapshots")

    def warm() -> None:  # the date's first reports store the books they need
        daily_report(database, day, calendar)
        pnl_report(database, FIRST, LAST, "day")

    calendar = nyse()
    samples, cpu = measure(
        rounds,
        {
            "raw SQL aggregate (anchor)": (warm, anchor),
            f"daily_report({day})": (warm, lambda: daily_report(database, day, calendar)),
            f"daily_report({day}), no stored books": (
                forget,
                lambda: daily_report(database, day, calendar),
            ),
            "pnl_report(one year, by day)": (
                warm,
                lambda: pnl_report(database, FIRST, LAST, "day"),
            ),
            "pnl_report(one year, by day), no stored books": (
                forget,
                lambda: pnl_report(database, FIRST, LAST, "day"),
            ),
        },
    )
    engine.dispose()
    database.dispose()
    anchor_p50 = percentile(sorted(samples["raw SQL aggregate (anchor)"]), 0.5)
    rows = []
    for name, values in samples.items():
        values.sort()
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        is_anchor = name.endswith("(anchor)")
        rows.append(
            {
                "database": kind,
                "benchmark": name,
                "p50_s": round(p50, 4),
                "p99_s": round(p99, 4),
                "cpu_p50_s": round(percentile(sorted(cpu[name]), 0.5), 4),
                "ratio": round(p50 / anchor_p50, 1),
                "met": None if is_anchor else p50 < GOAL_S,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL, or none")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    count = 5_000 if args.quick else args.events
    rounds = 3 if args.quick else args.rounds
    events = fills(count)
    facts = machine("SQLAlchemy", "exchange_calendars", events=count, rounds=rounds)
    results: list[dict[str, Any]] = []
    postgres = None if args.postgres == "none" else args.postgres
    with databases(postgres) as found:
        for kind, url in found:
            results.extend(run(kind, url, events, rounds))
    print(json.dumps(facts))
    print(
        "| Database | Benchmark | p50 (s) | p99 (s) | CPU p50 (s) | Ratio to anchor | Goal < 1 s |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        print(
            f"| {r['database']} | {r['benchmark']} | {r['p50_s']} | {r['p99_s']} |"
            f" {r['cpu_p50_s']} | {r['ratio']} | {fmt_met(r['met'])} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": facts, "results": results}, indent=2))


if __name__ == "__main__":
    main()
