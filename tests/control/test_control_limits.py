"""ControlServer limits on a real UNIX socket: idempotency keys, connection cap, idle timeout."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from control_support import ServerThread

from tradingbot.control import (
    CommandError,
    CommandResult,
    ControlClient,
    ControlTimeout,
    ControlUnavailable,
)
from tradingbot.control.protocol import ProtocolError, Request


class CountingHandler:
    """``add`` counts (slowly while ``gate`` is closed); ``count`` reads; ``fail`` refuses."""

    def __init__(self) -> None:
        self.added = 0
        self.gate = threading.Event()
        self.gate.set()

    async def __call__(self, command: str, args: list[str]) -> CommandResult:
        match command:
            case "add":
                while not self.gate.is_set():
                    await asyncio.sleep(0.01)
                self.added += 1
                return CommandResult(result={"added": self.added}, text=f"added {self.added}")
            case "count":
                return CommandResult(result={"added": self.added}, text=str(self.added))
            case "fail":
                raise CommandError(f"failure number {self.added}")
        raise CommandError(f"unknown command {command}")

    @staticmethod
    def mutates(command: str, args: Any) -> bool:
        return command in ("add", "fail")


@pytest.fixture
def counting(make_server: Any, socket_path: Path) -> tuple[ServerThread, CountingHandler]:
    handler = CountingHandler()
    thread: ServerThread = make_server(
        socket_path, handler, mutates=handler.mutates, max_connections=3, idle_timeout_s=0.5
    )
    return thread.start(), handler


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(os.fspath(path))
    return sock


def test_a_retry_with_the_same_key_returns_the_first_outcome(
    counting: tuple[ServerThread, CountingHandler],
) -> None:
    """A mutating command sent twice with one key runs once; both get the same answer."""
    server, handler = counting
    with ControlClient(server.path) as client:
        first = client.request("add", [], key="k1")
        again = client.request("add", [], key="k1")
        other = client.request("add", [], key="k2")
    assert first.result == again.result == {"added": 1}
    assert other.result == {"added": 2}
    assert handler.added == 2


def test_a_refusal_is_remembered_like_a_success(
    counting: tuple[ServerThread, CountingHandler],
) -> None:
    """A keyed command that failed answers its retry with the same failure, not a new run."""
    server, _ = counting
    with ControlClient(server.path) as client:
        first = client.request("fail", [], key="f")
        client.request("add", [], key="a")
        again = client.request("fail", [], key="f")
    assert first.error == again.error == "failure number 0"


def test_reads_are_not_deduplicated(counting: tuple[ServerThread, CountingHandler]) -> None:
    """A read sent with a reused key answers with fresh data."""
    server, _ = counting
    with ControlClient(server.path) as client:
        before = client.request("count", [], key="c")
        client.request("add", [])
        after = client.request("count", [], key="c")
    assert (before.result, after.result) == ({"added": 0}, {"added": 1})


def test_a_key_reused_for_another_command_is_refused(
    counting: tuple[ServerThread, CountingHandler],
) -> None:
    """Reusing a key for a different command is an error naming the first command."""
    server, handler = counting
    with ControlClient(server.path) as client:
        client.request("add", ["x"], key="k")
        reused = client.request("add", ["y"], key="k")
    assert not reused.ok
    assert "already used for a different command: 'add x'" in (reused.error or "")
    assert handler.added == 1


def test_a_timed_out_command_completes_once_and_its_retry_gets_the_outcome(
    counting: tuple[ServerThread, CountingHandler],
) -> None:
    """A timeout says the outcome is unknown; the command still runs once, and a retry with
    its key waits for that run instead of starting another."""
    server, handler = counting
    handler.gate.clear()
    with (
        ControlClient(server.path, timeout_s=0.2) as client,
        pytest.raises(ControlTimeout) as raised,
    ):
        client.request("add", [], key="slow")
    assert "is unknown" in str(raised.value)
    assert raised.value.key == "slow"
    result: list[Any] = []
    with ControlClient(server.path, timeout_s=5) as retry_client:
        waiter = threading.Thread(
            target=lambda: result.append(retry_client.request("add", [], key="slow"))
        )
        waiter.start()
        handler.gate.set()
        waiter.join(10)
    assert result[0].result == {"added": 1}
    assert handler.added == 1


def test_connections_beyond_the_cap_are_refused_in_one_line(
    counting: tuple[ServerThread, CountingHandler],
) -> None:
    """With the cap reached, one more connection gets a one-line refusal; a freed slot serves."""
    server, _ = counting
    held = [_connect(server.path) for _ in range(3)]
    try:
        with (
            pytest.raises(ControlUnavailable, match="too many control connections"),
            ControlClient(server.path) as client,
        ):
            client.request("count", [])
    finally:
        for sock in held:
            sock.close()
    with ControlClient(server.path) as client:
        assert client.request("count", []).ok


def test_an_idle_connection_is_closed_and_the_client_reconnects(
    counting: tuple[ServerThread, CountingHandler],
) -> None:
    """The server closes a connection idle past its timeout; the client's next request
    opens a new one without an error."""
    server, _ = counting
    raw = _connect(server.path)
    with raw:
        assert raw.recv(10) == b""  # closed by the server after 0.5 s of silence
    with ControlClient(server.path) as client:
        assert client.request("count", []).ok
        sock = client._sock
        assert sock is not None
        sock.settimeout(5)
        assert sock.recv(10, socket.MSG_PEEK) == b""  # the server has closed it
        assert client.request("count", []).ok


def test_request_key_round_trips_and_bad_keys_are_refused() -> None:
    """The optional key survives encoding; an empty or overlong key is a protocol error."""
    request = Request(id=3, command="note", args=("hi",), key="k-1")
    assert Request.decode(request.encode().rstrip()) == request
    assert b'"key"' not in Request(id=3, command="tree").encode()
    for key in ("", "x" * 129, "line\nbreak", 7):
        line = orjson.dumps({"v": 1, "id": 3, "command": "note", "key": key})
        with pytest.raises(ProtocolError, match="'key'"):
            Request.decode(line)
