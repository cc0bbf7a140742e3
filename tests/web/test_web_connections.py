"""HTTP connection limits on a loopback server: cap, header and body deadlines, bad requests."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from support.web_server import LoopThread
from tradingbot.web.connections import (
    FD_RESERVE,
    ConnectionGuard,
    GuardedSite,
    Throttle,
    body_timeout_middleware,
    connection_cap,
    throttle_accept_errors,
)
from tradingbot.web.problems import problem_middleware

CAP = 2
HEADER_TIMEOUT_S = 0.3
BODY_TIMEOUT_S = 0.3


async def _echo_length(request: web.Request) -> web.Response:
    return web.json_response({"length": len(await request.read())})


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": True})


@pytest.fixture
def guard() -> ConnectionGuard:
    return ConnectionGuard(max_connections=CAP, header_timeout_s=HEADER_TIMEOUT_S)


@pytest.fixture
def port(loop_thread: LoopThread, guard: ConnectionGuard) -> Iterator[int]:
    """A guarded site (cap 2, short deadlines) serving a tiny app; its port."""
    app = web.Application(middlewares=[problem_middleware, body_timeout_middleware(BODY_TIMEOUT_S)])
    app.router.add_get("/hello", _hello)
    app.router.add_post("/echo", _echo_length)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = GuardedSite(runner, "127.0.0.1", 0, guard=guard)
        await site.start()
        return int(runner.addresses[0][1])

    yield loop_thread.run(start())
    loop_thread.run(runner.cleanup())


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _exchange(port: int, data: bytes) -> tuple[int, bytes]:
    with _connect(port) as sock:
        sock.sendall(data)
        answer = _read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    return int(head.split()[1]), body


def test_connections_beyond_the_cap_get_503_at_once_and_a_freed_slot_serves(
    port: int, guard: ConnectionGuard
) -> None:
    """With the cap held by idle connections, another gets a 503 problem (counted for
    /metrics); once one closes, requests are served again."""
    held = [_connect(port) for _ in range(CAP)]
    try:
        with _connect(port) as extra:
            answer = _read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["status"] == 503
    finally:
        for sock in held:
            sock.close()
    with _connect(port) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")
    metrics = {m.name: m.samples[0].value for m in guard.collect()}
    assert metrics["tradingbot_http_connections_refused"] == 1
    assert metrics["tradingbot_http_connections_max"] == CAP


def test_a_request_head_that_never_ends_is_cut_at_the_header_timeout(port: int) -> None:
    """A half-sent request head is closed by the server after the header timeout."""
    with _connect(port) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(100) == b""


def test_a_body_that_does_not_arrive_in_time_is_a_408(port: int) -> None:
    """A request whose announced body does not arrive within the body timeout gets 408."""
    status, body = _exchange(
        port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part"
    )
    assert status == 408
    assert "did not arrive" in json.loads(body)["detail"]
    with _connect(port) as sock:  # a complete body is read and handed to the handler
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n12345"
        )
        assert json.loads(_read_all(sock).partition(b"\r\n\r\n")[2]) == {"length": 5}


def test_garbage_is_a_400_problem_without_echo_logged_once_per_client(port: int) -> None:
    """Garbled and oversized requests get problem+json 400 that never repeats them, and a
    client sending many is logged once, as a warning without traceback."""
    requests = [
        b"EVIL\x01\x02 /x HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Big: " + b"Z" * 20_000 + b"\r\n\r\n",
        b"GET /" + b"Y" * 20_000 + b" HTTP/1.1\r\n\r\n",
    ]
    with capture_logs() as logs:
        for data in requests * 3:
            status, body = _exchange(port, data)
            assert status == 400
            assert json.loads(body)["status"] == 400
            assert b"EVIL" not in body
            assert b"ZZZZ" not in body
            assert b"YYYY" not in body
    bad = [entry for entry in logs if entry["event"] == "http_bad_request"]
    assert len(bad) == 1, bad
    assert bad[0]["log_level"] == "warning"
    assert bad[0]["remote"] == "127.0.0.1"
    assert "exc_info" not in bad[0]


def test_throttle_allows_one_per_key_per_interval_and_counts_the_rest() -> None:
    """One event per key per interval is allowed; the next allowed one says how many waited."""
    throttle = Throttle(interval_s=3600)
    assert throttle.allow("a") == 0
    assert [throttle.allow("a") for _ in range(3)] == [None, None, None]
    assert throttle.allow("b") == 0
    throttle.interval_s = 0
    assert throttle.allow("a") == 3


def test_accept_errors_are_reported_once_and_other_errors_pass_through() -> None:
    """A storm of failed accept() reports is one log line; other loop errors still reach
    the handler that was there before."""
    loop = asyncio.new_event_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: seen.append(context))
    try:
        throttle_accept_errors(loop)
        error = OSError(24, "Too many open files")
        with capture_logs() as logs:
            for _ in range(1000):
                loop.call_exception_handler(
                    {"message": "socket.accept() out of system resource", "exception": error}
                )
            loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    assert [entry["event"] for entry in logs] == ["accept_failed"]
    assert "Too many open files" in logs[0]["error"]
    assert [context["message"] for context in seen] == ["something else"]


def test_the_cap_keeps_a_reserve_below_the_open_file_limit() -> None:
    """The effective cap leaves the backlog, the control socket and a reserve free."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no open-file limit here")
    assert connection_cap(10**9, backlog=128, other_connections=16) == max(
        1, soft - 128 - 16 - FD_RESERVE
    )
    assert connection_cap(5, backlog=128, other_connections=16) == min(
        5, max(1, soft - 128 - 16 - FD_RESERVE)
    )
