"""A daily window of local time, such as the IB Gateway restart (``23:45-00:45 America/New_York``).

:class:`DailyWindow` is the parsed value of ``TRADINGBOT_IB_RESTART_WINDOW``: a start
and an end of local wall-clock time in a named zone. The end may be on the next day
(the window spans midnight). :meth:`DailyWindow.occurrence` turns it into UTC instants
for one local date, DST-correct through ``zoneinfo``: on the night the clocks change a
window is an hour shorter or longer in real time, as the gateway's own clock is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EXAMPLE = "23:45-00:45 America/New_York"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?"
_WINDOW = re.compile(rf"(?P<start>{_TIME})\s*-\s*(?P<end>{_TIME})\s+(?P<zone>\S+)")


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """Every day from ``start`` to ``end`` (local time in ``zone``); ``end <= start``
    means the end is on the next day."""

    start: dt_time
    end: dt_time
    zone: ZoneInfo

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)} {self.zone.key}"

    @property
    def spans_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def nominal_s(self) -> float:
        """Its length on a day without a clock change, in seconds."""
        start = datetime.combine(date(2000, 1, 1), self.start)
        end = datetime.combine(date(2000, 1, 2 if self.spans_midnight else 1), self.end)
        return (end - start).total_seconds()

    def occurrence(self, day: date) -> tuple[datetime, datetime]:
        """The window that starts on local date ``day``, as (start, end) in UTC."""
        start = datetime.combine(day, self.start, self.zone)
        end_day = day + timedelta(days=1) if self.spans_midnight else day
        end = datetime.combine(end_day, self.end, self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def local_date(self, instant: datetime) -> date:
        """The local date of ``instant`` in the window's zone."""
        return instant.astimezone(self.zone).date()


def parse_daily_window(text: str) -> DailyWindow:
    """``HH:MM[:SS]-HH:MM[:SS] Zone`` as a :class:`DailyWindow`; ``ValueError`` otherwise
    (the message says what is expected)."""
    expected = f"a daily window like {EXAMPLE} (HH:MM[:SS]-HH:MM[:SS] and an IANA time zone)"
    match = _WINDOW.fullmatch(text.strip())
    if match is None:
        raise ValueError(expected)
    try:
        start = dt_time.fromisoformat(_padded(match["start"]))
        end = dt_time.fromisoformat(_padded(match["end"]))
    except ValueError:
        raise ValueError(expected) from None
    try:
        zone = ZoneInfo(match["zone"])
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder
        raise ValueError(f"{expected}; unknown time zone {match['zone']!r}") from None
    if start == end:
        raise ValueError(f"{expected}; start and end must differ")
    return DailyWindow(start=start, end=end, zone=zone)


def _padded(text: str) -> str:
    return text if len(text.split(":")[0]) == 2 else "0" + text


def _clock(at: dt_time) -> str:
    return at.strftime("%H:%M:%S" if at.second else "%H:%M")
