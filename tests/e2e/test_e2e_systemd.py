"""sd_notify from a real process: READY, a watchdog gated on tree health, STOPPING."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import BotFactory, wait_until

from tradingbot import exitcodes

pytestmark = pytest.mark.slow

WATCHDOG = "WATCHDOG=1"


class NotifySocket:
    """The systemd side: a datagram socket that collects what the bot sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.fspath(path))
        self.sock.setblocking(False)
        self.received: list[str] = []

    def drain(self) -> list[str]:
        """Every datagram that has arrived since the last drain (never waits)."""
        new = []
        while True:
            try:
                new.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                break
        self.received.extend(new)
        return new

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(short_tmp: Path) -> Iterator[NotifySocket]:
    notify = NotifySocket(short_tmp / "notify.sock")
    yield notify
    notify.close()


def test_ready_watchdog_gated_on_tree_health_and_stopping(
    bot_factory: BotFactory, notify_socket: NotifySocket
) -> None:
    """systemd gets READY=1, then WATCHDOG=1 except while the heartbeat hangs, then STOPPING=1."""
    bot = bot_factory(
        extra_env={"NOTIFY_SOCKET": os.fspath(notify_socket.path), "WATCHDOG_USEC": "400000"}
    )
    wait_until(
        lambda: notify_socket.drain() or notify_socket.received, message="a first notification"
    )
    first = notify_socket.received[0].splitlines()
    assert first[0] == "READY=1"
    assert any(line.startswith("STATUS=") for line in first[1:])
    wait_until(
        lambda: notify_socket.drain() is not None and notify_socket.received.count(WATCHDOG) >= 3,
        message="repeated WATCHDOG=1 pings",
    )

    result = bot.shell("hang heartbeat 3")
    assert result.returncode == 0, result.stderr
    wait_until(
        lambda: bot.node("heartbeat")["status"] == "unresponsive",
        message="the heartbeat to be reported unresponsive",
    )
    # Pings sent while the tree was still healthy are queued by now: the event loop that
    # answered /api/actors is the one that checks health and sends each ping at once.
    notify_socket.drain()

    windows = 0

    def recovered() -> bool:
        nonlocal windows
        sent_since_last_check = notify_socket.drain()
        if bot.node("heartbeat")["status"] != "unresponsive":
            return True
        # The heartbeat was unresponsive from the drain before this one until now.
        assert WATCHDOG not in sent_since_last_check, "WATCHDOG=1 sent while unresponsive"
        windows += 1
        return False

    wait_until(recovered, message="the heartbeat to answer its probes again")
    assert windows >= 1, "the unresponsive window was never observed"
    assert bot.node("heartbeat")["status"] == "running"

    notify_socket.drain()
    wait_until(lambda: WATCHDOG in notify_socket.drain(), message="WATCHDOG=1 pings to resume")

    bot.signal(signal.SIGTERM)
    assert bot.wait() == exitcodes.OK, bot.diagnostics()
    assert "STOPPING=1" in notify_socket.drain()
