"""Strategies: quote -> decision -> order at the simulator, and quotes fanned out to strategies.

The gateway simulator runs in its own process (this script started with
``--serve-gateway``), with a line-based control socket on loopback. Its clock
(``time.perf_counter``, CLOCK_MONOTONIC on Linux) is the same as this process's
``time.monotonic``, so stage times taken in both processes can be subtracted.

1. Latency, tick sent -> order at the simulator. The simulator pins the price of ``LAT``
   across a threshold and writes one tick (bid, ask, last, volume in one write) to the
   measured client only, then times the ``placeOrder`` that client sends back; both
   times are taken in the simulator. The decision is the same everywhere: BUY 1 share
   when the last price crosses 100.00 upwards, SELL 1 when it crosses it downwards.
   Anchor: bare ``ib_async`` (a ``pendingTickersEvent`` handler that calls
   ``placeOrder``). Subjects: the bot's path — broker actor -> quote -> strategy actor ->
   ``ctx.signal`` (durable SIGNAL event) -> ``ctx.buy``/``sell`` -> ``place_order`` ->
   pre-trade risk checks -> durable ORDER event -> gateway — once with the real event
   logger on SQLite (the product) and once with the durable events acknowledged in
   memory (the path's own cost). Rounds of the three are interleaved; each client sends
   at most one order per ``PACE_S``. Goal: product p50 / bare p50 <= 1.5, p99 < 20 ms.
2. Fan-out: N symbols (default 100) ticking 4 times a second, every quote handed to 5
   strategies (each watches all N symbols and runs a mean-reversion rule that rarely
   trades) for ``--seconds`` (60; ``--quick`` 15): the strategies' mailbox depth sampled
   every 37 ms (max, p99, growth), quote lag (received at the client -> ``on_quote``), ticks
   and quotes delivered vs offered, and the process CPU (psutil, per thread group).
   Anchor: bare ``ib_async`` on the same stream running the same 5 rules in its
   ``pendingTickersEvent`` handler, for the same time.

Run: ``.venv/bin/python benchmarks/bench_strategies.py [--quick] [--json PATH]
[--rounds N] [--batch N] [--symbols N] [--seconds S] [--skip-latency] [--skip-fanout]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import psutil
from ib_async import IB, MarketOrder, Stock

from bench_broker import WIDE_LIMITS, AckSink
from benchlib import fmt_met, machine, percentile, rotated
from tradingbot.broker import (
    BrokerActor,
    BrokerSettings,
    BrokerStatus,
    ConnectionState,
    LoopThread,
    MarketData,
    RiskBook,
)
from tradingbot.events.event_logger import EventLoggerActor, EventLoggerSettings
from tradingbot.events.hub import EventHub
from tradingbot.events.recorder import EventRecorder
from tradingbot.events.spool import EventSpool
from tradingbot.gateway import messages as msg
from tradingbot.gateway.protocol import encode_fields
from tradingbot.gateway.session import Session
from tradingbot.gateway.standalone import build_simulator
from tradingbot.logconfig import configure_logging
from tradingbot.storage import Database
from tradingbot.strategies.actor import StrategyServices
from tradingbot.strategies.host import StrategyHost
from tradingbot.strategies.loader import LoadedStrategy
from tradingbot.supervision import SupervisionTree, supervisor, worker

LAT = "LAT"
THRESHOLD = 100.0
ABOVE, BELOW = 100.05, 99.95
PACE_S = 0.05  # between two orders of one client (ib_async paces at 45 requests/s)
GOAL_RATIO = 1.5
GOAL_P99_MS = 20.0
FAN_TICK_S = 0.25  # 4 tick rounds per second
FAN_STRATEGIES = 5
SAMPLE_S = 0.037  # mailbox sampling; not a divisor of the tick period (no aliasing)


# -- the simulator process ------------------------------------------------------------


def serve_gateway(seed_path: str, tick_interval_s: float) -> None:
    """The child process: a simulator plus a control socket (``cross SYMBOL PRICE ID``)."""
    sim = build_simulator(seed_file=Path(seed_path), tick_interval_s=tick_interval_s)
    sessions: dict[int, Any] = {}
    waiting: dict[int, asyncio.Future[float]] = {}
    register = sim.register

    def register_by_id(session: Any) -> None:
        register(session)
        sessions[session.client_id] = session

    sim.register = register_by_id  # type: ignore[method-assign]
    place = Session._handlers[3]  # placeOrder

    def timed_place(session: Any, fields: list[str]) -> None:
        arrived = time.perf_counter()
        place(session, fields)
        future = waiting.pop(session.client_id, None)
        if future is not None and not future.done():
            future.set_result(arrived)

    Session._handlers = {**Session._handlers, 3: timed_place}

    async def cross(symbol: str, price: float, client_id: int) -> str:
        session = sessions.get(client_id)
        if session is None or session.closed:
            return f"error no session of client {client_id}"
        sim.brokerage.prices.set_price(symbol, price)
        quote = sim.brokerage.prices.quote(symbol)
        req_ids = [r for r, s in session.market_data.items() if s == symbol]
        if not req_ids:
            return f"error client {client_id} does not stream {symbol}"
        frames = b"".join(encode_fields(t) for t in msg.tick_messages(req_ids[0], quote))
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        waiting[client_id] = future
        sent = time.perf_counter()
        session.writer.write(frames)
        try:
            arrived = await asyncio.wait_for(future, 10.0)
        except TimeoutError:
            waiting.pop(client_id, None)
            return "error no order within 10 s"
        return f"ok {sent!r} {arrived!r}"

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            words = line.decode().split()
            try:
                reply = await cross(words[1], float(words[2]), int(words[3]))
            except (IndexError, ValueError) as exc:
                reply = f"error {exc}"
            writer.write(reply.encode() + b"\n")
            await writer.drain()

    async def main() -> None:
        port = await sim.start("127.0.0.1", 0)
        server = await asyncio.start_server(control, "127.0.0.1", 0)
        control_port = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{port} control {control_port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class Gateway:
    """The simulator process and its control connection."""

    def __init__(self, symbols: dict[str, float], tick_interval_s: float) -> None:
        seed = {"symbols": {name: {"price": price} for name, price in symbols.items()}}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as seed_file:
            json.dump(seed, seed_file)
        self._seed = Path(seed_file.name)
        command = [sys.executable, __file__, "--serve-gateway", seed_file.name]
        self.proc = subprocess.Popen(
            [*command, str(tick_interval_s)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"listening on [^\s:]+:(\d+) control (\d+)", line)
        if found is None:
            self.close()
            raise RuntimeError(f"the gateway did not report its ports: {line!r}")
        self.port = int(found.group(1))
        self._control = socket.create_connection(("127.0.0.1", int(found.group(2))))
        self._lines = self._control.makefile("r")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cross(self, symbol: str, price: float, client_id: int) -> tuple[float, float]:
        """Send the crossing tick to ``client_id``; (tick sent, order arrived), monotonic."""
        self._control.sendall(f"cross {symbol} {price} {client_id}\n".encode())
        reply = self._lines.readline().split()
        if not reply or reply[0] != "ok":
            raise RuntimeError(f"cross {symbol} for client {client_id}: {' '.join(reply)}")
        return float(reply[1]), float(reply[2])

    def close(self) -> None:
        if hasattr(self, "_control"):
            self._control.close()
        self.proc.terminate()
        self.proc.wait(10)
        self._seed.unlink(missing_ok=True)


@contextmanager
def gateway(symbols: dict[str, float], tick_interval_s: float) -> Iterator[Gateway]:
    gw = Gateway(symbols, tick_interval_s)
    try:
        yield gw
    finally:
        gw.close()


# -- the decisions ----------------------------------------------------------------------


def crossing(previous: float | None, last: float | None) -> str | None:
    """BUY when ``last`` crosses the threshold upwards, SELL when downwards."""
    if previous is None or last is None:
        return None
    if previous < THRESHOLD <= last:
        return "BUY"
    if previous >= THRESHOLD > last:
        return "SELL"
    return None


class MeanReversion:
    """Per symbol: BUY 1 when the last price is ``band`` below its 20-tick mean and flat,
    SELL 1 when ``band`` above it and long. Rare on the simulator's random walk."""

    def __init__(self, band: float) -> None:
        self.band = band
        self.window: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=20))
        self.sums: dict[str, float] = defaultdict(float)
        self.held: dict[str, int] = defaultdict(int)

    def decide(self, symbol: str, last: float | None) -> tuple[str, float] | None:
        if last is None:
            return None
        window = self.window[symbol]
        if len(window) == window.maxlen:
            self.sums[symbol] -= window[0]
        window.append(last)
        self.sums[symbol] += last
        if len(window) < 20:
            return None
        mean = self.sums[symbol] / len(window)
        if self.held[symbol] == 0 and last < mean * (1 - self.band):
            self.held[symbol] = 1
            return "BUY", mean
        if self.held[symbol] > 0 and last > mean * (1 + self.band):
            self.held[symbol] = 0
            return "SELL", mean
        return None


# -- the bot's strategies (shared state by strategy id: read by the benchmark thread) ----


class CrossStrategy:
    """The latency rule as a bot strategy; records its stage times."""

    strategy_id: ClassVar[str] = "cross"
    params: ClassVar[dict[str, Any]] = {}
    bar_seconds: ClassVar[int] = 0
    warmup_bars: ClassVar[int] = 0
    stages: ClassVar[dict[str, list[tuple[float, float, float, float]]]] = defaultdict(list)

    def __init__(self) -> None:
        self.previous: float | None = None

    def on_start(self, ctx: Any) -> None:
        quote = ctx.quote(LAT)
        self.previous = None if quote is None else quote.last

    def on_quote(self, ctx: Any, quote: Any) -> None:
        entered = time.monotonic()
        side = crossing(self.previous, quote.last)
        self.previous = quote.last
        if side is None:
            return
        signal = ctx.signal(LAT, side, 1.0, "crossed 100.00", {"last": quote.last})
        signalled = time.monotonic()
        if side == "BUY":
            ctx.buy(LAT, 1, signal=signal)
        else:
            ctx.sell(LAT, 1, signal=signal)
        placed = time.monotonic()
        CrossStrategy.stages[ctx.strategy_id].append(
            (quote.received_at, entered, signalled, placed)
        )

    def on_bar(self, ctx: Any, bar: Any) -> None:
        """No bars."""

    def on_fill(self, ctx: Any, fill: Any) -> None:
        """Fills ignored."""

    def on_order_status(self, ctx: Any, order: Any) -> None:
        """Statuses ignored."""

    def on_timer(self, ctx: Any, now: Any) -> None:
        """No timers."""

    def on_stop(self, ctx: Any) -> None:
        """Nothing to release."""


class FanStrategy(CrossStrategy):
    """The fan-out rule as a bot strategy; counts quotes, ticks and the quote lag."""

    params: ClassVar[dict[str, Any]] = {"band": 0.002}
    lags: ClassVar[dict[str, list[float]]] = defaultdict(list)
    counts: ClassVar[dict[str, list[int]]] = defaultdict(lambda: [0, 0, 0])  # quotes, ticks, orders

    def on_start(self, ctx: Any) -> None:
        self.rule = MeanReversion(float(ctx.params["band"]))

    def on_quote(self, ctx: Any, quote: Any) -> None:
        sid = ctx.strategy_id
        FanStrategy.lags[sid].append(time.monotonic() - quote.received_at)
        counts = FanStrategy.counts[sid]
        counts[0] += 1
        counts[1] += quote.ticks
        decided = self.rule.decide(quote.symbol, quote.last)
        if decided is None:
            return
        side, mean = decided
        inputs = {"last": quote.last, "mean": round(mean, 4)}
        signal = ctx.signal(quote.symbol, side, 1.0, "mean reversion", inputs)
        (ctx.buy if side == "BUY" else ctx.sell)(quote.symbol, 1, signal=signal)
        counts[2] += 1


# -- the clients ------------------------------------------------------------------------


class Bot:
    """Event logger (SQLite) or in-memory acks, broker actor with risk limits, strategies."""

    def __init__(
        self,
        port: int,
        client_id: int,
        workdir: Path,
        *,
        durable: bool,
        strategies: list[tuple[str, type[Any], tuple[str, ...]]],
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.status, self.market = BrokerStatus(), MarketData()
        database = self.database = Database.open(f"sqlite:///{workdir / 'bench.db'}")
        database.upgrade()
        hub = EventHub()
        settings = BrokerSettings(port=port, client_id=client_id, probe_interval_s=5.0)
        book = RiskBook(WIDE_LIMITS)
        children = []
        if durable:
            spool = EventSpool(workdir / "spool")
            children.append(
                worker(
                    "event_logger",
                    lambda: EventLoggerActor(database, spool, hub, EventLoggerSettings()),
                )
            )
        children.append(
            worker(
                "broker",
                lambda: BrokerActor(settings, self.status, self.recorder, self.market, risk=book),
            )
        )
        loaded = [
            LoadedStrategy(
                id=sid,
                ref=f"bench_strategies:{cls.__name__}",
                cls=cls,
                params=MappingProxyType(dict(cls.params)),
                watchlist=watchlist,
            )
            for sid, cls, watchlist in strategies
        ]
        services = StrategyServices(
            broker=lambda: self.tree.handle("broker"),
            status=self.status,
            market=self.market,
            recorder=lambda: self.recorder,
            database=database,
            start_gate=lambda: None,
            request_timeout_s=15.0,
            warned=set(),
        )
        host = StrategyHost(loaded, services, max_restarts=3, period_s=60.0)
        spec = host.spec()
        assert spec is not None
        children.append(spec)
        self.tree = SupervisionTree(supervisor("root", children, intensity=10), listeners=())
        sink: Any = self.tree.handle("event_logger") if durable else AckSink()
        self.recorder = EventRecorder(sink)
        self._listener = host.attach(self.tree, hub)
        self.actor_ids = [s.actor_id for s in loaded]
        self.tree.start()
        deadline = time.monotonic() + 30
        while self.status.view().state != ConnectionState.SYNCED or not all(
            self.details(a).get("state") == "running" for a in self.actor_ids
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the bot's strategies did not start")
            time.sleep(0.02)

    def details(self, actor_id: str) -> dict[str, Any]:
        return dict(self.tree.handle(actor_id).snapshot().details)

    def mailbox(self, actor_id: str) -> int:
        return self.tree.handle(actor_id).snapshot().mailbox

    def stop(self) -> None:
        self._listener.close()
        self.tree.stop()
        self.database.dispose()


class Bare:
    """Bare ib_async on its own loop thread, deciding in its ``pendingTickersEvent``."""

    def __init__(self, port: int, client_id: int) -> None:
        self.loop = LoopThread("bench-bare")
        self.loop.start()
        self.ib = IB()
        self.loop.run(self.ib.connectAsync("127.0.0.1", port, clientId=client_id), 15)
        self.entered: list[float] = []

    def subscribe(self, symbols: list[str], on_tickers: Any) -> dict[str, Any]:
        contracts: dict[str, Any] = {}

        async def go() -> None:
            self.ib.pendingTickersEvent += on_tickers
            for name in symbols:
                contract = Stock(name, "SMART", "USD")
                await self.ib.qualifyContractsAsync(contract)
                contracts[name] = contract
                self.ib.reqMktData(contract)

        self.loop.run(go(), 60)
        return contracts

    def stop(self) -> None:
        self.loop.stop(before=self.ib.disconnect)


class BareCross(Bare):
    """The latency anchor: the crossing rule on ``LAT``, straight to ``placeOrder``."""

    def __init__(self, port: int, client_id: int) -> None:
        super().__init__(port, client_id)
        self.previous: float | None = None
        self.contract = self.subscribe([LAT], self.on_tickers)[LAT]

    def on_tickers(self, tickers: set[Any]) -> None:
        for ticker in tickers:
            entered = time.monotonic()
            last = ticker.last if ticker.last == ticker.last else None  # NaN: none yet
            side = crossing(self.previous, last)
            self.previous = last
            if side is not None:
                self.ib.placeOrder(self.contract, MarketOrder(side, 1))
                self.entered.append(entered)


# -- 1. latency -----------------------------------------------------------------------


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 0.5) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
    }


def bench_latency(rounds: int, batch: int) -> dict[str, Any]:
    """Tick sent -> order at the simulator, bare vs the bot (SQLite, in memory)."""
    with gateway({LAT: BELOW}, 3600.0) as gw, tempfile.TemporaryDirectory() as tmp:
        bare = BareCross(gw.port, 61)
        product = Bot(
            gw.port,
            62,
            Path(tmp) / "db",
            durable=True,
            strategies=[("cross_db", CrossStrategy, (LAT,))],
        )
        memory = Bot(
            gw.port,
            63,
            Path(tmp) / "mem",
            durable=False,
            strategies=[("cross_mem", CrossStrategy, (LAT,))],
        )
        subjects = [
            ("bare ib_async", 61, None),
            ("bot, events on SQLite (product)", 62, "cross_db"),
            ("bot, events acked in memory", 63, "cross_mem"),
        ]
        below = dict.fromkeys((61, 62, 63), True)
        samples: dict[str, list[float]] = defaultdict(list)
        split: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

        def once(name: str, client_id: int, sid: str | None, keep: bool) -> None:
            price = ABOVE if below[client_id] else BELOW
            below[client_id] = not below[client_id]
            done = len(bare.entered) if sid is None else len(CrossStrategy.stages[sid])
            sent, arrived = gw.cross(LAT, price, client_id)
            deadline = time.monotonic() + 10
            records: list[Any] = bare.entered if sid is None else CrossStrategy.stages[sid]
            while len(records) <= done:  # the strategy's own times, written after the send
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: no decision recorded")
                time.sleep(0.001)
            if not keep:
                return
            samples[name].append(arrived - sent)
            parts = split[name]
            if sid is None:
                parts["tick -> handler"].append(bare.entered[-1] - sent)
                parts["handler -> order at gateway"].append(arrived - bare.entered[-1])
                return
            received, entered, signalled, _placed = CrossStrategy.stages[sid][-1]
            parts["tick -> quote at client"].append(received - sent)
            parts["quote -> on_quote (broker + strategy actors)"].append(entered - received)
            parts["on_quote -> SIGNAL durable"].append(signalled - entered)
            parts["SIGNAL -> order at gateway (risk, ORDER event)"].append(arrived - signalled)

        try:
            for round_ in range(rounds + 1):  # round 0 warms up (first orders)
                for name, client_id, sid in rotated(subjects, round_):
                    for _ in range(batch if round_ else 5):
                        paced = time.perf_counter() + PACE_S
                        once(name, client_id, sid, keep=round_ > 0)
                        time.sleep(max(0.0, paced - time.perf_counter()))
        finally:
            memory.stop()
            product.stop()
            bare.stop()
    result: dict[str, Any] = {}
    anchor = percentile(sorted(samples["bare ib_async"]), 0.5)
    for name, values in samples.items():
        row: dict[str, Any] = stats(values)
        row["ratio"] = round(percentile(sorted(values), 0.5) / anchor, 2)
        row["goal_met"] = (
            None
            if name == "bare ib_async"
            else row["ratio"] <= GOAL_RATIO and row["p99_ms"] < GOAL_P99_MS
        )
        row["split"] = {part: stats(v) for part, v in split[name].items()}
        result[name] = row
    return result


# -- 2. fan-out -----------------------------------------------------------------------


def thread_cpu(proc: psutil.Process) -> dict[str, float]:
    """CPU seconds so far by thread group (the thread's name without its number)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    groups: dict[str, float] = defaultdict(float)
    for t in proc.threads():
        name = re.sub(r"[-_]?\d+$", "", names.get(t.id, "other")) or "other"
        groups[name] += t.user_time + t.system_time
    return groups


class Window:
    """Process CPU (and per thread group) over a measuring window."""

    def __init__(self, gateway_pid: int) -> None:
        self.proc = psutil.Process()
        self.gw = psutil.Process(gateway_pid)
        self.started = time.monotonic()
        self.cpu0 = sum(self.proc.cpu_times()[:2])
        self.gw0 = sum(self.gw.cpu_times()[:2])
        self.threads0 = thread_cpu(self.proc)
        self.load0 = os.getloadavg()[0]

    def close(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        used = sum(self.proc.cpu_times()[:2]) - self.cpu0
        gw_used = sum(self.gw.cpu_times()[:2]) - self.gw0
        threads = thread_cpu(self.proc)
        by_thread = {
            name: round(100 * (spent - self.threads0.get(name, 0.0)) / wall, 1)
            for name, spent in threads.items()
        }
        return {
            "seconds": round(wall, 1),
            "cpu_pct_of_one_core": round(100 * used / wall, 1),
            "cpu_pct_of_machine": round(100 * used / wall / (os.cpu_count() or 1), 1),
            "gateway_cpu_pct_of_one_core": round(100 * gw_used / wall, 1),
            "by_thread_pct_of_one_core": {k: v for k, v in sorted(by_thread.items()) if v >= 0.1},
            "loadavg": [round(self.load0, 2), round(os.getloadavg()[0], 2)],
        }


def growth(series: list[int]) -> float:
    """Mean of the last quarter minus mean of the first quarter of ``series``."""
    quarter = max(1, len(series) // 4)
    return round(sum(series[-quarter:]) / quarter - sum(series[:quarter]) / quarter, 2)


def bench_fanout(symbols: int, seconds: float) -> dict[str, Any]:
    """N symbols x 4 ticks/s to 5 strategies: mailboxes, lag, delivery, CPU."""
    names = [f"F{i:03d}" for i in range(symbols)]
    offered = 4 * symbols / FAN_TICK_S  # bid, ask, last and volume per symbol per round
    band = float(FanStrategy.params["band"])
    with gateway({n: 50.0 + i for i, n in enumerate(names)}, FAN_TICK_S) as gw:
        # Anchor: bare ib_async running the same five rules.
        bare = Bare(gw.port, 71)
        rules = [MeanReversion(band) for _ in range(FAN_STRATEGIES)]
        bare_counts = [0, 0, 0]
        contracts: dict[str, Any] = {}

        def on_tickers(tickers: set[Any]) -> None:
            for ticker in tickers:
                last = ticker.last if ticker.last == ticker.last else None
                symbol = ticker.contract.symbol
                bare_counts[0] += 1
                bare_counts[1] += len(ticker.ticks)
                for rule in rules:
                    decided = rule.decide(symbol, last)
                    if decided is not None:
                        bare.ib.placeOrder(contracts[symbol], MarketOrder(decided[0], 1))
                        bare_counts[2] += 1

        try:
            contracts.update(bare.subscribe(names, on_tickers))
            time.sleep(1.0)  # every stream running
            start = list(bare_counts)
            window = Window(gw.pid)
            time.sleep(seconds)
            bare_cpu = window.close()
            bare_row = {
                "quotes_per_s": round((bare_counts[0] - start[0]) / bare_cpu["seconds"]),
                "ticks_per_s": round((bare_counts[1] - start[1]) / bare_cpu["seconds"]),
                "orders": bare_counts[2] - start[2],
                **bare_cpu,
            }
        finally:
            bare.stop()

        with tempfile.TemporaryDirectory() as tmp:
            ids = [f"fan{i}" for i in range(FAN_STRATEGIES)]
            bot = Bot(
                gw.port,
                72,
                Path(tmp),
                durable=True,
                strategies=[(sid, FanStrategy, tuple(names)) for sid in ids],
            )
            try:
                time.sleep(1.0)
                start_counts = {sid: list(FanStrategy.counts[sid]) for sid in ids}
                lag_from = {sid: len(FanStrategy.lags[sid]) for sid in ids}
                series: dict[str, list[int]] = {a: [] for a in [*bot.actor_ids, "broker"]}
                window = Window(gw.pid)
                deadline = time.monotonic() + seconds
                next_sample = time.monotonic()
                while time.monotonic() < deadline:
                    for actor_id in series:
                        series[actor_id].append(bot.mailbox(actor_id))
                    next_sample += SAMPLE_S
                    time.sleep(max(0.0, next_sample - time.monotonic()))
                bot_cpu = window.close()
            finally:
                bot.stop()
    wall = bot_cpu["seconds"]
    per_strategy = {}
    for sid, actor_id in zip(ids, bot.actor_ids, strict=True):
        quotes, ticks, orders = (
            a - b for a, b in zip(FanStrategy.counts[sid], start_counts[sid], strict=True)
        )
        lags = FanStrategy.lags[sid][lag_from[sid] :]
        per_strategy[sid] = {
            "quotes_per_s": round(quotes / wall),
            "ticks_per_s": round(ticks / wall),
            "orders": orders,
            "lag": stats(lags) if lags else None,
            "mailbox_max": max(series[actor_id]),
            "mailbox_p99": percentile(sorted(series[actor_id]), 0.99),
            "mailbox_mean": round(sum(series[actor_id]) / len(series[actor_id]), 2),
            "mailbox_growth": growth(series[actor_id]),
        }
    return {
        "symbols": symbols,
        "strategies": FAN_STRATEGIES,
        "offered_ticks_per_s": round(offered),
        "bare": bare_row,
        "bot": {
            "strategies": per_strategy,
            "broker_mailbox_max": max(series["broker"]),
            "broker_mailbox_growth": growth(series["broker"]),
            "samples": len(series["broker"]),
            **bot_cpu,
        },
    }


def print_fanout(fan: dict[str, Any]) -> None:
    bare, bot = fan["bare"], fan["bot"]
    print(
        f"{'client':10} {'quotes/s':>9} {'ticks/s':>8} {'orders':>6} {'lag p50/p99 ms':>15}"
        f" {'mailbox max/p99/growth':>23}"
    )
    print(f"{'bare':10} {bare['quotes_per_s']:9d} {bare['ticks_per_s']:8d} {bare['orders']:6d}")
    for sid, row in bot["strategies"].items():
        lag = row["lag"] or {"p50_ms": 0.0, "p99_ms": 0.0}
        print(
            f"{sid:10} {row['quotes_per_s']:9d} {row['ticks_per_s']:8d} {row['orders']:6d}"
            f" {lag['p50_ms']:7.2f}/{lag['p99_ms']:<7.2f}"
            f" {row['mailbox_max']:>9d}/{row['mailbox_p99']}/{row['mailbox_growth']}"
        )
    print(f"broker mailbox max {bot['broker_mailbox_max']}, growth {bot['broker_mailbox_growth']}")
    for name, row in (("bare", bare), ("bot", bot)):
        print(
            f"{name}: CPU {row['cpu_pct_of_one_core']} % of one core"
            f" ({row['cpu_pct_of_machine']} % of the machine), gateway process"
            f" {row['gateway_cpu_pct_of_one_core']} %, load {row['loadavg']};"
            f" by thread {row['by_thread_pct_of_one_core']}"
        )


# -- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, a 15 s fan-out")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--rounds", type=int, default=20, help="latency rounds per subject")
    parser.add_argument("--batch", type=int, default=25, help="orders per subject per round")
    parser.add_argument("--symbols", type=int, default=100, help="fan-out symbols")
    parser.add_argument("--seconds", type=float, default=60.0, help="fan-out window")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-fanout", action="store_true")
    args = parser.parse_args(argv)
    rounds, seconds = (4, 15.0) if args.quick else (args.rounds, args.seconds)
    batch = 10 if args.quick else args.batch

    # The product's logging chain (JSON lines to a file), as in production.
    log_dir = Path(tempfile.mkdtemp(prefix="bench-strategies-logs-"))
    configure_logging(level="INFO", log_dir=log_dir, stream=open(os.devnull, "w"))  # noqa: SIM115
    info = machine("ib_async", "pykka", "psutil")
    print(json.dumps(info), flush=True)
    results: dict[str, Any] = {"machine": info}

    if not args.skip_latency:
        latency = results["latency"] = bench_latency(rounds, batch)
        print(f"\nTick sent -> order at the simulator ({rounds} rounds x {batch} per subject)")
        print(f"{'subject':34} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'goal':>5}")
        for name, row in latency.items():
            print(
                f"{name:34} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} {row['ratio']:6.2f}"
                f" {fmt_met(row['goal_met']):>5}"
            )
            for part, part_row in row["split"].items():
                print(f"    {part:48} {part_row['p50_ms']:8.3f} {part_row['p99_ms']:8.3f}")

    if not args.skip_fanout:
        fan = results["fanout"] = bench_fanout(args.symbols, seconds)
        print(
            f"\nFan-out: {fan['symbols']} symbols x 4 ticks/s -> {fan['strategies']} strategies,"
            f" {seconds:g} s; {fan['offered_ticks_per_s']} price ticks/s offered"
        )
        print_fanout(fan)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps({"loadavg_end": results["machine"]["loadavg_end"]}))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-gateway":
        serve_gateway(sys.argv[2], float(sys.argv[3]))
        raise SystemExit(0)
    raise SystemExit(main())
