"""sd_notify over a real AF_UNIX datagram socket, and the watchdog interval."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradingbot import systemd


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket bound to a path, as systemd's notify socket is; yields (address, sock)."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(os.fspath(path))
        sock.settimeout(5)
        yield os.fspath(path), sock


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket in the abstract namespace; yields ("@name", sock)."""
    name = f"tradingbot-test-notify-{os.getpid()}-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        yield "@" + name, sock


def test_notify_without_systemd_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside systemd (no NOTIFY_SOCKET) notify returns False and raises nothing."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify(systemd.READY) is False
    assert systemd.watchdog_ping() is False
    assert systemd.notify(systemd.READY, environ={"NOTIFY_SOCKET": ""}) is False


def test_notify_sends_datagrams_to_a_path_socket(
    monkeypatch: pytest.MonkeyPatch, path_socket: tuple[str, socket.socket]
) -> None:
    """READY, WATCHDOG, STATUS and STOPPING arrive as one datagram each at the path socket."""
    address, sock = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert systemd.ready("tree started\nall 8 actors up")
    assert systemd.watchdog_ping()
    assert systemd.notify(systemd.status("broker reconnecting"))
    assert systemd.stopping()
    received = [sock.recv(4096) for _ in range(4)]
    assert received == [
        b"READY=1\nSTATUS=tree started all 8 actors up",
        b"WATCHDOG=1",
        b"STATUS=broker reconnecting",
        b"STOPPING=1",
    ]


def test_notify_reaches_an_abstract_socket(abstract_socket: tuple[str, socket.socket]) -> None:
    """A NOTIFY_SOCKET starting with '@' is the abstract namespace, not a file path."""
    address, sock = abstract_socket
    assert systemd.notify(systemd.READY, environ={"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"READY=1"


def test_notify_to_a_vanished_socket_raises(tmp_path: Path) -> None:
    """When NOTIFY_SOCKET is set but nobody is there, notify raises OSError rather than lying."""
    with pytest.raises(FileNotFoundError):
        systemd.notify(systemd.READY, environ={"NOTIFY_SOCKET": os.fspath(tmp_path / "gone")})


def test_notify_rejects_an_unsupported_address() -> None:
    """A NOTIFY_SOCKET that is neither a path nor '@name' raises OSError naming it."""
    with pytest.raises(OSError, match="unsupported NOTIFY_SOCKET address 'vsock:2:1234'"):
        systemd.notify(systemd.READY, environ={"NOTIFY_SOCKET": "vsock:2:1234"})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.25),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "nope"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_USEC": ""}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_this_process(
    environ: dict[str, str], expected: float | None
) -> None:
    """The ping interval is half of WATCHDOG_USEC; None when disabled or meant for another pid."""
    assert systemd.watchdog_interval_s(environ) == expected


def test_watchdog_interval_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping the real environment is read."""
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval_s() == 10.0
