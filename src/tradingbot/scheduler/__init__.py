"""The trading calendar: NYSE sessions, jobs as data, durable once-per-date runs."""

from tradingbot.scheduler.calendar import EXCHANGE_TZ, TradingCalendar, nyse
from tradingbot.scheduler.jobs import (
    EVERY_DAY,
    SESSIONS,
    AfterClose,
    At,
    Every,
    Job,
    Slot,
    last_slot,
    next_slot,
    slot_for,
    slots_between,
)

__all__ = [
    "EVERY_DAY",
    "EXCHANGE_TZ",
    "SESSIONS",
    "AfterClose",
    "At",
    "Every",
    "Job",
    "Slot",
    "TradingCalendar",
    "last_slot",
    "next_slot",
    "nyse",
    "slot_for",
    "slots_between",
]
