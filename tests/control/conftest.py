"""Fixtures: a real ControlServer on a real UNIX socket, served from a background loop."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from control_support import DemoHandler, ServerThread


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "control.sock"


@pytest.fixture
def make_server() -> Iterator[Any]:
    started: list[ServerThread] = []

    def make(path: Path, handler: Any = None, **options: Any) -> ServerThread:
        thread = ServerThread(path, handler or DemoHandler(), **options)
        started.append(thread)
        return thread

    yield make
    for thread in reversed(started):
        thread.stop()


@pytest.fixture
def server(make_server: Any, socket_path: Path) -> ServerThread:
    thread: ServerThread = make_server(socket_path)
    return thread.start()


@pytest.fixture
def world_traversable_dir() -> Iterator[Path]:
    """A 0755 directory another uid can traverse (pytest's tmp_path base is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="tb-control-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
