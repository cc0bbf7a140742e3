"""Fixtures for the web tests: one event loop thread per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.web_server import LoopThread


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    """An event loop in a daemon thread that serves the module's apps."""
    loop = LoopThread()
    yield loop
    loop.close()
