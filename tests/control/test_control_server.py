"""ControlServer on a real UNIX socket: permissions, robustness, lifecycle, peer checks."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from control_support import ServerThread

from tradingbot.control import (
    MAX_REQUEST_BYTES,
    ControlClient,
    ControlServerError,
    ControlSocketInUse,
    ControlUnavailable,
)

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="switching to another uid needs root")


class RawConnection:
    """A bare socket speaking the wire protocol line by line, to send what no client would."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(os.fspath(path))
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> dict[str, Any]:
        line = self.reader.readline()
        assert line.endswith(b"\n"), line
        message: dict[str, Any] = orjson.loads(line)
        return message

    def at_eof(self) -> bool:
        return self.reader.readline() == b""

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def test_commands_round_trip_on_one_connection(server: ServerThread) -> None:
    """Several commands sent over one client connection are each answered in order."""
    with ControlClient(server.path) as client:
        echo = client.request("echo", ["a", "b c"])
        tree = client.request("tree", [])
        state = client.request("state", ["heartbeat"])
    assert (echo.ok, echo.result, echo.text) == (True, {"args": ["a", "b c"]}, "a b c")
    assert tree.result["children"] == [{"id": "heartbeat"}]
    assert tree.text == "root\n  heartbeat"
    assert state.result == {"status": "running"}
    assert [echo.id, tree.id, state.id] == [1, 2, 3]
    assert server.handler.calls == [("echo", ["a", "b c"]), ("tree", []), ("state", ["heartbeat"])]


def test_directory_is_0700_and_socket_is_0600(server: ServerThread) -> None:
    """The socket directory is private to the owner and the socket is read/write for it only."""
    assert stat.S_IMODE(os.stat(server.path.parent).st_mode) == 0o700
    mode = os.lstat(server.path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_existing_wide_directory_is_tightened_to_0700(make_server: Any, socket_path: Path) -> None:
    """A pre-existing world-readable socket directory is chmod-ed to 0700 on start."""
    socket_path.parent.mkdir(mode=0o755)
    os.chmod(socket_path.parent, 0o755)
    make_server(socket_path).start()
    assert stat.S_IMODE(os.stat(socket_path.parent).st_mode) == 0o700


def test_malformed_line_is_answered_and_connection_stays_usable(server: ServerThread) -> None:
    """A garbage line gets an ok:false answer and the next valid request on it still works."""
    conn = RawConnection(server.path)
    try:
        conn.send(b"this is not json\n")
        bad = conn.receive()
        assert bad["ok"] is False
        assert bad["id"] == 0
        assert bad["error"].startswith("bad request: request is not valid JSON")
        conn.send(b'{"v": 1, "id": 5, "command": "nope"}\n')
        assert conn.receive() == {"v": 1, "id": 5, "ok": False, "error": "unknown command: nope"}
        conn.send(b'{"v": 9, "id": 6, "command": "echo"}\n')
        wrong_version = conn.receive()
        assert wrong_version["id"] == 6
        assert "unsupported protocol version 9" in wrong_version["error"]
        conn.send(b'\n{"v": 1, "id": 7, "command": "echo", "args": ["ok"]}\n')
        assert conn.receive()["text"] == "ok"
    finally:
        conn.close()


def test_command_error_is_answered_as_the_user_message(server: ServerThread) -> None:
    """A CommandError from the handler becomes ok:false with exactly its message."""
    with ControlClient(server.path) as client:
        response = client.request("state", ["nope"])
    assert response.ok is False
    assert response.error == "unknown actor: nope"


def test_unexpected_handler_exception_is_answered_and_server_survives(
    server: ServerThread,
) -> None:
    """A crashing command is answered as an internal error and the server keeps serving."""
    with ControlClient(server.path) as client:
        crashed = client.request("boom", [])
        after = client.request("echo", ["still", "here"])
    assert crashed.ok is False
    assert crashed.error == "internal error: RuntimeError: kaboom"
    assert after.text == "still here"
    with ControlClient(server.path) as client:
        assert client.request("echo", ["new"]).ok


def test_result_that_is_not_json_is_an_internal_error(server: ServerThread) -> None:
    """A handler returning a non-JSON result gets an internal error, not a dropped connection."""
    with ControlClient(server.path) as client:
        response = client.request("unjson", [])
        assert response.ok is False
        assert response.error is not None
        assert response.error.startswith("internal error: the result of 'unjson' is not JSON")
        assert client.request("echo", ["x"]).ok


def test_oversized_request_line_is_refused_without_hurting_the_server(
    server: ServerThread,
) -> None:
    """A request over the size limit is refused with a clear error and the server goes on."""
    with ControlClient(server.path) as client:
        with pytest.raises(ControlUnavailable, match="longer than the 1048576 byte limit"):
            client.request("echo", ["x" * MAX_REQUEST_BYTES])
        assert client.request("echo", ["fine"]).text == "fine"  # reconnects
    assert server.handler.calls == [("echo", ["fine"])]


def test_stale_socket_file_is_replaced(make_server: Any, socket_path: Path) -> None:
    """A socket file left by a dead process (nothing listening) is removed and re-bound."""
    socket_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(socket_path))
    dead.close()  # the file stays, nobody listens: like after kill -9
    with pytest.raises(ControlUnavailable, match="stale control socket"):
        ControlClient(socket_path).request("echo", [])
    make_server(socket_path).start()
    with ControlClient(socket_path) as client:
        assert client.request("echo", ["back"]).text == "back"


def test_live_servers_socket_is_not_stolen(
    server: ServerThread, make_server: Any, socket_path: Path
) -> None:
    """A second server on the same path refuses to start while the first one answers."""
    second = make_server(socket_path)
    expected = f"another process is already listening on {socket_path}"
    with pytest.raises(ControlSocketInUse, match=re.escape(expected)):
        second.start()
    with ControlClient(server.path) as client:
        assert client.request("echo", ["first"]).text == "first"


def test_a_file_that_is_not_a_socket_is_not_removed(make_server: Any, socket_path: Path) -> None:
    """A regular file at the socket path is left alone and start() says why it cannot bind."""
    socket_path.parent.mkdir(mode=0o700)
    socket_path.write_text("precious")
    with pytest.raises(ControlServerError, match="is not a socket"):
        make_server(socket_path).start()
    assert socket_path.read_text() == "precious"


def test_close_removes_the_socket_and_ends_connections(server: ServerThread) -> None:
    """Closing the server removes the socket file and an idle connected client sees it gone."""
    client = ControlClient(server.path, timeout_s=5)
    assert client.request("echo", ["x"]).ok
    server.run(server.server.close())
    assert not server.path.exists()
    with pytest.raises(ControlUnavailable):
        client.request("echo", ["y"])
    with pytest.raises(ControlUnavailable, match="no trading-bot process is running"):
        client.request("echo", ["z"])
    client.close()


def test_close_leaves_a_successors_socket_alone(make_server: Any, socket_path: Path) -> None:
    """An old server shutting down does not delete the socket a newer server now owns."""
    old = make_server(socket_path).start()
    socket_path.unlink()  # e.g. removed by an operator, then a new process took over
    make_server(socket_path).start()
    old.run(old.server.close())
    assert socket_path.exists()
    with ControlClient(socket_path) as client:
        assert client.request("echo", ["new"]).text == "new"


_OTHER_UID_CLIENT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from tradingbot.control import ControlClient, ControlUnavailable

    # Imports are done as root; then become nobody for the connection itself.
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    try:
        with ControlClient(Path(sys.argv[1]), timeout_s=5) as client:
            response = client.request("echo", ["hi"])
        print("ANSWERED", response)
    except ControlUnavailable as exc:
        print("UNAVAILABLE", exc)
    """
)


def _run_as_nobody(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_UID_CLIENT, os.fspath(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


@needs_root
def test_other_uid_is_refused_by_peer_credentials(
    make_server: Any, world_traversable_dir: Path
) -> None:
    """With the filesystem opened up, a client of another uid is still refused by SO_PEERCRED."""
    path = world_traversable_dir / "run" / "control.sock"
    server = make_server(path).start()
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o666)
    output = _run_as_nobody(path)
    assert output.startswith("UNAVAILABLE"), output
    assert "permission denied: uid 65534 is not allowed" in output
    with ControlClient(path) as client:  # the server's own uid still gets in
        assert client.request("echo", ["root"]).text == "root"
    assert server.handler.calls == [("echo", ["root"])]


@needs_root
def test_other_uid_gets_clear_message_from_private_directory(
    make_server: Any, world_traversable_dir: Path
) -> None:
    """With the normal 0700 directory, another uid is told to run as the bot's user."""
    path = world_traversable_dir / "run" / "control.sock"
    make_server(path).start()
    output = _run_as_nobody(path)
    assert output == (
        f"UNAVAILABLE permission denied on {path}: run as the user that runs trading-bot"
    )
