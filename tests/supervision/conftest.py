"""Fixtures for the supervision tests: a harness that always stops its trees."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from supervision_support import Harness


@pytest.fixture
def harness() -> Iterator[Harness]:
    """Trees on a ManualClock; at teardown everything is released, stopped and checked gone."""
    h = Harness()
    try:
        yield h
    finally:
        h.close()
