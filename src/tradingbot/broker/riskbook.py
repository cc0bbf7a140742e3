"""What the pre-trade risk checks remember: the limits, recent orders, today's warnings.

One :class:`RiskBook` per process, created by the runtime and handed to every broker
incarnation (like :class:`~tradingbot.broker.BrokerStatus`), so a broker restart forgets
nothing. What must also survive a process restart is rebuilt at start from the stored
events (:func:`tradingbot.trading.risk_setup.risk_book`): the orders placed in the last
minute (ORDER events) and the limits already reported as near today (RISK events). A
"day" is the New York calendar day, the trading day of a US account.

Thread-safe: the broker actor, the loss-limit monitor and readers use it at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from tradingbot.trading.risk import RiskLimits

NEW_YORK = ZoneInfo("America/New_York")
RATE_WINDOW_S = 60.0


def trading_day(at: datetime | None = None) -> date:
    """The New York calendar day of ``at`` (now when omitted)."""
    return (at or datetime.now(UTC)).astimezone(NEW_YORK).date()


class RiskBook:
    """The limits of one account and what the checks remember (see the module docstring)."""

    def __init__(
        self,
        limits: RiskLimits,
        account: str = "",
        *,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], date] = trading_day,
    ) -> None:
        self.limits = limits
        self.account = account
        self._clock = clock
        self._today = today
        self._lock = threading.Lock()
        self._placed: deque[float] = deque()  # monotonic times of accepted orders
        self._done: dict[date, set[str]] = {}  # what happened once today (see first_today)

    def placed(self) -> None:
        """An order passed the checks (it counts towards the orders per minute)."""
        with self._lock:
            self._placed.append(self._clock())

    def seed_placed(self, ages_s: Iterable[float]) -> None:
        """Orders placed by an earlier run, ``ages_s`` seconds ago (at start)."""
        now = self._clock()
        with self._lock:
            times = sorted([*self._placed, *(now - age for age in ages_s if age < RATE_WINDOW_S)])
            self._placed = deque(times)

    def orders_last_minute(self) -> int:
        """Orders that passed the checks in the last 60 seconds."""
        horizon = self._clock() - RATE_WINDOW_S
        with self._lock:
            while self._placed and self._placed[0] <= horizon:
                self._placed.popleft()
            return len(self._placed)

    def first_today(self, key: str) -> bool:
        """True the first time today for ``key`` (a limit reported as near, a trip), then False."""
        today = self._today()
        with self._lock:
            done = self._done.setdefault(today, set())
            for day in [d for d in self._done if d != today]:
                del self._done[day]
            if key in done:
                return False
            done.add(key)
            return True

    def seed_today(self, day: date, keys: Iterable[str]) -> None:
        """What an earlier run already did on ``day`` (at start): see :meth:`first_today`."""
        with self._lock:
            self._done.setdefault(day, set()).update(keys)

    def today(self) -> date:
        return self._today()
