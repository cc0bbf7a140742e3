"""Connection floods and garbage against a real `trading-bot run` with few file descriptors.

One process serves every test here (started once, on SQLite): its open-file limit is
lowered to ``NOFILE`` before it starts, so that a flood of half-sent HTTP requests
larger than that limit is cheap to send. The control socket has a small connection cap
and idle timeout so both can be seen in a few seconds.
"""

from __future__ import annotations

import json
import resource
import selectors
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Bot, start_bot, wait_ready, wait_until

from tradingbot.control import ControlClient

pytestmark = pytest.mark.slow

NOFILE = 400
FLOOD = 500  # more half-sent requests than the process has file descriptors
HEADER_TIMEOUT_S = 3.0
CONTROL_MAX = 4
CONTROL_IDLE_S = 2.0
HALF_REQUEST = b"GET /api/health HTTP/1.1\r\nHost: flood\r\n"  # no blank line: never ends


def _lower_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture(scope="module")
def bot() -> Iterator[Bot]:
    """One bot with NOFILE open files, a short header timeout and a small control cap."""
    base = Path(tempfile.mkdtemp(prefix="tb-e2e-", dir="/tmp"))
    started = start_bot(
        base,
        None,
        {
            "TRADINGBOT_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
            "TRADINGBOT_CONTROL_MAX_CONNECTIONS": str(CONTROL_MAX),
            "TRADINGBOT_CONTROL_IDLE_TIMEOUT_S": str(CONTROL_IDLE_S),
        },
        preexec_fn=_lower_nofile,
    )
    try:
        wait_ready(started)
        yield started
    except BaseException:
        print(started.diagnostics())
        raise
    finally:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


def _log_lines(bot: Bot, event: str) -> list[dict[str, object]]:
    return [line for line in bot.log_events() if line.get("event") == event]


def _raw_request(bot: Bot, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def test_flood_of_half_sent_requests_leaves_control_socket_and_health_reachable(
    bot: Bot,
) -> None:
    """More half-sent requests than open files: extra ones are refused at once, the control
    socket answers throughout, the held ones are cut at the header timeout, health answers."""
    selector = selectors.DefaultSelector()
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            sock = socket.create_connection(("127.0.0.1", bot.port), timeout=10)
            sock.sendall(HALF_REQUEST)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            flood.append(sock)

        # Beyond the cap, connections are answered at once with a 503 and closed.
        answers: dict[socket.socket, bytes] = {}

        def collect() -> None:
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    answers[sock] = answers.get(sock, b"") + chunk
                else:
                    selector.unregister(sock)
                    answers.setdefault(sock, b"")

        def some_refused() -> bool:
            collect()
            return any(answer.startswith(b"HTTP/1.1 503") for answer in answers.values())

        wait_until(some_refused, 20, "connections beyond the cap to be refused with 503")
        refusal = next(a for a in answers.values() if a.startswith(b"HTTP/1.1 503"))
        assert b"application/problem+json" in refusal

        # The control socket answers while HTTP is saturated.
        with ControlClient(bot.control_socket, timeout_s=5) as client:
            tree = client.request("tree", [])
        assert tree.ok, tree.error
        assert bot.alive()

        # The header timeout frees every held connection; then health answers again.
        def all_closed() -> bool:
            collect()
            return not selector.get_map()

        wait_until(all_closed, 30, "the header timeout to close every half-sent request")
    finally:
        for sock in flood:
            sock.close()
        selector.close()
    reply = bot.get("/api/health")
    assert reply.headers.get("Content-Type", "").startswith("application/health+json")
    assert reply.status in (200, 503)
    refused = [
        line
        for line in bot.get("/metrics").body.decode().splitlines()
        if line.startswith("tradingbot_http_connections_refused_total ")
    ]
    assert float(refused[0].split()[1]) > 0
    # No flood of log lines: no accept error at all, and nothing with a traceback.
    assert "Traceback" not in bot.stdout()
    assert not _log_lines(bot, "socket.accept() out of system resource")
    refused_lines = _log_lines(bot, "http_connections_refused")
    assert 1 <= len(refused_lines) <= 3, refused_lines
    # The cap was lowered below the open-file limit, keeping the reserve.
    (lowered,) = _log_lines(bot, "http_connection_cap_lowered")
    assert isinstance(lowered["effective"], int)
    assert lowered["effective"] < NOFILE


def test_garbled_requests_get_problem_json_without_echo_and_one_warning(bot: Bot) -> None:
    """Garbage and oversized requests get a problem+json 400 that does not echo the request,
    and the log holds one WARNING for the client, not one ERROR with a traceback each."""
    garbage = b"GARBAGE\x01\x02 /zzz HTTP/1.1\r\nHost: x\r\n\r\n"
    oversized = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"Q" * 20_000 + b"\r\n\r\n"
    for _ in range(10):
        for data, echo in ((garbage, b"GARBAGE"), (oversized, b"QQQQ")):
            status, headers, body = _raw_request(bot, data)
            assert status == 400
            assert headers["content-type"].startswith("application/problem+json"), headers
            problem = json.loads(body)
            assert problem["status"] == 400
            assert echo not in body

    def logged() -> list[dict[str, object]]:
        return _log_lines(bot, "http_bad_request")

    lines = wait_until(logged, message="the bad-request warning")
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "warning"
    assert "GARBAGE" not in bot.stdout()
    assert "QQQQ" not in bot.stdout()
    errors = [line for line in bot.log_events() if line.get("logger") == "aiohttp.server"]
    assert not errors, errors[:3]


def test_bad_websocket_key_is_400_and_a_plain_get_is_426(bot: Bot) -> None:
    """An upgrade with a malformed Sec-WebSocket-Key is a 400; a plain GET stays a 426."""
    upgrade = (
        b"GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: not-a-key\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as sock:
        sock.sendall(upgrade)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"application/problem+json" in head
    assert json.loads(body)["status"] == 400
    assert b"not-a-key" not in body
    assert bot.get("/api/events/stream").status == 426


def test_control_socket_caps_connections_and_closes_idle_ones(bot: Bot) -> None:
    """Connections beyond the cap are refused with one line; idle ones are closed; a shell
    client whose idle connection was closed reconnects by itself."""
    path = str(bot.control_socket)
    held = []
    try:
        for _ in range(CONTROL_MAX):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(path)
            held.append(sock)
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(10)
        extra.connect(path)
        with extra:
            line = extra.makefile("rb").readline()
        refusal = json.loads(line)
        assert refusal["ok"] is False
        assert refusal["id"] == 0
        assert "too many" in refusal["error"]
        for sock in held:  # idle: closed by the server, no answer
            assert sock.recv(100) == b""
    finally:
        for sock in held:
            sock.close()

    with ControlClient(bot.control_socket, timeout_s=5) as client:
        assert client.request("tree", []).ok
        closed = len(_log_lines(bot, "control.idle_closed"))
        wait_until(
            lambda: len(_log_lines(bot, "control.idle_closed")) > closed,
            20,
            "the idle shell connection to be closed",
        )
        assert client.request("tree", []).ok  # reconnected, no error
