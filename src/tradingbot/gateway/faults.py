"""Text commands that inject faults into a running simulator, and a UNIX-socket server.

One command per line, one reply line each (``ok ...`` or ``error ...``)::

    close                 close every client socket
    freeze / unfreeze     stop / resume answering (sockets stay open)
    reject-next [REASON]  reject the next new order with error 201
    lost                  send error 1100 (connectivity lost)
    restored [data-lost]  send error 1102 (or 1101 with ``data-lost``)
    restart SECONDS       nightly restart window: close all, refuse connections
    status                connected client ids and whether frozen

Example: ``echo freeze | socat - UNIX-CONNECT:/run/user/1000/gateway-sim.sock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from .server import GatewaySimulator

__all__ = ["apply_command", "start_control_server"]


async def apply_command(sim: GatewaySimulator, line: str) -> str:
    """Apply one fault command to ``sim`` and return the reply line."""
    words = line.split()
    if not words:
        return "error empty command"
    name, args = words[0].lower(), words[1:]
    match name:
        case "close":
            sim.close_all_connections()
        case "freeze":
            sim.freeze()
        case "unfreeze":
            sim.unfreeze()
        case "reject-next":
            sim.reject_next_order(" ".join(args) or "Simulated rejection")
        case "lost":
            sim.connectivity_lost()
        case "restored":
            sim.connectivity_restored(data_lost=args[:1] == ["data-lost"])
        case "restart":
            try:
                seconds = float(args[0])
            except (IndexError, ValueError):
                return "error usage: restart SECONDS"
            if not 0 <= seconds <= 3600:
                return "error SECONDS must be in 0..3600"
            await sim.refuse_connections(seconds)
        case "status":
            return f"ok clients={sim.connected_client_ids} frozen={sim.frozen}"
        case _:
            return f"error unknown command {name!r}"
    return f"ok {name}"


async def start_control_server(sim: GatewaySimulator, path: Path) -> asyncio.Server:
    """Listen for fault commands on a UNIX socket at ``path`` (mode 0600)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = await apply_command(sim, line.decode(errors="replace").strip())
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            return  # the fault client went away
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path)
    finally:
        os.umask(old_umask)
    path.chmod(0o600)
    return server
