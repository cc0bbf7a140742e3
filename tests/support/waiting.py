"""Waiting for a condition in tests: poll with a deadline instead of sleeping a guess."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WAIT_S = 20.0
POLL_S = 0.02


def wait_until(
    predicate: Callable[[], T | None], timeout_s: float = WAIT_S, message: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that, or fail."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {message}")
        time.sleep(POLL_S)
