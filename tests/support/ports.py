"""Loopback TCP ports for tests that the kernel will never hand to someone else.

A port found by binding port 0 and closing the socket is an *ephemeral* port: the very next
``bind(0)`` anywhere on the machine - the built-in gateway simulator of a bot under test, an
SMTP test server - may be given the same one, and the bot then fails to bind its HTTP port
(this happened on CI). The kernel only hands out ephemeral ports from
``/proc/sys/net/ipv4/ip_local_port_range``, so the ports chosen here come from below that
range, are checked free, and are never handed out twice by one test process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000
DEFAULT_EPHEMERAL_LOW = 32_768

_handed_out: set[int] = set()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        return int(PORT_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def free_port() -> int:
    """A loopback TCP port nothing listens on, outside the kernel's ephemeral range."""
    high = ephemeral_low() - 1
    if high <= LOWEST:  # an unusual range: fall back to what the kernel picks
        return _kernel_port()
    for _ in range(200):
        port = random.randint(LOWEST, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port found in {LOWEST}-{high}")


def _kernel_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
