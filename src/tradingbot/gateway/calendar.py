"""Trading sessions: when the simulated market is open.

``AlwaysOpen`` (the default of the embedded simulator and of ``gateway-sim`` without
``--calendar``) has one session per New York calendar day, 00:00 to 24:00, every day,
so a fresh bot trades at any hour (there are no extended hours: the whole day is
regular). ``ExchangeSessions("XNYS")`` follows the real exchange calendar from
``exchange_calendars`` (weekends and holidays closed, early closes); it loads lazily
because it pulls in pandas. Its sessions also carry extended hours as IB's US stock
sessions have them: pre-market from 04:00 New York to the open, after-hours from the
close for four hours (16:00-20:00; 13:00-17:00 on an early close).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

__all__ = [
    "NEW_YORK",
    "AlwaysOpen",
    "ExchangeSessions",
    "Session",
    "SessionCalendar",
    "calendar",
    "contract_hours",
    "is_open",
]

NEW_YORK = ZoneInfo("America/New_York")


PRE_MARKET_OPEN = time(4, 0)  # New York, as IB's US stock pre-market
AFTER_HOURS = timedelta(hours=4)  # after-hours trading lasts four hours past the close


@dataclass(frozen=True, slots=True)
class Session:
    """One trading session: its date, its open and close instants (UTC) and, when it
    has extended hours, their start and end (``None``: the session has none)."""

    day: date
    open: datetime
    close: datetime
    ext_open: datetime | None = None
    ext_close: datetime | None = None

    def bounds(self, rth: bool = True) -> tuple[datetime, datetime]:
        """Start and end of the regular session (``rth``) or of its extended hours."""
        if rth:
            return self.open, self.close
        return self.ext_open or self.open, self.ext_close or self.close


class SessionCalendar(Protocol):
    """What the simulator asks of a calendar."""

    name: str

    def sessions(self, start: date, end: date) -> list[Session]:
        """Sessions whose date is in ``start..end`` (inclusive), oldest first."""

    def session_at_or_after(self, t: datetime) -> Session:
        """The session open at ``t``, else the next one to open."""


def is_open(cal: SessionCalendar, t: datetime) -> bool:
    """Is the market open at ``t``?"""
    s = cal.session_at_or_after(t)
    return s.open <= t < s.close


class AlwaysOpen:
    """Every New York calendar day is one 24-hour session."""

    name = "always-open"

    def __init__(self) -> None:
        self._cache: dict[date, Session] = {}

    def _session(self, day: date) -> Session:
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[day] = self._make(day)
        return self._cache[day]

    def _make(self, day: date) -> Session:
        start = datetime.combine(day, time(), NEW_YORK)
        end = datetime.combine(day + timedelta(days=1), time(), NEW_YORK)
        return Session(day, start.astimezone(UTC), end.astimezone(UTC))

    def sessions(self, start: date, end: date) -> list[Session]:
        """Every day from ``start`` to ``end``."""
        return [self._session(start + timedelta(days=i)) for i in range((end - start).days + 1)]

    def session_at_or_after(self, t: datetime) -> Session:
        """The day containing ``t`` (New York time)."""
        return self._session(t.astimezone(NEW_YORK).date())


class ExchangeSessions:
    """Regular sessions of an exchange calendar (``exchange_calendars``, offline)."""

    def __init__(self, code: str = "XNYS") -> None:
        import exchange_calendars

        self.name = code
        with warnings.catch_warnings():  # pandas deprecation notices inside the library
            warnings.simplefilter("ignore")
            self._cal: Any = exchange_calendars.get_calendar(code)
        self._cache: dict[date, Session | None] = {}

    def _session(self, day: date) -> Session | None:
        if day not in self._cache:
            import pandas as pd

            ts = pd.Timestamp(day)
            cal = self._cal
            if cal.first_session <= ts <= cal.last_session and cal.is_session(ts):
                opened = cal.session_open(ts).to_pydatetime().astimezone(UTC)
                closed = cal.session_close(ts).to_pydatetime().astimezone(UTC)
                early = datetime.combine(day, PRE_MARKET_OPEN, NEW_YORK).astimezone(UTC)
                self._cache[day] = Session(day, opened, closed, early, closed + AFTER_HOURS)
            else:
                self._cache[day] = None
        return self._cache[day]

    def sessions(self, start: date, end: date) -> list[Session]:
        """The exchange's sessions from ``start`` to ``end``."""
        days = (start + timedelta(days=i) for i in range((end - start).days + 1))
        return [s for d in days if (s := self._session(d)) is not None]

    def session_at_or_after(self, t: datetime) -> Session:
        """The session open at ``t`` or the next one (searching up to two weeks ahead)."""
        day = t.astimezone(NEW_YORK).date()
        for i in range(15):
            s = self._session(day + timedelta(days=i))
            if s is not None and t < s.close:
                return s
        raise ValueError(f"no {self.name} session within two weeks of {t:%Y-%m-%d}")


def calendar(name: str) -> SessionCalendar:
    """``always-open`` or an exchange code such as ``XNYS`` (``ValueError`` if unknown)."""
    if name in ("", "always-open"):
        return AlwaysOpen()
    try:
        return ExchangeSessions(name)
    except Exception as exc:  # exchange_calendars raises its own error types
        raise ValueError(f"unknown calendar {name!r}: {exc}") from exc


def contract_hours(cal: SessionCalendar, now: datetime, days: int = 7) -> tuple[str, str]:
    """Trading and liquid hours for ``days`` days from ``now`` in the gateway's format:
    ``20261127:0400-20261127:1700;20261128:CLOSED;...`` in New York time. As at IB,
    the trading hours include the extended hours and the liquid hours are the regular
    session (the same string when the calendar has no extended hours)."""
    start = now.astimezone(NEW_YORK).date()
    by_day = {s.day: s for s in cal.sessions(start, start + timedelta(days=days - 1))}
    trading, liquid = [], []
    for i in range(days):
        day = start + timedelta(days=i)
        s = by_day.get(day)
        if s is None:
            trading.append(f"{day:%Y%m%d}:CLOSED")
            liquid.append(f"{day:%Y%m%d}:CLOSED")
            continue
        for rth, parts in ((False, trading), (True, liquid)):
            o, c = (t.astimezone(NEW_YORK) for t in s.bounds(rth))
            parts.append(f"{o:%Y%m%d:%H%M}-{c:%Y%m%d:%H%M}")
    return ";".join(trading), ";".join(liquid)
