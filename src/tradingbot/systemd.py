"""sd_notify(3) without libsystemd: readiness, watchdog and status messages to systemd.

systemd passes the address of its notification socket in ``NOTIFY_SOCKET`` (a path, or
an abstract name written with a leading ``@``); a message is one datagram of
newline-separated ``KEY=value`` assignments. Outside systemd the variable is unset and
every function here is a no-op returning ``False``.

Send :data:`WATCHDOG` from the event loop every :func:`watchdog_interval_s` seconds, and
only while the supervision tree is healthy: a missed ping is how systemd learns that the
process hangs and kills it.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping

READY = "READY=1"
STOPPING = "STOPPING=1"
RELOADING = "RELOADING=1"
WATCHDOG = "WATCHDOG=1"


def status(text: str) -> str:
    """A ``STATUS=`` assignment (shown by ``systemctl status``), folded onto one line."""
    return "STATUS=" + " ".join(text.split())


def notify(state: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``, or several assignments joined by newlines).

    Returns ``False`` when not run by systemd (``NOTIFY_SOCKET`` unset or empty), ``True``
    once the datagram is sent. Raises ``OSError`` when ``NOTIFY_SOCKET`` is set but the
    datagram cannot be delivered (unsupported address, systemd gone).
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        target: str | bytes = b"\0" + os.fsencode(address[1:])  # abstract namespace
    elif address.startswith("/"):
        target = address
    else:
        raise OSError(errno.EAFNOSUPPORT, f"unsupported NOTIFY_SOCKET address {address!r}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(state.encode(), target)
    return True


def ready(text: str | None = None, *, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd that start-up is complete (``Type=notify`` units wait for this)."""
    return notify(READY if text is None else f"{READY}\n{status(text)}", environ=environ)


def stopping(*, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd that an orderly shutdown has begun."""
    return notify(STOPPING, environ=environ)


def watchdog_ping(*, environ: Mapping[str, str] | None = None) -> bool:
    """Reset the systemd watchdog timer."""
    return notify(WATCHDOG, environ=environ)


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings: half of ``WATCHDOG_USEC``, or ``None`` if disabled.

    ``None`` when ``WATCHDOG_USEC`` is unset, not a positive integer, or when
    ``WATCHDOG_PID`` names another process (the watchdog is meant for that process).
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""), 10)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid, 10) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2_000_000
