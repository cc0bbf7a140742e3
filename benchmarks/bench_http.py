"""HTTP and health: the real ``trading-bot run`` process against a bare aiohttp process.

The subject is the product as an operator runs it: ``trading-bot run`` started as a
subprocess with ``TRADINGBOT_HOME`` in a temp dir (SQLite there), ``TRADINGBOT_HTTP_PORT``
on a free loopback port and no ``TRADINGBOT_API_TOKEN`` (endpoints open), INFO logging to
its own files. The anchor is a bare aiohttp process (one handler per path, returning the
same JSON document, encoded by ``orjson`` per request, with the same headers), started the
same way (``web.AppRunner(access_log=None)`` + ``TCPSite``, default asyncio loop) on
another port. Load comes from separate processes (this script re-run with ``--role``):
a lean HTTP/1.1 keep-alive client on raw asyncio transports (wrk-like, so that on two
cores the generator costs far less CPU than the server it measures).

1. Throughput: closed loop, ``--conns`` keep-alive connections (default 16) per server
   each sending ``GET /api/health/live`` back to back; one load process alternates
   between product and anchor in short slices (ABBA order, so each adjacent pair shares
   the machine's background load); requests/s median over slices; ratio = median over
   pairs of product/bare requests/s. Also the servers' CPU time per request (psutil),
   which is less sensitive to the background load. Goal: ratio >= 0.6.
2. Latency: open loop, ``GET /api/health`` at 100 and 1,000 requests/s, each request
   scheduled at its intended time and measured from that time (no coordinated omission),
   while 10 WebSocket clients tail ``/api/events/stream`` and operator notes (the control
   socket's ``note`` command, as ``trading-bot shell -c 'note ...'`` sends it) are recorded
   at ``--note-rate`` per second; every client must receive every acknowledged note. The
   anchor (bare handler, same body) runs at the same rates in the same conditions,
   interleaved. Goal: product p99 < 10 ms.

Run: ``.venv/bin/python benchmarks/bench_http.py [--quick] [--json PATH] [--conns N]
[--load-procs N] [--note-rate R]``. Latencies in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from benchlib import fmt_met, machine, percentile

THROUGHPUT_GOAL_RATIO = 0.6
LATENCY_GOAL_P99_MS = 10.0
HOST = "127.0.0.1"
LIVE = "/api/health/live"
HEALTH = "/api/health"
STREAM = "/api/events/stream"
READY_TIMEOUT_S = 60.0
WORKER_TIMEOUT_S = 300.0
PASSING = (b'{"status":"pass"', b'{"status":"warn"')
# glibc malloc settings for this script's own processes (load generators, bare anchor,
# event tail), never for the product. asyncio's socket transports read with
# ``sock.recv(256 KiB)``: a 256 KiB allocation shrunk to the bytes received. Depending on
# where that block lands, glibc trims the heap top after each read and the next read
# faults the pages back in (measured: +15-20 us of kernel time per request on this VM,
# at random, per process). Fixed thresholds keep such a process in its fast mode, so the
# anchor is always its best self and the load generator stays cheap.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "16777216"}

# -- statistics ---------------------------------------------------------------------------


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    s = sorted(samples_s)
    if not s:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan}
    return {
        "p50": round(percentile(s, 0.50) * 1e3, 3),
        "p99": round(percentile(s, 0.99) * 1e3, 3),
        "max": round(s[-1] * 1e3, 3),
    }


# -- a lean HTTP/1.1 keep-alive client ----------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection sending one fixed GET at a time (no pipelining).

    Either ``await connection.get()``, or set ``on_response`` and call ``send()``: the
    callback then runs straight from ``data_received`` (no future, no task switch),
    which is what keeps the closed-loop generator far cheaper than the server.
    """

    def __init__(self, request: bytes) -> None:
        self._request = request
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None
        self.on_response: Callable[[HttpConnection, int, bytes], None] | None = None
        self.sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise ConnectionError("response without Content-Length")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else None])
        total = end + 4 + length
        if len(buffer) < total:
            return
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        if self.on_response is not None:
            self.on_response(self, int(head[9:12]), body)
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((int(head[9:12]), body))

    def get(self) -> asyncio.Future[tuple[int, bytes]]:
        assert self._transport is not None
        assert self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(self._request)
        return self._waiter

    def send(self) -> None:
        assert self._transport is not None
        self.sent = time.perf_counter()
        self._transport.write(self._request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_connections(port: int, path: str, n: int) -> list[HttpConnection]:
    loop = asyncio.get_running_loop()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: bench_http\r\n"
        "Accept: */*\r\n\r\n"
    ).encode()
    connections = []
    for _ in range(n):
        _transport, protocol = await loop.create_connection(
            lambda: HttpConnection(request), HOST, port
        )
        connections.append(protocol)
    return connections


def check_response(status: int, body: bytes) -> bool:
    return status == 200 and body.startswith(PASSING)


async def wait_until(wall_time: float) -> float:
    """Sleep until ``wall_time`` (time.time()); return the loop time at that moment."""
    loop = asyncio.get_running_loop()
    delay = wall_time - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    return loop.time()


async def closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Closed loop, alternating between targets in short slices (ABBA order).

    Each target gets ``conns`` connections, each sending its next request as soon as
    it has an answer, during its slices only. Slices of the two targets alternate
    ``A B B A A B ...`` so that each pair shares the machine's background load. Per
    slice: requests/s, latencies, this process's CPU and the target server's CPU.
    """
    import psutil

    loop = asyncio.get_running_loop()
    targets = spec["targets"]
    servers = {t["name"]: psutil.Process(t["pid"]) for t in targets}
    connections = {
        t["name"]: await open_connections(t["port"], spec["path"], spec["conns"]) for t in targets
    }

    def server_cpu(name: str) -> tuple[float, float]:
        times = servers[name].cpu_times()
        return float(times.user), float(times.system)

    async def run(name: str, duration_s: float) -> dict[str, Any]:
        latencies: list[float] = []
        errors = 0
        finished = loop.create_future()
        active = len(connections[name])
        start = time.perf_counter()
        stop = start + duration_s

        def on_response(connection: HttpConnection, status: int, body: bytes) -> None:
            nonlocal errors, active
            now = time.perf_counter()
            latencies.append(now - connection.sent)
            if status != 200 or not body.startswith(PASSING):
                errors += 1
            if now < stop:
                connection.send()
                return
            active -= 1
            if active == 0:
                finished.set_result(None)

        cpu = time.process_time()
        server = server_cpu(name)
        for connection in connections[name]:
            connection.on_response = on_response
            connection.send()
        await finished
        elapsed = time.perf_counter() - start
        user, system = (b - a for a, b in zip(server, server_cpu(name), strict=True))
        n = len(latencies)
        return {
            "target": name,
            "requests": len(latencies),
            "requests_per_s": len(latencies) / elapsed,
            "errors": errors,
            "latency_ms": summary_ms(latencies),
            "client_cpu": (time.process_time() - cpu) / elapsed,
            "server_cpu": (user + system) / elapsed,
            "server_cpu_us_per_request": (user + system) / n * 1e6,
            "server_user_us_per_request": user / n * 1e6,
            "server_system_us_per_request": system / n * 1e6,
        }

    for target in targets:  # warm-up, not recorded
        await run(target["name"], spec["warmup_s"])
    slices = []
    names = [t["name"] for t in targets]
    for pair in range(spec["pairs"]):
        for name in names if pair % 2 == 0 else names[::-1]:
            slices.append(await run(name, spec["slice_s"]))
    for name in names:
        for connection in connections[name]:
            connection.close()
    return {"slices": slices}


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Requests at fixed intended times; latency from the intended time (wrk2-style)."""
    loop = asyncio.get_running_loop()
    rate = spec["rate"]
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    connections = await open_connections(spec["port"], spec["path"], spec["conns"])
    for connection in connections:
        idle.put_nowait(connection)
    t0 = await wait_until(spec["start_at"]) + spec["offset_s"]
    measure_from = t0 + spec["warmup_s"]
    total = int((spec["warmup_s"] + spec["duration_s"]) * rate)
    latencies: list[float] = []
    lags: list[float] = []
    service: list[float] = []
    errors = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(intended: float) -> None:
        nonlocal errors
        connection = idle.get_nowait() if not idle.empty() else await idle.get()
        sent = loop.time()
        status, body = await connection.get()
        done = loop.time()
        idle.put_nowait(connection)
        if intended >= measure_from:
            latencies.append(done - intended)
            lags.append(sent - intended)
            service.append(done - sent)
            if not check_response(status, body):
                errors += 1

    cpu_start = None
    for i in range(total):
        intended = t0 + i / rate
        if cpu_start is None and intended >= measure_from:
            cpu_start = time.process_time()
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(intended))
        pending.add(task)
        task.add_done_callback(pending.discard)
    last_send = loop.time()
    if pending:
        await asyncio.wait(pending)
    cpu_end = time.process_time()
    for connection in connections:
        connection.close()
    span = max(1e-9, last_send - measure_from)
    return {
        "requests": len(latencies),
        "achieved_rate": (len(latencies) - 1) / span,  # n requests span n - 1 intervals
        "errors": errors,
        "latencies_s": latencies,
        "lags_s": lags,
        "service_s": service,
        "client_cpu": (cpu_end - (cpu_start or cpu_end)) / span,
    }


def role_load(spec: dict[str, Any]) -> None:
    if spec["mode"] == "closed":
        result = asyncio.run(closed_loop(spec))
    else:
        # select() takes a microsecond timeout where epoll rounds up to whole milliseconds:
        # with it, requests leave within about 0.1 ms of their intended time (few fds here).
        def loop_factory() -> asyncio.AbstractEventLoop:
            return asyncio.SelectorEventLoop(selectors.SelectSelector())

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(open_loop(spec))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


# -- the bare aiohttp server --------------------------------------------------------------


def role_bare(spec: dict[str, Any]) -> None:
    from aiohttp import web

    async def serve() -> None:
        app = web.Application()
        for path, document in spec["documents"].items():

            async def handler(_request: web.Request, document: Any = document) -> web.Response:
                return web.Response(
                    body=orjson.dumps(document),
                    content_type="application/health+json",
                    headers={"Cache-Control": "no-store"},
                )

            app.router.add_get(path, handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, spec["port"]).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


# -- the event tail: WebSocket clients and operator notes ---------------------------------


async def tail(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    from tradingbot.control.protocol import Request, Response

    loop = asyncio.get_running_loop()
    received: list[set[str]] = [set() for _ in range(spec["clients"])]
    messages = [0] * spec["clients"]
    delivery: list[float] = []
    acked: list[str] = []
    failures: list[str] = []

    session = aiohttp.ClientSession()
    url = f"http://{HOST}:{spec['port']}{STREAM}"
    sockets = [await session.ws_connect(url, autoping=True) for _ in range(spec["clients"])]

    async def receive(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.time()
            event = orjson.loads(message.data)
            messages[index] += 1
            received[index].add(event["id"])
            delivery.append(now - datetime.fromisoformat(event["timestamp"]).timestamp())

    receivers = [asyncio.create_task(receive(i, ws)) for i, ws in enumerate(sockets)]
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(spec["note_conns"]):
        idle.put_nowait(await asyncio.open_unix_connection(spec["control_socket"]))
    ids = iter(range(1, 1 << 62))

    async def note(n: int) -> None:
        reader, writer = await idle.get()
        try:
            request = Request(id=next(ids), command="note", args=(f"bench_http note {n}",))
            writer.write(request.encode())
            response = Response.decode(await reader.readline())
            if response.ok and response.result is not None:
                acked.append(response.result["id"])
            else:
                failures.append(str(response.error))
        finally:
            idle.put_nowait((reader, writer))

    stopping = asyncio.Event()

    async def notes() -> None:
        pending: set[asyncio.Task[None]] = set()
        start = loop.time()
        n = 0
        while not stopping.is_set():
            task = asyncio.create_task(note(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
            delay = start + n / spec["note_rate"] - loop.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(stopping.wait(), delay)
                except TimeoutError:
                    pass
        if pending:
            await asyncio.wait(pending)

    producer = asyncio.create_task(notes())
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the parent says stop
    stopping.set()
    await producer
    want = set(acked)
    deadline = loop.time() + 10.0
    while loop.time() < deadline and not all(want <= got for got in received):
        await asyncio.sleep(0.05)
    for ws in sockets:
        await ws.close()
    await asyncio.wait(receivers, timeout=5.0)
    await session.close()
    while not idle.empty():
        _reader, writer = idle.get_nowait()
        writer.close()
    return {
        "clients": spec["clients"],
        "notes_acked": len(acked),
        "note_failures": failures[:5],
        "note_failure_count": len(failures),
        "messages_per_client": messages,
        "missing_per_client": [len(want - got) for got in received],
        "delivery_ms": summary_ms(delivery),
    }


def role_tail(spec: dict[str, Any]) -> None:
    result = asyncio.run(tail(spec))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


# -- the parent: processes, phases, output ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def spawn_role(role: str, spec: dict[str, Any], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--spec", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | MALLOC_ENV,
        **kwargs,
    )


def wait_ready_line(process: subprocess.Popen[str], what: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "ready":
        process.kill()
        raise RuntimeError(f"{what} did not start (said {line!r}, exit {process.wait()})")


def http_get(port: int, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Product:
    """``trading-bot run`` in a subprocess, with its own home in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGBOT_")}
        env |= {
            "TRADINGBOT_HOME": str(self.home),
            "TRADINGBOT_HTTP_HOST": HOST,
            "TRADINGBOT_HTTP_PORT": str(self.port),
        }
        script = Path(sys.executable).with_name("trading-bot")
        command = [str(script), "run"]
        if not script.exists():  # not run from the venv: the same entry point, by module
            command = [sys.executable, "-c", "import sys; from tradingbot.cli import main; "
                       "sys.exit(main())", "run"]  # fmt: skip
        self.output = tmp / "product.out"
        self._output = self.output.open("wb")
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=tmp,  # no ./.env is read
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        self.control_socket = self.home / "run" / "control.sock"
        try:
            self._wait_ready()
        except BaseException:
            self.process.kill()
            self.process.wait()
            self._output.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"trading-bot run exited {self.process.returncode}: {self._last_lines()}"
                )
            try:
                if http_get(self.port, LIVE)[0] == 200 and self.control_socket.exists():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"trading-bot run did not become ready: {self._last_lines()}")
            time.sleep(0.1)

    def _last_lines(self) -> str:
        self._output.flush()
        return " | ".join(self.output.read_text(errors="replace").splitlines()[-5:])

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        finally:
            self._output.close()
        return code


def cpu_s(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass(slots=True)
class Target:
    name: str
    port: int
    pid: int


def run_loads(
    target: Target, specs: list[dict[str, Any]], start_delay_s: float = 1.0
) -> tuple[list[dict[str, Any]], float]:
    """Run load processes together; return their results and the server's CPU seconds."""
    start_at = time.time() + start_delay_s
    processes = [
        spawn_role("load", spec | {"port": target.port, "start_at": start_at}) for spec in specs
    ]
    warmup = specs[0]["warmup_s"]
    # Server CPU over the measured window only (after the warm-up).
    time.sleep(max(0.0, start_at + warmup - time.time()))
    cpu_before = cpu_s(target.pid)
    time.sleep(max(0.0, start_at + warmup + specs[0]["duration_s"] - time.time()))
    cpu_after = cpu_s(target.pid)
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=WORKER_TIMEOUT_S)
        if process.returncode != 0:
            raise RuntimeError(f"load process exited {process.returncode}")
        results.append(orjson.loads(out.strip().splitlines()[-1]))
    return results, cpu_after - cpu_before


@dataclass(slots=True)
class ThroughputRow:
    subject: str
    anchor: str
    conns: int
    rounds: int
    duration_s: float
    anchor_requests_per_s: float
    requests_per_s: float
    ratio: float
    goal: str
    met: bool
    anchor_latency_ms: dict[str, float]
    latency_ms: dict[str, float]
    anchor_server_cpu_us_per_request: float
    server_cpu_us_per_request: float
    anchor_server_user_us_per_request: float
    server_user_us_per_request: float
    anchor_server_system_us_per_request: float
    server_system_us_per_request: float
    cpu_ratio: float
    anchor_server_cpu_share: float
    server_cpu_share: float
    client_cpu_max: float
    errors: int
    rounds_requests_per_s: list[float] = field(default_factory=list)
    anchor_rounds_requests_per_s: list[float] = field(default_factory=list)
    rounds_ratio: list[float] = field(default_factory=list)


def bench_throughput(
    product: Target, bare: Target, *, conns: int, pairs: int, slice_s: float, warmup_s: float
) -> ThroughputRow:
    spec = {
        "mode": "closed",
        "path": LIVE,
        "conns": conns,
        "targets": [{"name": t.name, "port": t.port, "pid": t.pid} for t in (product, bare)],
        "pairs": pairs,
        "slice_s": slice_s,
        "warmup_s": warmup_s,
    }
    print(
        f"  {pairs} pairs of {slice_s:g} s slices, {conns} connections"
        f" (about {2 * pairs * slice_s + 2 * warmup_s:.0f} s) ...",
        flush=True,
    )
    process = spawn_role("load", spec)
    out, _ = process.communicate(timeout=WORKER_TIMEOUT_S + 4 * pairs * slice_s)
    if process.returncode != 0:
        raise RuntimeError(f"load process exited {process.returncode}")
    slices = orjson.loads(out.strip().splitlines()[-1])["slices"]
    by: dict[str, list[dict[str, Any]]] = {product.name: [], bare.name: []}
    for piece in slices:
        by[piece["target"]].append(piece)
    rps = {name: [p["requests_per_s"] for p in pieces] for name, pieces in by.items()}
    ratios = [p / b for p, b in zip(rps[product.name], rps[bare.name], strict=True)]
    ratio = statistics.median(ratios)
    errors = sum(p["errors"] for p in slices)

    def median_of(name: str, key: str) -> float:
        return statistics.median(p[key] for p in by[name])

    def median_latency(name: str) -> dict[str, float]:
        return {
            key: round(statistics.median(p["latency_ms"][key] for p in by[name]), 3)
            for key in ("p50", "p99")
        }

    cpu_ratios = [
        b["server_cpu_us_per_request"] / p["server_cpu_us_per_request"]
        for p, b in zip(by[product.name], by[bare.name], strict=True)
    ]
    return ThroughputRow(
        subject=f"product `GET {LIVE}`",
        anchor="bare aiohttp handler, same JSON document",
        conns=conns,
        rounds=pairs,
        duration_s=slice_s,
        anchor_requests_per_s=round(statistics.median(rps[bare.name])),
        requests_per_s=round(statistics.median(rps[product.name])),
        ratio=round(ratio, 2),
        goal=f"ratio >= {THROUGHPUT_GOAL_RATIO}",
        met=ratio >= THROUGHPUT_GOAL_RATIO and errors == 0,
        anchor_latency_ms=median_latency(bare.name),
        latency_ms=median_latency(product.name),
        anchor_server_cpu_us_per_request=round(
            median_of(bare.name, "server_cpu_us_per_request"), 1
        ),
        server_cpu_us_per_request=round(median_of(product.name, "server_cpu_us_per_request"), 1),
        anchor_server_user_us_per_request=round(
            median_of(bare.name, "server_user_us_per_request"), 1
        ),
        server_user_us_per_request=round(median_of(product.name, "server_user_us_per_request"), 1),
        anchor_server_system_us_per_request=round(
            median_of(bare.name, "server_system_us_per_request"), 1
        ),
        server_system_us_per_request=round(
            median_of(product.name, "server_system_us_per_request"), 1
        ),
        cpu_ratio=round(statistics.median(cpu_ratios), 2),
        anchor_server_cpu_share=round(median_of(bare.name, "server_cpu"), 2),
        server_cpu_share=round(median_of(product.name, "server_cpu"), 2),
        client_cpu_max=round(max(p["client_cpu"] for p in slices), 2),
        errors=errors,
        rounds_requests_per_s=[round(x) for x in rps[product.name]],
        anchor_rounds_requests_per_s=[round(x) for x in rps[bare.name]],
        rounds_ratio=[round(x, 3) for x in ratios],
    )


@dataclass(slots=True)
class LatencyRow:
    target: str
    path: str
    rate: int
    load_procs: int
    n: int
    achieved_rate: float
    errors: int
    p50: float
    p99: float
    max: float
    sender_lag_p50: float
    sender_lag_p99: float
    service_p50: float
    service_p99: float
    server_cpu: float
    client_cpu_max: float
    ratio: float | None
    goal: str
    met: bool | None


def bench_latency(
    product: Target,
    bare: Target,
    *,
    rates: list[int],
    rounds: int,
    duration_s: float,
    warmup_s: float,
    load_procs: int,
    conns: int,
) -> list[LatencyRow]:
    rows: list[LatencyRow] = []
    for rate in rates:
        samples: dict[str, list[float]] = {product.name: [], bare.name: []}
        lags: dict[str, list[float]] = {product.name: [], bare.name: []}
        service: dict[str, list[float]] = {product.name: [], bare.name: []}
        stats: dict[str, dict[str, list[float]]] = {
            product.name: {"achieved": [], "cpu": [], "client": [], "errors": []},
            bare.name: {"achieved": [], "cpu": [], "client": [], "errors": []},
        }
        procs = max(1, load_procs)
        for round_no in range(rounds):
            order = (product, bare) if round_no % 2 == 0 else (bare, product)
            for target in order:
                print(
                    f"  latency {rate} req/s round {round_no + 1}/{rounds}: {target.name} ...",
                    flush=True,
                )
                specs = [
                    {
                        "mode": "open",
                        "path": HEALTH,
                        "rate": rate / procs,
                        "offset_s": k / rate,  # the processes' schedules interleave
                        "conns": max(4, conns // procs),
                        "warmup_s": warmup_s,
                        "duration_s": duration_s,
                    }
                    for k in range(procs)
                ]
                results, server_cpu = run_loads(target, specs)
                st = stats[target.name]
                for result in results:
                    samples[target.name] += result["latencies_s"]
                    lags[target.name] += result["lags_s"]
                    service[target.name] += result["service_s"]
                    st["client"].append(result["client_cpu"])
                    st["errors"].append(result["errors"])
                st["achieved"].append(sum(r["achieved_rate"] for r in results))
                st["cpu"].append(server_cpu / duration_s)
        anchor_p50 = summary_ms(samples[bare.name])["p50"]
        for target in (product, bare):
            s = summary_ms(samples[target.name])
            st = stats[target.name]
            errors = int(sum(st["errors"]))
            is_product = target is product
            rows.append(
                LatencyRow(
                    target=target.name,
                    path=HEALTH,
                    rate=rate,
                    load_procs=procs,
                    n=len(samples[target.name]),
                    achieved_rate=round(statistics.median(st["achieved"]), 1),
                    errors=errors,
                    p50=s["p50"],
                    p99=s["p99"],
                    max=s["max"],
                    sender_lag_p50=summary_ms(lags[target.name])["p50"],
                    sender_lag_p99=summary_ms(lags[target.name])["p99"],
                    service_p50=summary_ms(service[target.name])["p50"],
                    service_p99=summary_ms(service[target.name])["p99"],
                    server_cpu=round(statistics.median(st["cpu"]), 3),
                    client_cpu_max=round(max(st["client"]), 3),
                    ratio=round(s["p50"] / anchor_p50, 2) if is_product else None,
                    goal=f"p99 < {LATENCY_GOAL_P99_MS:g} ms" if is_product else "-",
                    met=(s["p99"] < LATENCY_GOAL_P99_MS and errors == 0) if is_product else None,
                )
            )
    return rows


def print_throughput(row: ThroughputRow) -> None:
    print(
        "1. Throughput, closed loop (requests/s median of slices; ratio = median over"
        " adjacent slice pairs of product / bare)"
    )
    print(
        f"{row.conns} connections, {row.rounds} pairs of {row.duration_s:g} s slices"
        f" (ABBA order); product/bare per pair: {row.rounds_ratio}"
    )
    print("(srv us/req = server CPU per request, user + system, median of slices)")
    head = (
        f"{'target':<32} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'srv us/req':>10} "
        f"{'user':>6} {'sys':>6} {'ratio':>6}  goal met"
    )
    print(head)
    print("-" * len(head))
    print(
        f"{'bare aiohttp ' + LIVE:<32} {row.anchor_requests_per_s:>8,.0f} "
        f"{row.anchor_latency_ms['p50']:>7.2f} {row.anchor_latency_ms['p99']:>7.2f} "
        f"{row.anchor_server_cpu_us_per_request:>10.1f} "
        f"{row.anchor_server_user_us_per_request:>6.1f} "
        f"{row.anchor_server_system_us_per_request:>6.1f} {1:>6.2f}"
    )
    print(
        f"{'product ' + LIVE:<32} {row.requests_per_s:>8,.0f} {row.latency_ms['p50']:>7.2f} "
        f"{row.latency_ms['p99']:>7.2f} {row.server_cpu_us_per_request:>10.1f} "
        f"{row.server_user_us_per_request:>6.1f} {row.server_system_us_per_request:>6.1f} "
        f"{row.ratio:>6.2f}  {fmt_met(row.met)} ({row.goal})"
    )
    print(
        f"server CPU per request, bare / product (median over pairs): {row.cpu_ratio:.2f};"
        f" server CPU share (median): bare {row.anchor_server_cpu_share:.0%},"
        f" product {row.server_cpu_share:.0%}; load generator CPU (max over slices):"
        f" {row.client_cpu_max:.0%}; errors: {row.errors}"
    )


def print_latency(rows: list[LatencyRow], tail_result: dict[str, Any]) -> None:
    print(
        "2. Latency, open loop GET /api/health (ms from the intended send time;"
        " ratio = product p50 / bare p50)"
    )
    print(
        "(lag = actual send - intended time, the generator's own lateness; svc = response"
        " - actual send; srv cpu = server CPU share)"
    )
    head = (
        f"{'req/s':>6} {'target':<8} {'n':>6} {'achieved':>8} {'p50':>6} {'p99':>6} "
        f"{'max':>6} {'lag50':>6} {'lag99':>6} {'svc50':>6} {'svc99':>6} {'srv cpu':>7} "
        f"{'ratio':>6}  goal met"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        print(
            f"{row.rate:>6} {row.target:<8} {row.n:>6} {row.achieved_rate:>8.1f} "
            f"{row.p50:>6.2f} {row.p99:>6.2f} {row.max:>6.2f} {row.sender_lag_p50:>6.2f} "
            f"{row.sender_lag_p99:>6.2f} {row.service_p50:>6.2f} {row.service_p99:>6.2f} "
            f"{row.server_cpu:>7.0%} {ratio:>6}  {fmt_met(row.met)} ({row.goal}; "
            f"errors {row.errors})"
        )
    t = tail_result
    print(
        f"event tail: {t['clients']} WebSocket clients on {STREAM}; {t['notes_acked']} notes"
        f" acknowledged ({t['note_failure_count']} failed); messages per client"
        f" {min(t['messages_per_client'])}-{max(t['messages_per_client'])}; missing per client"
        f" max {max(t['missing_per_client'])}; note -> client delivery p50"
        f" {t['delivery_ms']['p50']:.1f} ms, p99 {t['delivery_ms']['p99']:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--conns", type=int, default=16, help="closed-loop connections (default 16)"
    )
    parser.add_argument(
        "--load-procs",
        type=int,
        default=1,
        help="open-loop load processes sharing each rate (default 1)",
    )
    parser.add_argument(
        "--ws-clients", type=int, default=10, help="WebSocket clients tailing events (default 10)"
    )
    parser.add_argument(
        "--note-rate",
        type=float,
        default=20.0,
        help="operator notes recorded per second during the latency part (default 20)",
    )
    parser.add_argument("--role", choices=("load", "bare", "tail"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role is not None:
        spec = json.loads(args.spec)
        {"load": role_load, "bare": role_bare, "tail": role_tail}[args.role](spec)
        return 0

    if args.quick:
        tp_cfg = {"pairs": 4, "slice_s": 0.5, "warmup_s": 0.5}
        lat_cfg = {"rounds": 1, "duration_s": 2.0, "warmup_s": 0.5}
    else:
        tp_cfg = {"pairs": 25, "slice_s": 2.0, "warmup_s": 2.0}
        lat_cfg = {"rounds": 2, "duration_s": 5.0, "warmup_s": 1.0}
    rates = [100, 1000]

    info = machine("aiohttp", "orjson")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_http_") as tmp_name:
        tmp = Path(tmp_name)
        print("starting trading-bot run ...", flush=True)
        product_process = Product(tmp)
        bare_process: subprocess.Popen[str] | None = None
        tail_process: subprocess.Popen[str] | None = None
        try:
            documents = {}
            for path in (LIVE, HEALTH):
                status, body = http_get(product_process.port, path)
                if not check_response(status, body):
                    raise RuntimeError(f"product {path} answered {status}: {body[:200]!r}")
                documents[path] = orjson.loads(body)
            bare_port = free_port()
            bare_process = spawn_role("bare", {"port": bare_port, "documents": documents})
            wait_ready_line(bare_process, "the bare aiohttp server")
            product = Target("product", product_process.port, product_process.process.pid)
            bare = Target("bare", bare_port, bare_process.pid)
            info["product_bodies_bytes"] = {
                path: len(orjson.dumps(doc)) for path, doc in documents.items()
            }

            print("throughput ...", flush=True)
            throughput = bench_throughput(product, bare, conns=args.conns, **tp_cfg)

            print("latency, with the event tail ...", flush=True)
            tail_process = spawn_role(
                "tail",
                {
                    "port": product.port,
                    "control_socket": str(product_process.control_socket),
                    "clients": args.ws_clients,
                    "note_rate": args.note_rate,
                    "note_conns": 8,
                },
                stdin=subprocess.PIPE,
            )
            wait_ready_line(tail_process, "the event tail")
            latency = bench_latency(
                product, bare, rates=rates, load_procs=args.load_procs, conns=32, **lat_cfg
            )
            out, _ = tail_process.communicate("stop\n", timeout=WORKER_TIMEOUT_S)
            tail_result = orjson.loads(out.strip().splitlines()[-1])
        finally:
            for process in (tail_process, bare_process):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
            exit_code = product_process.stop()
    duration_s = time.perf_counter() - started
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    events_ok = (
        tail_result["notes_acked"] > 0
        and tail_result["note_failure_count"] == 0
        and max(tail_result["missing_per_client"]) == 0
    )
    print()
    print(
        f"bench_http  {info['date']}  nproc={info['nproc']}  python={info['python']}  "
        f"aiohttp={info['aiohttp']}  mode={'quick' if args.quick else 'full'}  "
        f"{duration_s:.0f} s  (trading-bot run exit {exit_code})  "
        f"loadavg {info['loadavg_start']} -> {info['loadavg_end']}"
    )
    print()
    print_throughput(throughput)
    print()
    print_latency(latency, tail_result)
    print()
    goals = [throughput.met] + [row.met for row in latency if row.met is not None]
    print(f"events reached every WebSocket client: {'yes' if events_ok else 'NO'}")
    print(f"goals met: {sum(goals)}/{len(goals)}")

    if args.json:
        payload = {
            "benchmark": "http",
            "command": " ".join([".venv/bin/python", "benchmarks/bench_http.py", *sys.argv[1:]]),
            "mode": "quick" if args.quick else "full",
            "machine": info,
            "duration_s": round(duration_s, 1),
            "config": {
                "throughput": tp_cfg | {"conns": args.conns},
                "latency": lat_cfg | {"rates": rates, "load_procs": args.load_procs, "conns": 32},
                "ws_clients": args.ws_clients,
                "note_rate": args.note_rate,
            },
            "throughput": asdict(throughput),
            "latency": [asdict(row) for row in latency],
            "tail": tail_result,
            "events_ok": events_ok,
            "product_exit_code": exit_code,
            "goals_met": all(goals) and events_ok,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, default=str)
            fh.write("\n")
    return 0 if exit_code == 0 and events_ok else 1


if __name__ == "__main__":
    sys.exit(main())
