"""Test support: a real ControlServer served from its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tradingbot.control import CommandError, CommandResult, ControlServer
from tradingbot.control.registry import RuntimeCommands

T = TypeVar("T")


def run(commands: RuntimeCommands, line: str) -> CommandResult:
    """Run one shell command line (``name args...``) through ``commands``."""
    name, *args = line.split()
    return asyncio.run(commands(name, args))


class DemoHandler:
    """A small command set exercising every kind of answer."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def __call__(self, command: str, args: list[str]) -> CommandResult:
        self.calls.append((command, args))
        match command:
            case "echo":
                return CommandResult(result={"args": args}, text=" ".join(args))
            case "tree":
                tree = {"id": "root", "kind": "supervisor", "children": [{"id": "heartbeat"}]}
                return CommandResult(result=tree, text="root\n  heartbeat")
            case "state":
                if args != ["heartbeat"]:
                    raise CommandError(f"unknown actor: {' '.join(args)}")
                return CommandResult(result={"status": "running"}, text="heartbeat: running")
            case "boom":
                raise RuntimeError("kaboom")
            case "unjson":
                return CommandResult(result=object(), text="never sent")
            case _:
                raise CommandError(f"unknown command: {command}")


class ServerThread:
    """Runs a ControlServer on its own event loop in a daemon thread."""

    def __init__(self, path: Path, handler: Any, **options: Any) -> None:
        self.path = path
        self.handler = handler
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = ControlServer(path, handler, **options)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def start(self) -> ServerThread:
        self.run(self.server.start())
        return self

    def stop(self) -> None:
        if not self.loop.is_closed():
            self.run(self.server.close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()
