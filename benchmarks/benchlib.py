"""Helpers shared by the benchmark scripts: percentiles, goal marks, machine facts."""

from __future__ import annotations

import math
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, TypeVar

T = TypeVar("T")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[index]


def rotated(items: list[T], shift: int) -> list[T]:
    """``items`` rotated left by ``shift``: interleaves anchor and subject rounds fairly."""
    shift %= len(items)
    return items[shift:] + items[:shift]


def fmt_met(met: bool | None) -> str:
    """How a goal column reads: ``yes``, ``NO``, or ``-`` when there is no goal."""
    return "-" if met is None else ("yes" if met else "NO")


def machine(*packages: str, **extra: Any) -> dict[str, Any]:
    """Date, CPU count, load, Python and platform, plus the versions of ``packages``."""
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    info.update({name: metadata.version(name) for name in packages})
    info.update(extra)
    return info
