"""ControlClient failure messages, against real sockets that misbehave in each way."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradingbot.control import ControlClient, ControlUnavailable, ProtocolError


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    """A bare listening socket the test drives by hand."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.fspath(tmp_path / "fake.sock"))
    sock.listen()
    yield sock
    sock.close()


def _serve_once(listener: socket.socket, reply: bytes | None) -> threading.Thread:
    """Accept one connection, read one request line, send ``reply`` (or nothing), hang up."""

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.makefile("rb").readline()
            if reply is not None:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_missing_socket_says_no_process_is_running(tmp_path: Path) -> None:
    """Without a socket file the client says no trading-bot process is running, naming the path."""
    path = tmp_path / "run" / "control.sock"
    with pytest.raises(ControlUnavailable) as caught:
        ControlClient(path).request("tree", [])
    assert str(caught.value) == f"no trading-bot process is running: no control socket at {path}"


def test_socket_without_listener_is_reported_stale(tmp_path: Path) -> None:
    """A socket file nobody listens on is reported as a stale socket of a dead process."""
    path = tmp_path / "control.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(path))
    dead.close()
    with pytest.raises(ControlUnavailable) as caught:
        ControlClient(path).request("tree", [])
    assert str(caught.value).startswith(
        f"no trading-bot process is running: stale control socket at {path}"
    )


def test_silent_server_times_out_with_a_clear_message(listener: socket.socket) -> None:
    """A process that accepts but never answers is reported after timeout_s, not awaited forever."""
    path = Path(listener.getsockname())
    with pytest.raises(ControlUnavailable, match=r"did not answer within 0\.2 s"):
        ControlClient(path, timeout_s=0.2).request("tree", [])


def test_server_hanging_up_is_reported(listener: socket.socket) -> None:
    """A connection closed without an answer is reported as such."""
    path = Path(listener.getsockname())
    thread = _serve_once(listener, None)
    with pytest.raises(ControlUnavailable, match="closed the control connection"):
        ControlClient(path, timeout_s=5).request("tree", [])
    thread.join(5)


def test_garbage_answer_is_a_protocol_error(listener: socket.socket) -> None:
    """An answer that is not protocol JSON raises ProtocolError instead of returning junk."""
    path = Path(listener.getsockname())
    thread = _serve_once(listener, b"HTTP/1.1 400 Bad Request\n")
    with pytest.raises(ProtocolError, match="not valid JSON"):
        ControlClient(path, timeout_s=5).request("tree", [])
    thread.join(5)


def test_answer_to_another_request_is_a_protocol_error(listener: socket.socket) -> None:
    """An answer whose id does not match the request is rejected."""
    path = Path(listener.getsockname())
    thread = _serve_once(listener, b'{"v": 1, "id": 99, "ok": true, "result": null, "text": ""}\n')
    with pytest.raises(ProtocolError, match="response id 99 does not match request id 1"):
        ControlClient(path, timeout_s=5).request("tree", [])
    thread.join(5)
