"""The daily bar update against the simulator's history, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from support.clocks import WallClock
from support.memory_events import MemorySink
from support.waiting import wait_until
from tradingbot.broker import Bar, BrokerStatus
from tradingbot.events import SYSTEM, Severity
from tradingbot.events.recorder import EventRecorder
from tradingbot.history import BarUpdateFailed, FetchBars, recent_bars, update_bars
from tradingbot.scheduler import EXCHANGE_TZ, nyse
from tradingbot.scheduler.actor import SchedulerActor, SchedulerSettings
from tradingbot.scheduler.shipped import BAR_UPDATE, bar_update
from tradingbot.scheduler.status import SchedulerStatus
from tradingbot.storage import Database
from tradingbot.supervision import SupervisionTree, supervisor, worker

CALENDAR = nyse()
# The latest session that has closed: the simulator's history covers it.
DAY = CALENDAR.session_on_or_before(datetime.now(EXCHANGE_TZ).date() - timedelta(days=1))
OPEN, CLOSE = CALENDAR.open_at(DAY), CALENDAR.close_at(DAY)
SESSION_MINUTES = int((CLOSE - OPEN).total_seconds()) // 60


class Recording:
    """Passes requests to the broker, remembering each one; fails the first ``failures``."""

    def __init__(self, fetch: FetchBars, failures: int = 0) -> None:
        self._fetch = fetch
        self._failures = failures
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, symbol: str, *, bar_size: str, duration: str, end: datetime, use_rth: bool
    ) -> list[Bar]:
        self.calls.append({"symbol": symbol, "bar_size": bar_size, "duration": duration})
        if self._failures > 0:
            self._failures -= 1
            raise TimeoutError(f"{symbol} bars: no answer from the gateway within 30 s")
        return self._fetch(symbol, bar_size=bar_size, duration=duration, end=end, use_rth=use_rth)


def test_the_session_bars_of_each_symbol_are_stored_once(
    database: Database, fetch: FetchBars
) -> None:
    """The update stores each symbol's one-minute bars from the open to the close and its daily
    bars up to the session; a second run of the same date changes no row count."""
    result = update_bars(database, fetch, ["AAPL", "MSFT", "AAPL"], DAY, CALENDAR)
    assert list(result.stored) == ["AAPL", "MSFT"]
    assert result.failed == {}
    minutes = database.bars.between("AAPL", "1 min", OPEN, CLOSE)
    assert len(minutes) == SESSION_MINUTES
    assert minutes[0].start == OPEN
    assert minutes[-1].start == CLOSE - timedelta(minutes=1)
    daily = database.bars.recent("AAPL", 400, "1 day")
    assert daily[-1].start == datetime.combine(DAY, time(0), UTC)
    assert len(daily) > 300  # a first run backfills a year
    count = database.bars.count()
    again = update_bars(database, fetch, ["AAPL", "MSFT"], DAY, CALENDAR)
    assert again.failed == {}
    assert database.bars.count() == count
    assert f"{DAY}: stored" in str(result)


def test_a_symbol_the_gateway_does_not_know_is_one_warning_event_and_the_rest_is_stored(
    database: Database, fetch: FetchBars
) -> None:
    """An unknown symbol on the watchlist is one WARNING event naming it (a rerun does not add a
    second one) and is listed in the outcome; the other symbols are stored."""
    sink = MemorySink()
    recorder = EventRecorder(sink)
    for _ in range(2):
        result = update_bars(
            database, fetch, ["NOSUCHSYM", "IBM"], DAY, CALENDAR, recorder=recorder
        )
    assert list(result.stored) == ["IBM"]
    assert "unknown symbol 'NOSUCHSYM'" in result.failed["NOSUCHSYM"]
    assert "failed: NOSUCHSYM (UnknownSymbol" in str(result)
    events = {e.id: e for e in sink.events}
    [event] = events.values()
    assert (event.type, event.severity) == (SYSTEM, Severity.WARNING)
    assert "NOSUCHSYM" in event.message


def test_a_transient_failure_is_retried_within_the_run(
    database: Database, fetch: FetchBars
) -> None:
    """A request the gateway did not answer is retried after a pause, and the symbol is stored."""
    flaky, pauses = Recording(fetch, failures=2), []
    result = update_bars(database, flaky, ["AAPL"], DAY, CALENDAR, sleep=pauses.append)
    assert result.failed == {}
    assert result.stored["AAPL"] > SESSION_MINUTES
    assert pauses == [2.0, 4.0]


def test_a_symbol_failing_every_attempt_fails_the_run(database: Database, fetch: FetchBars) -> None:
    """When no symbol could be stored the run fails naming them, so the job shows as failed."""
    dead = Recording(fetch, failures=99)
    with pytest.raises(BarUpdateFailed, match="failed: AAPL \\(TimeoutError"):
        update_bars(database, dead, ["AAPL"], DAY, CALENDAR, sleep=lambda s: None)
    assert len(dead.calls) == 3
    assert database.bars.count() == 0


def test_after_a_first_run_only_the_missing_days_are_asked_for(
    database: Database, fetch: FetchBars
) -> None:
    """A first run asks for a year of daily bars; the next session's run asks only for the days
    since the last stored daily bar."""
    earlier = CALENDAR.session_on_or_before(DAY - timedelta(days=1))
    first = Recording(fetch)
    update_bars(database, first, ["AAPL"], earlier, CALENDAR)
    assert [c["duration"] for c in first.calls if c["bar_size"] == "1 day"] == ["1 Y"]
    second = Recording(fetch)
    update_bars(database, second, ["AAPL"], DAY, CALENDAR)
    gap = (DAY - earlier).days
    assert [c["duration"] for c in second.calls if c["bar_size"] == "1 day"] == [f"{gap + 1} D"]


def test_recent_bars_read_the_stored_minutes_as_broker_bars(
    database: Database, fetch: FetchBars
) -> None:
    """A strategy's warm-up reads the latest stored minutes as the same bars a subscription
    delivers: one minute long, oldest first, ending at the session's last minute."""
    update_bars(database, fetch, ["AAPL"], DAY, CALENDAR)
    bars = recent_bars(database, "AAPL", 30)
    assert len(bars) == 30
    assert all(b.seconds == 60 and b.symbol == "AAPL" for b in bars)
    assert bars[-1].start == CLOSE - timedelta(minutes=1)
    [daily] = recent_bars(database, "AAPL", 1, "1 day")
    assert daily.seconds == 86400
    with pytest.raises(ValueError, match="bar_size"):
        recent_bars(database, "AAPL", 1, "1 fortnight")


def test_the_scheduler_runs_the_bar_update_at_1605_once(
    database: Database,
    fetch: FetchBars,
    broker_tree: tuple[SupervisionTree, BrokerStatus],
) -> None:
    """At 16:05 ET the scheduler runs the bar update once for the session, on its own thread,
    and records its outcome."""
    clock = WallClock(datetime.combine(DAY, time(16, 0), EXCHANGE_TZ))
    status = SchedulerStatus()
    job = bar_update(database, CALENDAR, lambda: ["AAPL"], fetch)
    tree = SupervisionTree(
        supervisor(
            "root",
            [
                worker(
                    "scheduler",
                    lambda: SchedulerActor(
                        [job],
                        database,
                        CALENDAR,
                        status,
                        SchedulerSettings(owner=str(uuid.uuid4()), tick_s=0.01),
                        now=clock,
                    ),
                )
            ],
        ),
        listeners=(),
    )
    tree.start()
    try:
        at = datetime.combine(DAY, time(16, 5), EXCHANGE_TZ)
        assert status.get(BAR_UPDATE).next.at == at  # type: ignore[union-attr]
        clock.set(at)
        wait_until(
            lambda: (
                (s := status.get(BAR_UPDATE)) is not None
                and s.last is not None
                and s.last.status == "ok"
            ),
            message="the bar update run",
        )
        record = database.job_runs.get(BAR_UPDATE, DAY.isoformat())
        assert record is not None
        assert record.outcome is not None
        assert record.outcome.startswith(f"{DAY}: stored")
        assert len(database.bars.between("AAPL", "1 min", OPEN, CLOSE)) == SESSION_MINUTES
        assert status.get(BAR_UPDATE).to_dict()["actor"] == "scheduler"  # type: ignore[union-attr]
    finally:
        tree.stop()


def test_symbols_not_reached_within_the_budget_are_failed_as_not_fetched(
    database: Database, fetch: FetchBars
) -> None:
    """When the run's time budget runs out, the symbols not reached are named as not fetched
    and nothing more is asked of the gateway."""
    ticks = iter(range(100))
    recording = Recording(fetch)
    result = update_bars(
        database,
        recording,
        ["AAPL", "MSFT", "IBM"],
        DAY,
        CALENDAR,
        budget_s=1.5,
        clock=lambda: float(next(ticks)),
    )
    assert list(result.stored) == ["AAPL"]
    assert result.failed == {
        "MSFT": "not fetched: the run's 1.5 s budget ran out",
        "IBM": "not fetched: the run's 1.5 s budget ran out",
    }
    assert {c["symbol"] for c in recording.calls} == {"AAPL"}
