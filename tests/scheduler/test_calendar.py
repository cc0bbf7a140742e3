"""The trading calendar and job slots: holidays, early closes and DST, with a pinned clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from tradingbot.scheduler import (
    EVERY_DAY,
    EXCHANGE_TZ,
    AfterClose,
    At,
    Every,
    Job,
    last_slot,
    next_slot,
    nyse,
    slot_for,
    slots_between,
)

SUMMARY = Job(
    name="daily_summary",
    rule=AfterClose(timedelta(minutes=30)),
    actor="notifier",
    message=lambda slot: slot,
)
BARS = Job(name="bar_update", rule=At(time(16, 5)), actor="broker", message=lambda slot: slot)
RETENTION = Job(
    name="event_retention",
    rule=At(time(3, 15)),
    days=EVERY_DAY,
    actor="event_logger",
    message=lambda slot: slot,
)


def et(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=EXCHANGE_TZ)


def fires(job: Job, first: date, last: date) -> list[datetime]:
    """The job's firing instants (New York time) from ``first`` to ``last`` inclusive."""
    start = et(first, 0) - timedelta(microseconds=1)
    end = et(last + timedelta(days=1), 0) - timedelta(microseconds=1)
    return [s.at.astimezone(EXCHANGE_TZ) for s in slots_between(job, start, end, nyse())]


def test_the_summary_fires_at_1630_local_on_both_sides_of_the_march_switch() -> None:
    """The 16:30 summary goes out at 16:30 New York time the week DST starts (2026-03-08)."""
    got = fires(SUMMARY, date(2026, 3, 5), date(2026, 3, 10))
    assert [(t.date(), t.hour, t.minute) for t in got] == [
        (date(2026, 3, 5), 16, 30),
        (date(2026, 3, 6), 16, 30),
        (date(2026, 3, 9), 16, 30),
        (date(2026, 3, 10), 16, 30),
    ]
    # The UTC instant moves by an hour across the switch, the local time does not.
    assert got[1].astimezone(UTC).hour == 21
    assert got[2].astimezone(UTC).hour == 20


def test_the_summary_fires_once_at_1630_local_in_the_november_switch_week() -> None:
    """The week DST ends (2026-11-01) the summary fires once a session, at 16:30 local."""
    got = fires(SUMMARY, date(2026, 10, 29), date(2026, 11, 3))
    assert [(t.date(), t.hour, t.minute) for t in got] == [
        (date(2026, 10, 29), 16, 30),
        (date(2026, 10, 30), 16, 30),
        (date(2026, 11, 2), 16, 30),
        (date(2026, 11, 3), 16, 30),
    ]
    assert got[1].astimezone(UTC).hour == 20
    assert got[2].astimezone(UTC).hour == 21


def test_a_daily_job_fires_once_on_each_switch_day_itself() -> None:
    """A 03:15 every-day job fires exactly once on the 23-hour and the 25-hour day."""
    spring = fires(RETENTION, date(2026, 3, 8), date(2026, 3, 8))
    autumn = fires(RETENTION, date(2026, 11, 1), date(2026, 11, 1))
    assert [(t.hour, t.minute) for t in spring] == [(3, 15)]
    assert [(t.hour, t.minute) for t in autumn] == [(3, 15)]


def test_an_interval_job_has_no_duplicate_slot_across_the_spring_gap() -> None:
    """An every-30-min job skips the missing hour on the spring-forward day, never doubles."""
    job = Job(
        name="probe",
        rule=Every(timedelta(minutes=30)),
        days=EVERY_DAY,
        actor="x",
        message=lambda slot: slot,
    )
    spring = fires(job, date(2026, 3, 8), date(2026, 3, 8))
    keys = [
        s.key for s in slots_between(job, et(date(2026, 3, 8), 0), et(date(2026, 3, 9), 0), nyse())
    ]
    assert len(keys) == len(set(keys))
    assert len(spring) == 46  # 48 half hours less the two that do not exist


def test_good_friday_has_no_summary_or_bar_update() -> None:
    """Good Friday (2026-04-03) is an NYSE holiday: no session jobs that day."""
    assert not nyse().is_session(date(2026, 4, 3))
    got = fires(SUMMARY, date(2026, 4, 2), date(2026, 4, 6))
    assert [t.date() for t in got] == [date(2026, 4, 2), date(2026, 4, 6)]
    assert [t.date() for t in fires(BARS, date(2026, 4, 2), date(2026, 4, 6))] == [
        date(2026, 4, 2),
        date(2026, 4, 6),
    ]


def test_thanksgiving_is_skipped_and_the_early_close_after_moves_the_summary_to_1330() -> None:
    """Thanksgiving 2026-11-26 is closed; the next day closes 13:00, the summary goes at 13:30."""
    got = fires(SUMMARY, date(2026, 11, 25), date(2026, 11, 30))
    assert [(t.date(), t.hour, t.minute) for t in got] == [
        (date(2026, 11, 25), 16, 30),
        (date(2026, 11, 27), 13, 30),
        (date(2026, 11, 30), 16, 30),
    ]
    assert nyse().is_early_close(date(2026, 11, 27))


def test_christmas_is_closed_and_christmas_eve_closes_early() -> None:
    """2026-12-25 has no summary; 2026-12-24 (a 13:00 close) has it at 13:30."""
    got = fires(SUMMARY, date(2026, 12, 24), date(2026, 12, 28))
    assert [(t.date(), t.hour, t.minute) for t in got] == [
        (date(2026, 12, 24), 13, 30),
        (date(2026, 12, 28), 16, 30),
    ]


def test_new_year_on_a_saturday_is_not_observed_on_the_friday_before() -> None:
    """2022-01-01 was a Saturday: NYSE traded Friday 2021-12-31 and reopened 2022-01-03."""
    got = fires(SUMMARY, date(2021, 12, 30), date(2022, 1, 4))
    assert [t.date() for t in got] == [
        date(2021, 12, 30),
        date(2021, 12, 31),
        date(2022, 1, 3),
        date(2022, 1, 4),
    ]


def test_new_year_on_a_sunday_is_observed_on_monday() -> None:
    """2023-01-01 was a Sunday: Monday 2023-01-02 was closed, the next summary is 01-03."""
    after = et(date(2022, 12, 30), 17)
    slot = next_slot(SUMMARY, after, nyse())
    assert slot.trading_date == date(2023, 1, 3)
    assert slot.at.astimezone(EXCHANGE_TZ).hour == 16


def test_the_last_slot_before_a_holiday_weekend_is_the_previous_session() -> None:
    """On Good Friday evening the latest summary slot is Thursday's, keyed by its date."""
    slot = last_slot(SUMMARY, et(date(2026, 4, 3), 20), nyse())
    assert slot is not None
    assert slot.key == "2026-04-02"
    assert slot.at == et(date(2026, 4, 2), 16, 30)


def test_next_slot_is_strictly_after_the_given_instant() -> None:
    """At exactly 16:30 the next summary is tomorrow's, not the one firing now."""
    day = date(2026, 3, 10)
    assert next_slot(SUMMARY, et(day, 16, 30), nyse()).trading_date == date(2026, 3, 11)
    assert next_slot(SUMMARY, et(day, 16, 29), nyse()).trading_date == day


def test_a_run_date_that_is_not_a_session_is_refused_with_the_reason() -> None:
    """Asking for the summary of Christmas Day names the problem instead of running."""
    with pytest.raises(ValueError, match="not a session"):
        slot_for(SUMMARY, date(2026, 12, 25), nyse())
    assert slot_for(RETENTION, date(2026, 12, 25), nyse()).key == "2026-12-25"
