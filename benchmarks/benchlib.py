"""Helpers shared by the benchmark scripts: percentiles, goal marks, machine facts."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
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


@contextmanager
def gateway_process(seed: dict[str, Any], tick_interval_s: float) -> Iterator[int]:
    """A ``trading-bot gateway-sim`` process on an ephemeral loopback port, seeded with
    ``seed`` (the seed-file format); yields its port. The gateway is another process, as
    in production, so it does not share the benchmark's GIL."""
    exe = Path(sys.executable).parent / "trading-bot"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as seed_file:
        json.dump(seed, seed_file)
    command = [str(exe), "gateway-sim", "--port", "0", "--seed-file", seed_file.name]
    proc = subprocess.Popen(
        [*command, "--tick-interval", str(tick_interval_s)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"listening on [^\s:]+:(\d+)", line)
        if found is None:
            raise RuntimeError(f"gateway-sim did not report its port: {line!r}")
        yield int(found.group(1))
    finally:
        proc.terminate()
        proc.wait(10)
        Path(seed_file.name).unlink()
