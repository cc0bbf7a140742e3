"""The exchange's trading calendar: sessions, holidays and early closes of the NYSE.

The rules come from the maintained ``exchange_calendars`` library (its ``XNYS``
calendar, computed offline from rules: no download), never from a hand-written holiday
list. This module is the only one that touches it and hands out plain ``date`` and
aware ``datetime`` values, so pandas stays behind this wall.
"""

from __future__ import annotations

import functools
import threading
import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars

EXCHANGE = "XNYS"
EXCHANGE_TZ = ZoneInfo("America/New_York")
# The calendar is built for this span around today; a query outside it rebuilds it.
SPAN_BEFORE = timedelta(days=366 * 6)
SPAN_AFTER = timedelta(days=366 * 2)


class TradingCalendar:
    """Sessions and their open/close instants (UTC) of one exchange; thread-safe."""

    def __init__(self, exchange: str = EXCHANGE, around: date | None = None) -> None:
        self.exchange = exchange
        self._lock = threading.Lock()
        self._calendar: Any = None
        self._first = date.max
        self._last = date.min
        self._build(around or datetime.now(UTC).date())

    def _build(self, around: date) -> None:
        start = min(self._first, around - SPAN_BEFORE)
        end = max(self._last, around + SPAN_AFTER)
        with warnings.catch_warnings():  # pandas deprecation notices inside the library
            warnings.simplefilter("ignore")
            self._calendar = exchange_calendars.get_calendar(
                self.exchange, start=start.isoformat(), end=end.isoformat()
            )
        self._first, self._last = start, end
        self._sessions.cache_clear()

    def _covering(self, day: date) -> Any:
        with self._lock:
            if not self._first + timedelta(days=1) < day < self._last - timedelta(days=1):
                self._build(day)
            return self._calendar

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one calendar per process
    def _sessions(self, day: date) -> tuple[datetime, datetime] | None:
        calendar = self._calendar
        label = day.isoformat()
        if not calendar.is_session(label):
            return None
        opened = calendar.session_open(label).to_pydatetime().astimezone(UTC)
        closed = calendar.session_close(label).to_pydatetime().astimezone(UTC)
        return opened, closed

    def _session(self, day: date) -> tuple[datetime, datetime] | None:
        self._covering(day)
        return self._sessions(day)

    def is_session(self, day: date) -> bool:
        """Whether the exchange trades on ``day`` (a weekday that is not a holiday)."""
        return self._session(day) is not None

    def open_at(self, day: date) -> datetime:
        """The regular open of session ``day`` (UTC); ``ValueError`` on a non-session."""
        return self._require(day)[0]

    def close_at(self, day: date) -> datetime:
        """The close of session ``day`` (UTC), 13:00 ET on early-close days."""
        return self._require(day)[1]

    def is_early_close(self, day: date) -> bool:
        """Whether session ``day`` closes before 16:00 ET."""
        close = self.close_at(day).astimezone(EXCHANGE_TZ)
        return (close.hour, close.minute) < (16, 0)

    def session_on_or_before(self, day: date) -> date:
        """The latest session on ``day`` or before it."""
        while not self.is_session(day):
            day -= timedelta(days=1)
        return day

    def next_session(self, day: date) -> date:
        """The first session strictly after ``day``."""
        day += timedelta(days=1)
        while not self.is_session(day):
            day += timedelta(days=1)
        return day

    def sessions(self, first: date, last: date) -> list[date]:
        """The sessions from ``first`` to ``last`` inclusive."""
        out: list[date] = []
        day = first
        while day <= last:
            if self.is_session(day):
                out.append(day)
            day += timedelta(days=1)
        return out

    def _require(self, day: date) -> tuple[datetime, datetime]:
        session = self._session(day)
        if session is None:
            raise ValueError(f"{day.isoformat()} is not a {self.exchange} trading session")
        return session


@functools.cache
def nyse() -> TradingCalendar:
    """The process's NYSE calendar (built once: ~0.2-0.8 s)."""
    return TradingCalendar()
