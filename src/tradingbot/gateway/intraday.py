"""A session segment's synthetic one-minute prices, made to fit its daily bar.

History is drawn daily first (``history.py``): each segment of a session (pre-market,
regular hours, after-hours) gets its open, close, high, low and volume from a few seeded
numbers, so a year of daily bars costs microseconds. Its minutes are made only when a
request needs them: a seeded path from the open through the high and the low (at seeded
minutes, in either order) to the close, Brownian bridges in log price between those
points, clipped to the low..high range and rounded to cents. The minutes therefore
aggregate exactly to the daily bar. Volume: the segment's lots (100 shares) spread over
its minutes, at least one lot a minute.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Minutes", "SegmentBar", "fit_minutes"]


@dataclass(frozen=True, slots=True)
class SegmentBar:
    """What a segment's minutes must add up to: ``n`` minutes from ``open`` to ``close``
    reaching exactly ``high`` and ``low``, ``lots`` x 100 shares traded; ``sigma`` is the
    standard deviation of the segment's log return (the path's roughness)."""

    n: int
    open: float
    close: float
    high: float
    low: float
    lots: int
    sigma: float


@dataclass(frozen=True, slots=True)
class Minutes:
    """Consecutive one-minute bars from epoch minute ``first``: opens, closes (a minute's
    high and low are the larger and smaller of the two) and volumes in shares."""

    first: int
    opens: np.ndarray
    closes: np.ndarray
    volumes: np.ndarray

    def __len__(self) -> int:
        return len(self.closes)


def fit_minutes(rng: np.random.Generator, first: int, bar: SegmentBar) -> Minutes:
    """The ``bar.n`` minutes from epoch minute ``first`` that aggregate to ``bar``."""
    n = bar.n
    if n <= 0:
        empty = np.zeros(0)
        return Minutes(first, empty, empty, np.zeros(0, dtype=np.int64))
    anchors = [(0, bar.open), (n, bar.close)]
    if n >= 3:  # the extremes at two distinct inner minutes (fewer minutes: see history)
        t_high, t_low = (rng.choice(n - 1, 2, replace=False) + 1).tolist()
        anchors += [(t_high, bar.high), (t_low, bar.low)]
    anchors.sort()
    steps = rng.standard_normal(n) * (bar.sigma / math.sqrt(n))
    path = np.empty(n + 1)
    path[0] = math.log(bar.open)
    for (ta, pa), (tb, pb) in itertools.pairwise(anchors):
        k = tb - ta
        if k == 0:
            continue
        walk = np.cumsum(steps[ta:tb])
        frac = np.arange(1, k + 1) / k
        path[ta + 1 : tb + 1] = (
            math.log(pa) + (math.log(pb) - math.log(pa)) * frac + walk - frac * walk[-1]
        )
    prices = np.clip(np.round(np.exp(path), 2), bar.low, bar.high)
    for t, price in anchors:
        prices[t] = price
    weights = np.abs(rng.standard_normal(n)) * 15 + 1
    extra = max(0, bar.lots - n)
    lots = 1 + np.floor(extra * weights / weights.sum()).astype(np.int64)
    leftover = bar.lots - int(lots.sum())  # what the floors left over (< n)
    if leftover > 0:
        lots[:leftover] += 1
    return Minutes(first, prices[:-1], prices[1:], lots * 100)
