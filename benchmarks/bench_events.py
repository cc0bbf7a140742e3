"""Events: persistence through the event logger, the events API, and log line cost.

Three measurements, each against an anchor measured in the same run with anchor and
subject rounds interleaved (these machines are shared and noisy), on SQLite (a file in a
temp dir) and PostgreSQL (a fresh temporary database, dropped at the end):

1. events persisted per second through ``EventRecorder.record`` -> ``EventLoggerActor``
   (in a ``SupervisionTree``) -> ``FlushEvents`` answered, vs raw SQLAlchemy Core bulk
   inserts (``connection.execute(insert(events), rows)``, batches of the same size) into
   the same table; goal: actor/raw throughput >= 0.5;
2. ``GET /api/events`` over 1,000,000 stored events (product app and runtime on a real
   loopback port, aiohttp client), per query shape, vs a bare aiohttp handler returning a
   fixed JSON body of the same size on the same server; goal: p99 < 50 ms;
3. one log line through ``tradingbot.logconfig.configure_logging``'s full chain (file in
   a temp dir + stdout to /dev/null) vs a bare structlog ``PrintLogger`` + ``JSONRenderer``
   to a file; goal: <= 10 us per line.

Run: ``.venv/bin/python benchmarks/bench_events.py [--quick] [--json PATH]
[--events N] [--postgres-url URL] [--only persist|api|log] [--profile-logging]``.
Throughput ratios are the median over rounds of subject events/s / anchor events/s in
the same round (< 1 is slower); latency ratios are subject p50 / anchor p50 (> 1 is
slower).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import aiohttp
import orjson
import sqlalchemy
import structlog
from aiohttp import web
from sqlalchemy import Table, insert
from sqlalchemy.engine import make_url

from benchlib import fmt_met, machine, percentile, rotated
from tradingbot.config import Config, load_config, redact_url
from tradingbot.events import ORDER, RISK, SIGNAL, SYSTEM, TRADE, Event, Severity
from tradingbot.events.event_logger import EventLoggerActor, EventLoggerSettings, FlushEvents
from tradingbot.events.hub import EventHub
from tradingbot.events.recorder import EventRecorder
from tradingbot.events.spool import EventSpool
from tradingbot.logconfig import configure_logging
from tradingbot.runtime import Runtime
from tradingbot.storage import Database
from tradingbot.storage.engine import create_engine_for
from tradingbot.storage.models import EventRow
from tradingbot.supervision import SupervisionTree, supervisor, worker
from tradingbot.web import create_app

T = TypeVar("T")

ACTOR_GOAL_RATIO = 0.5
API_GOAL_P99_MS = 50.0
LOG_GOAL_US = 10.0
DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
TIMEOUT_S = 120.0
EVENTS_TABLE = cast(Table, EventRow.__table__)
COLUMNS = (
    "event_id",
    "ts",
    "type",
    "severity",
    "message",
    "source",
    "strategy_id",
    "trade_id",
    "user_id",
    "context",
)

# -- statistics and output helpers --------------------------------------------------------


@dataclass(slots=True)
class ThroughputRow:
    backend: str
    subject: str
    anchor: str
    events: int
    rounds: int
    anchor_events_per_s: float
    events_per_s: float
    ratio: float
    goal: str
    met: bool | None
    rounds_events_per_s: list[float] = field(default_factory=list)
    anchor_rounds_events_per_s: list[float] = field(default_factory=list)


@dataclass(slots=True)
class LatencyRow:
    bench: str
    backend: str
    subject: str
    anchor: str
    unit: str
    n: int
    anchor_p50: float
    anchor_p99: float
    p50: float
    p99: float
    ratio: float
    goal: str
    met: bool | None


def latency_row(
    bench: str,
    backend: str,
    subject: str,
    anchor: str,
    unit: str,
    samples: list[float],
    anchor_samples: list[float],
    goal: str,
    met: Callable[[float, float], bool] | None,
) -> LatencyRow:
    s, a = sorted(samples), sorted(anchor_samples)
    p50, p99 = percentile(s, 0.50), percentile(s, 0.99)
    a50, a99 = percentile(a, 0.50), percentile(a, 0.99)
    return LatencyRow(
        bench=bench,
        backend=backend,
        subject=subject,
        anchor=anchor,
        unit=unit,
        n=len(s),
        anchor_p50=round(a50, 3),
        anchor_p99=round(a99, 3),
        p50=round(p50, 3),
        p99=round(p99, 3),
        ratio=round(p50 / a50, 2),
        goal=goal,
        met=None if met is None else met(p50, p99),
    )


# -- databases ----------------------------------------------------------------------------


class Databases:
    """Fresh databases for each part: SQLite files in a temp dir, temporary PG databases."""

    def __init__(self, tmp: Path, postgres_url: str | None) -> None:
        self._tmp = tmp
        self._admin: sqlalchemy.Engine | None = None
        self._created: list[str] = []
        self.postgres_url = postgres_url
        self.postgres_version: str | None = None
        self.postgres_note: str | None = None
        if postgres_url is not None:
            self._connect_admin(postgres_url)

    def _connect_admin(self, url: str) -> None:
        admin = sqlalchemy.create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            poolclass=sqlalchemy.pool.NullPool,  # a fresh connection each time
            connect_args={"connect_timeout": 5},
        )
        try:
            with admin.connect() as connection:
                self.postgres_version = str(
                    connection.exec_driver_sql("SHOW server_version").scalar()
                )
        except sqlalchemy.exc.SQLAlchemyError as error:
            admin.dispose()
            reason = (str(getattr(error, "orig", error)).strip().splitlines() or ["?"])[0]
            self.postgres_note = f"PostgreSQL skipped: {redact_url(url)} unreachable ({reason})"
            return
        self._admin = admin

    def backends(self) -> list[str]:
        return ["sqlite", "postgresql"] if self._admin is not None else ["sqlite"]

    def fresh(self, backend: str, part: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self._tmp / part / 'trading-bot.db'}"
        assert self._admin is not None
        assert self.postgres_url is not None
        name = f"tradingbot_bench_{part}_{uuid.uuid4().hex[:8]}"
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return make_url(self.postgres_url).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as connection:
            for name in self._created:
                connection.execute(
                    sqlalchemy.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        self._created.clear()
        self._admin.dispose()


# -- a realistic event mix ----------------------------------------------------------------

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "SPY", "QQQ", "META", "GOOG", "AMD")
STRATEGIES = tuple(f"strat-{i:02d}" for i in range(1, 21))
TYPE_WEIGHTS = ((SIGNAL, 50), (ORDER, 20), (TRADE, 10), (RISK, 10), (SYSTEM, 10))
SEVERITY_WEIGHTS = (
    (Severity.DEBUG, 10),
    (Severity.INFO, 65),
    (Severity.WARNING, 18),
    (Severity.ERROR, 6),
    (Severity.CRITICAL, 1),
)


@dataclass(frozen=True, slots=True)
class Spec:
    """One event's fields (without id and timestamp)."""

    type: str
    severity: Severity
    message: str
    source: str
    strategy_id: str | None
    trade_id: str | None
    context: dict[str, Any]


class EventMix:
    """Deterministic stream of event specs: types, severities, strategies, trades."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._types = [t for t, w in TYPE_WEIGHTS for _ in range(w)]
        self._severities = [s for s, w in SEVERITY_WEIGHTS for _ in range(w)]
        self._trade = 0
        self._trade_left = 0
        self.trade_ids: list[str] = []

    def next(self) -> Spec:
        rng = self._rng
        type_ = rng.choice(self._types)
        severity = rng.choice(self._severities)
        symbol = rng.choice(SYMBOLS)
        strategy = None if type_ == SYSTEM else rng.choice(STRATEGIES)
        trade_id = None
        if type_ in (ORDER, TRADE) or (type_ == RISK and rng.random() < 0.3):
            if self._trade_left == 0:  # a trade has about 4 ORDER/TRADE/RISK events
                self._trade += 1
                self._trade_left = rng.randint(2, 6)
                self.trade_ids.append(f"T-{self._trade:07d}")
            self._trade_left -= 1
            trade_id = f"T-{self._trade:07d}"
        qty = rng.randint(1, 500)
        price = round(rng.uniform(10, 900), 2)
        if type_ == SYSTEM:
            source, message = "supervision", f"actor broker_{symbol.lower()} restarted"
        elif type_ == RISK:
            source, message = "risk", f"exposure {symbol} {qty * price:.0f} USD near limit"
        else:
            side = rng.choice(("BUY", "SELL"))
            source = strategy or ""
            message = f"{type_} {side} {qty} {symbol} LMT {price}"
        return Spec(
            type=type_,
            severity=severity,
            message=message,
            source=source,
            strategy_id=strategy,
            trade_id=trade_id,
            context={"symbol": symbol, "qty": qty, "price": price},
        )


def event_of(spec: Spec) -> Event:
    return Event(
        type=spec.type,
        message=spec.message,
        severity=spec.severity,
        source=spec.source,
        strategy_id=spec.strategy_id,
        trade_id=spec.trade_id,
        context=spec.context,
    )


def row_of(event: Event) -> dict[str, Any]:
    """The events-table row of an event, as a raw bulk insert would build it."""
    return {
        "event_id": str(event.id),
        "ts": event.timestamp,
        "type": event.type,
        "severity": int(event.severity),
        "message": event.message,
        "source": event.source,
        "strategy_id": event.strategy_id,
        "trade_id": event.trade_id,
        "user_id": event.user_id,
        "context": event.context,
    }


# -- 1. events persisted per second -------------------------------------------------------


def start_event_logger(database: Database, spool_dir: Path) -> SupervisionTree:
    spool = EventSpool(spool_dir)
    hub = EventHub()
    settings = EventLoggerSettings()  # production defaults: batch 500, flush every 0.1 s
    tree = SupervisionTree(
        supervisor(
            "root",
            [worker("event_logger", lambda: EventLoggerActor(database, spool, hub, settings))],
            intensity=10,
        ),
        listeners=(),
    )
    tree.start()
    return tree


def bench_persist(
    backend: str, url: str, spool_dir: Path, events: int, rounds: int, warmup: int
) -> list[ThroughputRow]:
    batch_size = EventLoggerSettings().batch_size
    database = Database.open(url)
    database.upgrade()
    engine = create_engine_for(url)
    statement = insert(EVENTS_TABLE)
    tree = start_event_logger(database, spool_dir)
    recorder = EventRecorder(tree.handle("event_logger"))
    mix = EventMix(seed=1)
    policy = EventLoggerSettings().policy  # every spec here is one the policy stores
    specs: list[Spec] = []
    while len(specs) < events:
        spec = mix.next()
        if policy.persists(event_of(spec)):
            specs.append(spec)

    def run_raw(n: int) -> float:
        rows = [row_of(event_of(spec)) for spec in specs[:n]]
        gc.collect()
        t0 = time.perf_counter()
        for start in range(0, n, batch_size):
            with engine.begin() as connection:
                connection.execute(statement, rows[start : start + batch_size])
        return time.perf_counter() - t0

    def run_repository(n: int) -> float:
        batch = [event_of(spec) for spec in specs[:n]]
        gc.collect()
        t0 = time.perf_counter()
        for start in range(0, n, batch_size):
            database.events.insert_many(batch[start : start + batch_size])
        return time.perf_counter() - t0

    def run_actor(n: int, log_line: bool) -> float:
        record = recorder.record
        todo = specs[:n]
        gc.collect()
        t0 = time.perf_counter()
        for spec in todo:
            record(
                spec.type,
                spec.message,
                log_line=log_line,
                severity=spec.severity,
                source=spec.source,
                strategy_id=spec.strategy_id,
                trade_id=spec.trade_id,
                context=spec.context,
            )
        stats = tree.ask("event_logger", FlushEvents(), TIMEOUT_S)
        elapsed = time.perf_counter() - t0
        if stats["mode"] != "normal" or stats["spooled_total"]:
            raise SystemExit(f"persist bench invalid: the event logger spooled: {stats}")
        return elapsed

    runners: dict[str, Callable[[int], float]] = {
        "raw": run_raw,
        "repository": run_repository,
        "actor": lambda n: run_actor(n, False),
        "actor_log": lambda n: run_actor(n, True),
    }
    rates: dict[str, list[float]] = {name: [] for name in runners}

    def timed(name: str, n: int) -> float:
        before = database.events.count()
        elapsed = runners[name](n)
        stored = database.events.count() - before
        if stored != n:
            raise SystemExit(f"persist bench invalid: {name} stored {stored} of {n} events")
        return elapsed

    try:
        for name in runners:
            timed(name, warmup)
        names = list(runners)
        for r in range(rounds):
            for name in rotated(names, r):
                rates[name].append(events / timed(name, events))
    finally:
        tree.stop()
        engine.dispose()
        database.dispose()

    anchor_rate = statistics.median(rates["raw"])
    rows = []
    for name, label, goal in (
        ("actor", "record(log_line=False) -> actor -> flush answered", True),
        ("actor_log", "record() with its log line (full chain, INFO, file)", False),
        ("repository", "EventRepository.insert_many (pre-built events)", False),
    ):
        rate = statistics.median(rates[name])
        # The table grows during the run (every variant inserts into it), so each
        # round's subject is paired with the same round's anchor.
        ratio = statistics.median(s / a for s, a in zip(rates[name], rates["raw"], strict=True))
        rows.append(
            ThroughputRow(
                backend=backend,
                subject=label,
                anchor=f"insert(events) executemany, batches of {batch_size}",
                events=events,
                rounds=rounds,
                anchor_events_per_s=round(anchor_rate),
                events_per_s=round(rate),
                ratio=round(ratio, 3),
                goal=f"ratio >= {ACTOR_GOAL_RATIO}" if goal else "-",
                met=(ratio >= ACTOR_GOAL_RATIO) if goal else None,
                rounds_events_per_s=[round(x) for x in rates[name]],
                anchor_rounds_events_per_s=[round(x) for x in rates["raw"]],
            )
        )
    return rows


# -- 2. GET /api/events over many stored events -------------------------------------------


@dataclass(slots=True)
class LoadInfo:
    backend: str
    events: int
    seconds: float
    first: datetime
    last: datetime
    trade_ids: list[str]
    rows_per_s: float = 0.0


def generated_rows(n: int, seed: int, end: datetime) -> tuple[Iterator[tuple[Any, ...]], EventMix]:
    """``n`` rows in time order over 180 days ending at ``end`` (columns as COLUMNS)."""
    mix = EventMix(seed)
    rng = random.Random(seed + 1)
    span_us = 180 * 86_400 * 1_000_000
    start = end - timedelta(microseconds=span_us)
    step = span_us // n

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            spec = mix.next()
            ts = start + timedelta(microseconds=i * step + rng.randrange(step))
            yield (
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                ts,
                spec.type,
                int(spec.severity),
                spec.message,
                spec.source,
                spec.strategy_id,
                spec.trade_id,
                None,
                orjson.dumps(spec.context).decode(),
            )

    return rows(), mix


def load_sqlite(url: str, rows: Iterator[tuple[Any, ...]]) -> None:
    path = make_url(url).database
    assert path is not None
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA cache_size = -1000000")  # 1 GB for the load only
        connection.execute("BEGIN IMMEDIATE")
        placeholders = ", ".join("?" for _ in COLUMNS)
        # SQLAlchemy's SQLite DateTime text format (UTC wall time, see UTCDateTime).
        connection.executemany(
            f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({placeholders})",
            (
                (r[0], r[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[2:])
                for r in rows  # r[1] is an aware UTC datetime
            ),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


def load_postgres(url: str, rows: Iterator[tuple[Any, ...]], chunk: int = 100_000) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            copy = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN"
            while True:
                buffer = io.StringIO()
                count = 0
                for r in rows:
                    buffer.write(
                        "\t".join(
                            "\\N" if v is None else str(v)
                            for v in (*r[:1], r[1].isoformat(), *r[2:])
                        )
                    )
                    buffer.write("\n")
                    count += 1
                    if count == chunk:
                        break
                if not count:
                    break
                buffer.seek(0)
                cursor.copy_expert(copy, buffer)
            raw.commit()
        finally:
            raw.close()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE events")
    finally:
        engine.dispose()


def load_events(backend: str, url: str, n: int) -> LoadInfo:
    database = Database.open(url)
    database.upgrade()
    database.dispose()
    end = datetime.now(UTC).replace(microsecond=0)
    rows, mix = generated_rows(n, seed=7, end=end)
    t0 = time.perf_counter()
    if backend == "sqlite":
        load_sqlite(url, rows)
    else:
        load_postgres(url, rows)
    seconds = time.perf_counter() - t0
    with Database.open(url) as database:
        stored = database.events.count()
    if stored != n:
        raise SystemExit(f"load invalid: {stored} events stored, {n} generated")
    return LoadInfo(
        backend=backend,
        events=n,
        seconds=round(seconds, 1),
        first=end - timedelta(days=180),
        last=end,
        trade_ids=mix.trade_ids,
        rows_per_s=round(n / seconds),
    )


class LoopThread:
    """An event loop in a daemon thread, as the process's main loop would be."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 600) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    params: Callable[[], dict[str, str]]
    check: Callable[[dict[str, str], dict[str, Any]], str | None]
    full_page: bool = True


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_events(params: dict[str, str], body: dict[str, Any]) -> str | None:
    """None if every event matches the request's filters, else what is wrong."""
    events = body["events"]
    wanted_types = params.get("type")
    floor = Severity[params["severity"]] if "severity" in params else None
    since = datetime.fromisoformat(params["since"]) if "since" in params else None
    until = datetime.fromisoformat(params["until"]) if "until" in params else None
    previous = None
    for item in events:
        if wanted_types is not None and item["type"] != wanted_types:
            return f"type {item['type']} != {wanted_types}"
        if floor is not None and Severity[item["severity"]] < floor:
            return f"severity {item['severity']} < {floor.name}"
        for key in ("strategy_id", "trade_id"):
            if key in params and item[key] != params[key]:
                return f"{key} {item[key]} != {params[key]}"
        ts = datetime.fromisoformat(item["timestamp"])
        if (since is not None and ts < since) or (until is not None and ts >= until):
            return f"timestamp {ts} outside [{since}, {until})"
        if previous is not None and ts > previous:
            return "not newest first"
        previous = ts
    return None


def query_shapes(info: LoadInfo, rng: random.Random, cursors: dict[str, str]) -> list[Shape]:
    days = (info.last - info.first).days

    def window() -> dict[str, str]:
        since = info.first + timedelta(days=rng.uniform(0, days - 7))
        return {"since": _iso(since), "until": _iso(since + timedelta(days=7))}

    def fixed(params: dict[str, str]) -> Callable[[], dict[str, str]]:
        return lambda: dict(params)

    multi = {"type": "TRADE", "severity": "WARNING"}
    return [
        Shape("no filter", fixed({}), check_events),
        Shape("type=TRADE", fixed({"type": "TRADE"}), check_events),
        Shape("severity=WARNING (and above)", fixed({"severity": "WARNING"}), check_events),
        Shape("type=TRADE&severity=WARNING", fixed(multi), check_events),
        Shape(
            "strategy_id=<one of 20>",
            lambda: {"strategy_id": rng.choice(STRATEGIES)},
            check_events,
        ),
        Shape(
            "strategy_id + type=SIGNAL",
            lambda: {"strategy_id": rng.choice(STRATEGIES), "type": "SIGNAL"},
            check_events,
        ),
        Shape(
            "trade_id=<random trade>",
            lambda: {"trade_id": rng.choice(info.trade_ids)},
            check_events,
            full_page=False,
        ),
        Shape("since/until (random 7-day window)", window, check_events),
        Shape("page 2 via cursor (no filter)", fixed({"cursor": cursors["none"]}), check_events),
        Shape(
            "page 2 via cursor (type=TRADE&severity=WARNING)",
            fixed({**multi, "cursor": cursors["multi"]}),
            check_events,
        ),
    ]


ANCHOR = "anchor"


def runtime_config(home: Path, url: str) -> Config:
    env_file = home.parent / "empty.env"  # so that a ./.env in the working directory is ignored
    env_file.write_text("")
    return load_config(
        environ={
            "TRADINGBOT_HOME": str(home),
            "TRADINGBOT_ENV_FILE": str(env_file),
            "TRADINGBOT_DATABASE_URL": url,
            "TRADINGBOT_EVENT_RETENTION_DAYS": "3650",  # never prune the loaded events
        }
    )


def bench_api(
    backend: str, url: str, home: Path, info: LoadInfo, rounds: int, per_round: int, warmup: int
) -> list[LatencyRow]:
    runtime = Runtime(runtime_config(home, url))
    app = create_app(runtime)
    fixed_body: list[bytes] = [b""]

    async def fixed(_request: web.Request) -> web.Response:
        return web.Response(
            body=fixed_body[0],
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    app.router.add_get("/bench/fixed", fixed)
    runner = web.AppRunner(app, access_log=None)
    loop = LoopThread()
    rng = random.Random(11)
    failures: list[str] = []

    async def start() -> tuple[str, aiohttp.ClientSession]:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        return f"http://127.0.0.1:{port}", aiohttp.ClientSession()

    base, session = loop.run(start())

    async def get(path: str, params: dict[str, str]) -> tuple[float, int, bytes]:
        t0 = time.perf_counter_ns()
        async with session.get(base + path, params=params) as response:
            body = await response.read()
        return (time.perf_counter_ns() - t0) / 1e6, response.status, body

    async def prepare() -> dict[str, str]:
        _, status, body = await get("/api/events", {})
        if status != 200:
            raise SystemExit(f"api bench: GET /api/events answered {status}: {body[:200]!r}")
        fixed_body[0] = body
        _, _, multi = await get("/api/events", {"type": "TRADE", "severity": "WARNING"})
        return {
            "none": orjson.loads(body)["next_cursor"],
            "multi": orjson.loads(multi)["next_cursor"],
        }

    async def run(shape: Shape | None, n: int, out: list[float]) -> None:
        for _ in range(n):
            if shape is None:
                elapsed, status, body = await get("/bench/fixed", {})
                out.append(elapsed)
                continue
            params = shape.params()
            elapsed, status, body = await get("/api/events", params)
            out.append(elapsed)
            if status != 200:
                failures.append(f"{shape.name}: HTTP {status}: {body[:200]!r}")
                continue
            page = orjson.loads(body)
            wrong = shape.check(params, page)
            if wrong is None and shape.full_page and len(page["events"]) != 100:
                wrong = f"{len(page['events'])} events, expected a full page of 100"
            if wrong is None and not page["events"]:
                wrong = "no events"
            if wrong is not None:
                failures.append(f"{shape.name} {params}: {wrong}")

    try:
        cursors = loop.run(prepare())
        shapes = query_shapes(info, rng, cursors)
        names: list[Shape | None] = [None, *shapes]
        samples: dict[str, list[float]] = {name: [] for name in (ANCHOR, *(s.name for s in shapes))}
        for shape in names:
            loop.run(run(shape, warmup, []))
        for r in range(rounds):
            gc.collect()
            for shape in rotated(names, r):
                key = ANCHOR if shape is None else shape.name
                loop.run(run(shape, per_round, samples[key]))
    finally:
        loop.run(session.close())
        loop.run(runner.cleanup())
        loop.close()
    if failures:
        raise SystemExit("api bench invalid:\n  " + "\n  ".join(failures[:10]))

    def goal(_p50: float, p99: float) -> bool:
        return p99 < API_GOAL_P99_MS

    anchor = f"bare handler, fixed {len(fixed_body[0]):,}-byte JSON body"
    goal_text = f"p99 < {API_GOAL_P99_MS:g} ms"
    rows = [
        latency_row(
            "api", backend, s.name, anchor, "ms", samples[s.name], samples[ANCHOR], goal_text, goal
        )
        for s in shapes
    ]
    pooled = [x for s in shapes for x in samples[s.name]]
    rows.append(
        latency_row(
            "api", backend, "all shapes", anchor, "ms", pooled, samples[ANCHOR], goal_text, goal
        )
    )
    return rows


# -- 3. log line cost ---------------------------------------------------------------------

LINE_FIELDS: dict[str, Any] = {
    "symbol": "AAPL",
    "side": "BUY",
    "quantity": 10,
    "limit_price": 189.2,
    "strategy_id": "mean-revert-1",
    "trade_id": "T-42",
}


def bench_logging(
    tmp: Path, rounds: int, batches: int, lines: int, profile: bool
) -> tuple[list[LatencyRow], str | None]:
    log_dir = tmp / "logs-bench"
    devnull = open(os.devnull, "w")  # noqa: SIM115  (closed below)
    configure_logging(level="INFO", log_dir=log_dir, stream=devnull)
    full = structlog.get_logger("tradingbot.bench")
    stdlib = logging.getLogger("aiohttp.server")
    anchor_file = open(tmp / "anchor.log", "w")  # noqa: SIM115  (closed below)
    bare = structlog.wrap_logger(
        structlog.PrintLogger(anchor_file), processors=[structlog.processors.JSONRenderer()]
    ).bind()

    def run_full(n: int) -> None:
        info = full.info
        for _ in range(n):
            info("order_submitted", **LINE_FIELDS)

    def run_filtered(n: int) -> None:
        debug = full.debug
        for _ in range(n):
            debug("order_submitted", **LINE_FIELDS)

    def run_stdlib(n: int) -> None:
        warning = stdlib.warning
        for _ in range(n):
            warning("Error handling request from %s", "127.0.0.1")

    def run_anchor(n: int) -> None:
        info = bare.info
        for _ in range(n):
            info("order_submitted", **LINE_FIELDS)

    runners = {
        "anchor": run_anchor,
        "full": run_full,
        "stdlib": run_stdlib,
        "filtered": run_filtered,
    }
    samples: dict[str, list[float]] = {name: [] for name in runners}
    clock = time.perf_counter_ns
    for run in runners.values():
        run(lines)
    names = list(runners)
    for r in range(rounds):
        gc.collect()
        for name in rotated(names, r):
            run = runners[name]
            for _ in range(batches):
                t0 = clock()
                run(lines)
                samples[name].append((clock() - t0) / 1000 / lines)
    profiled = None
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_full(20 * lines)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        profiled = out.getvalue()
    written = sum(1 for _ in (log_dir / "trading-bot.log").open())
    expected = (rounds * batches + 1) * lines * 2 + (20 * lines if profile else 0)
    close_log_handlers()
    devnull.close()
    anchor_file.close()
    if written != expected:
        raise SystemExit(f"log bench invalid: {written} lines in the file, expected {expected}")

    def goal(p50: float, _p99: float) -> bool:
        return p50 <= LOG_GOAL_US

    anchor = "structlog PrintLogger(file) + JSONRenderer only"
    unit = "us/line"
    return [
        latency_row(
            "log",
            "-",
            "structlog info line, full chain (stdout=/dev/null + file)",
            anchor,
            unit,
            samples["full"],
            samples["anchor"],
            f"p50 <= {LOG_GOAL_US:g} us",
            goal,
        ),
        latency_row(
            "log",
            "-",
            "stdlib record via ProcessorFormatter (info)",
            anchor,
            unit,
            samples["stdlib"],
            samples["anchor"],
            "-",
            None,
        ),
        latency_row(
            "log",
            "-",
            "structlog debug line below INFO (filtered, info)",
            anchor,
            unit,
            samples["filtered"],
            samples["anchor"],
            "-",
            None,
        ),
    ], profiled


def close_log_handlers() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.addHandler(logging.NullHandler())


# -- output -------------------------------------------------------------------------------


def bench_machine(databases: Databases) -> dict[str, Any]:
    return machine(
        "sqlalchemy",
        "psycopg2-binary",
        "aiohttp",
        "structlog",
        sqlite=sqlite3.sqlite_version,
        postgresql=databases.postgres_version,
    )


def print_throughput(rows: list[ThroughputRow]) -> None:
    print(
        "1. Events persisted per second (median of rounds; ratio = median over rounds of"
        " subject / anchor events/s)"
    )
    head = (
        f"{'db':<10} {'subject':<54} {'events':>7} {'anchor ev/s':>11} {'ev/s':>9} "
        f"{'ratio':>6}  goal met"
    )
    print(head)
    print("-" * len(head))
    for t in rows:
        print(
            f"{t.backend:<10} {t.subject:<54} {t.events:>7} {t.anchor_events_per_s:>11,.0f} "
            f"{t.events_per_s:>9,.0f} {t.ratio:>6.2f}  {fmt_met(t.met)} ({t.goal})"
        )


def print_latency(title: str, rows: list[LatencyRow]) -> None:
    print(title)
    head = (
        f"{'db':<10} {'subject':<58} {'n':>5} {'anc p50':>8} {'anc p99':>8} "
        f"{'p50':>8} {'p99':>8} {'ratio':>6}  goal met"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        print(
            f"{row.backend:<10} {row.subject:<58} {row.n:>5} {row.anchor_p50:>8.2f} "
            f"{row.anchor_p99:>8.2f} {row.p50:>8.2f} {row.p99:>8.2f} {row.ratio:>6.2f}  "
            f"{fmt_met(row.met)} ({row.goal})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--events",
        type=int,
        metavar="N",
        help="events stored for the API bench (default 1,000,000; 100,000 with --quick)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server where a temporary database is created and dropped ('' to skip)",
    )
    parser.add_argument(
        "--only", choices=("persist", "api", "log"), action="append", help="run only these parts"
    )
    parser.add_argument(
        "--profile-logging", action="store_true", help="print a cProfile of the full log chain"
    )
    args = parser.parse_args(argv)
    parts = set(args.only or ("persist", "api", "log"))

    if args.quick:
        persist_cfg = {"events": 5_000, "rounds": 3, "warmup": 1_000}
        api_cfg = {"rounds": 3, "per_round": 10, "warmup": 3}
        log_cfg = {"rounds": 3, "batches": 10, "lines": 1_000}
        stored = args.events or 100_000
    else:
        persist_cfg = {"events": 20_000, "rounds": 7, "warmup": 2_000}
        api_cfg = {"rounds": 10, "per_round": 30, "warmup": 10}
        log_cfg = {"rounds": 10, "batches": 20, "lines": 1_000}
        stored = args.events or 1_000_000

    started = time.perf_counter()
    throughput: list[ThroughputRow] = []
    api: list[LatencyRow] = []
    loads: list[LoadInfo] = []
    log_rows: list[LatencyRow] = []
    profiled = None
    with tempfile.TemporaryDirectory(prefix="bench_events_") as tmp_name:
        tmp = Path(tmp_name)
        databases = Databases(tmp, args.postgres_url or None)
        info = bench_machine(databases)
        if databases.postgres_note:
            print(databases.postgres_note)
        # The product's pipeline at INFO while parts 1 and 2 run (record()'s log lines
        # and the runtime's own lines go to a file; stdout to /dev/null).
        with open(os.devnull, "w") as devnull:
            configure_logging(level="INFO", log_dir=tmp / "logs-setup", stream=devnull)
            try:
                for backend in databases.backends():
                    if "persist" in parts:
                        url = databases.fresh(backend, "persist")
                        print(f"[{backend}] persist bench ...", flush=True)
                        throughput += bench_persist(
                            backend, url, tmp / f"spool-{backend}", **persist_cfg
                        )
                    if "api" in parts:
                        url = databases.fresh(backend, "api")
                        print(f"[{backend}] loading {stored:,} events ...", flush=True)
                        load = load_events(backend, url, stored)
                        loads.append(load)
                        print(
                            f"[{backend}] loaded in {load.seconds:.1f} s "
                            f"({load.rows_per_s:,.0f} rows/s); API bench ...",
                            flush=True,
                        )
                        api += bench_api(backend, url, tmp / f"home-{backend}", load, **api_cfg)
            finally:
                databases.close()
                close_log_handlers()
        if "log" in parts:
            print("log bench ...", flush=True)
            log_rows, profiled = bench_logging(tmp, profile=args.profile_logging, **log_cfg)
    duration_s = time.perf_counter() - started

    print()
    print(
        f"bench_events  {info['date']}  nproc={info['nproc']}  python={info['python']}  "
        f"sqlite={info['sqlite']}  postgresql={info['postgresql']}  "
        f"mode={'quick' if args.quick else 'full'}  {duration_s:.0f} s"
    )
    print()
    if throughput:
        print_throughput(throughput)
        print()
    if api:
        for load in loads:
            print(
                f"[{load.backend}] {load.events:,} events loaded in {load.seconds:.1f} s "
                f"({load.rows_per_s:,.0f} rows/s), {len(load.trade_ids):,} trades"
            )
        print_latency("2. GET /api/events (ms; ratio = subject p50 / anchor p50)", api)
        print()
    if log_rows:
        print_latency("3. Log line cost (us per line, p50/p99 over batches)", log_rows)
        print()
    if profiled:
        print(profiled)
    goals = [t.met for t in throughput if t.met is not None]
    goals += [row.met for row in api + log_rows if row.met is not None]
    print(f"goals met: {sum(goals)}/{len(goals)}")

    if args.json:
        payload = {
            "benchmark": "events",
            "command": " ".join([".venv/bin/python", "benchmarks/bench_events.py", *sys.argv[1:]]),
            "mode": "quick" if args.quick else "full",
            "machine": info,
            "duration_s": round(duration_s, 1),
            "config": {"persist": persist_cfg, "api": api_cfg, "log": log_cfg, "events": stored},
            "postgres_note": databases.postgres_note,
            "loads": [
                {k: v for k, v in asdict(load).items() if k != "trade_ids"}
                | {"trades": len(load.trade_ids)}
                for load in loads
            ],
            "throughput": [asdict(t) for t in throughput],
            "latency": [asdict(row) for row in api + log_rows],
            "goals_met": all(goals),
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, default=str)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
