"""The restart window's phase machine on a hand-moved clock: pause, window, resume, overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradingbot.config.window import parse_daily_window
from tradingbot.trading.restart_window import Phase, RestartPlan, RestartTracker, WindowTimes

NY_WINDOW = parse_daily_window("23:45-00:45 America/New_York")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _never(times: WindowTimes) -> bool:
    return False


def _always(times: WindowTimes) -> bool:
    return True


def _tracker(lead_s: float = 120.0, grace_s: float = 900.0) -> RestartTracker:
    return RestartTracker(RestartPlan(NY_WINDOW, lead_s=lead_s, grace_s=grace_s))


def test_orders_pause_at_the_lead_and_resume_only_when_ready() -> None:
    """A winter night: open until 04:43 UTC, paused, the window at 04:45, waiting after
    05:45 while not ready, open again once the broker is synced and reconciled."""
    tracker = _tracker()
    assert tracker.step(_utc(2026, 12, 8, 4, 42, 59), _always) == []
    assert tracker.phase is Phase.OPEN
    assert tracker.step(_utc(2026, 12, 8, 4, 43), _always) == [Phase.PAUSED]
    assert tracker.step(_utc(2026, 12, 8, 4, 45), _always) == [Phase.WINDOW]
    assert tracker.step(_utc(2026, 12, 8, 5, 45), _never) == [Phase.RESUMING]
    assert tracker.phase.gated
    assert tracker.step(_utc(2026, 12, 8, 5, 50), _never) == []
    assert tracker.step(_utc(2026, 12, 8, 5, 51), _always) == [Phase.OPEN]
    assert not tracker.phase.gated


def test_ready_is_not_asked_before_the_window_ends() -> None:
    """A broker that is synced and reconciled during the window does not end it early."""
    tracker = _tracker()
    tracker.step(_utc(2026, 12, 8, 4, 44), _always)
    assert tracker.step(_utc(2026, 12, 8, 5, 44, 59), _always) == [Phase.WINDOW]
    assert tracker.phase is Phase.WINDOW


def test_a_missed_deadline_is_overdue_until_ready() -> None:
    """Not back 900 s after the window: overdue (the alert); it still resumes once ready."""
    tracker = _tracker()
    tracker.step(_utc(2026, 12, 8, 5, 0), _never)
    assert tracker.phase is Phase.WINDOW
    assert tracker.step(_utc(2026, 12, 8, 5, 59, 59), _never) == [Phase.RESUMING]
    assert tracker.step(_utc(2026, 12, 8, 6, 0), _never) == [Phase.OVERDUE]
    assert tracker.step(_utc(2026, 12, 8, 6, 30), _never) == []
    assert tracker.step(_utc(2026, 12, 8, 6, 31), _always) == [Phase.OPEN]


def test_after_resuming_the_next_pause_is_the_next_night() -> None:
    """Resumed inside the grace period, the same window does not pause again; the next
    pause is the following night at 23:43 New York time."""
    tracker = _tracker()
    tracker.step(_utc(2026, 12, 8, 4, 43), _never)
    assert tracker.step(_utc(2026, 12, 8, 5, 46), _always) == [
        Phase.WINDOW,
        Phase.RESUMING,
        Phase.OPEN,
    ]
    assert tracker.step(_utc(2026, 12, 8, 5, 47), _always) == []
    assert tracker.times is not None
    assert tracker.times.pause_at == _utc(2026, 12, 9, 4, 43)


def test_a_start_inside_the_window_pauses_at_once() -> None:
    """A process started during the window closes the gate at its first step."""
    tracker = _tracker()
    assert tracker.step(_utc(2026, 12, 8, 5, 10), _always) == [Phase.WINDOW]
    late = _tracker()
    assert late.step(_utc(2026, 12, 8, 5, 50), _never) == [Phase.RESUMING]


def test_a_stalled_clock_reader_passes_every_phase_in_order() -> None:
    """A step long after the last one enters each phase it skipped, in order; a window
    that ended entirely while nobody looked is not paused for afterwards."""
    tracker = _tracker()
    tracker.step(_utc(2026, 12, 8, 4, 0), _never)
    assert tracker.step(_utc(2026, 12, 8, 6, 5), _never) == []
    assert tracker.phase is Phase.OPEN
    paused = _tracker()
    paused.step(_utc(2026, 12, 8, 4, 44), _never)
    assert paused.step(_utc(2026, 12, 8, 6, 5), _never) == [
        Phase.WINDOW,
        Phase.RESUMING,
        Phase.OVERDUE,
    ]


def test_the_pause_follows_new_york_time_across_the_dst_switch() -> None:
    """The pause is 04:43 UTC on the Saturday before the March switch and 03:43 UTC on
    the Monday after it (23:43 New York time both nights)."""
    plan = RestartPlan(NY_WINDOW, lead_s=120.0, grace_s=900.0)
    assert plan.times(_utc(2026, 3, 7, 12)).pause_at == _utc(2026, 3, 8, 4, 43)
    assert plan.times(_utc(2026, 3, 9, 12)).pause_at == _utc(2026, 3, 10, 3, 43)
    times = plan.times(_utc(2026, 3, 10, 3, 50))
    assert (times.start, times.end) == (_utc(2026, 3, 10, 3, 45), _utc(2026, 3, 10, 4, 45))
    assert times.deadline == times.end + timedelta(seconds=900)


def test_a_window_inside_one_day_pauses_and_resumes_the_same_day() -> None:
    """A window not spanning midnight (02:00-03:00 UTC) works the same way."""
    plan = RestartPlan(parse_daily_window("02:00-03:00 UTC"), lead_s=0.0, grace_s=60.0)
    tracker = RestartTracker(plan)
    assert tracker.step(_utc(2026, 12, 8, 1, 59, 59), _always) == []
    assert tracker.step(_utc(2026, 12, 8, 2, 0), _always) == [Phase.WINDOW]
    assert tracker.step(_utc(2026, 12, 8, 3, 0), _always) == [Phase.RESUMING, Phase.OPEN]
    assert tracker.times is not None
    assert tracker.times.start == _utc(2026, 12, 9, 2, 0)


def test_each_phase_is_reported_with_the_window_it_belongs_to() -> None:
    """The resume names the window it ends, not the next night's (the events say which)."""
    tracker = _tracker()
    tracker.step(_utc(2026, 12, 8, 4, 50), _never)
    [(resuming, window), (opened, ended)] = tracker.advance(_utc(2026, 12, 8, 5, 46), _always)
    assert (resuming, opened) == (Phase.RESUMING, Phase.OPEN)
    assert window.start == ended.start == _utc(2026, 12, 8, 4, 45)
