"""The daily bar update: each watchlist symbol's session bars from the gateway into the
``bars`` table (issue #15), run by the scheduler at 16:05 ET on trading days.

For each symbol, one request for the session's one-minute bars (open to close, regular
hours) and one for daily bars: the session's own, and on a first run or after a gap
every session since the last stored one (at most :data:`BACKFILL_MAX_DAYS`). A symbol
whose request fails transiently (no answer, not synced, the connection lost, the gateway
refusing for pacing) is retried within the run; one that still fails (or that the
gateway does not know) is one WARNING event, with an id derived from the date and the
symbol (a rerun does not repeat it), and is named in the outcome. A run in which every
symbol failed raises, so the job is marked failed and ``run bar_update DATE`` redoes it.
A run keeps within its time budget: symbols not reached when it runs out are failed as
"not fetched" (a long watchlist against a gateway that times out every request).
Storing is an upsert, so a rerun of a date never duplicates a bar.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

import structlog

from tradingbot.broker import (
    Bar,
    BarsUnavailable,
    BrokerConnectionError,
    BrokerNotReady,
)
from tradingbot.events import SYSTEM, Severity
from tradingbot.events.recorder import EventRecorder
from tradingbot.storage import BarRecord, Database

log = structlog.get_logger(__name__)

MINUTE, DAY = "1 min", "1 day"
BACKFILL_MAX_DAYS = 365
TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,  # the gateway (or the broker actor) did not answer in time
    BrokerNotReady,
    BrokerConnectionError,
    BarsUnavailable,
)
EVENT_NAMESPACE = uuid.UUID("6f2b8f0e-63c1-4c55-9a52-0d6d1b1f8a10")


class FetchBars(Protocol):
    """How bars are asked for (``historical_bars`` bound to the broker)."""

    def __call__(
        self,
        symbol: str,
        *,
        bar_size: str,
        duration: str,
        end: datetime,
        use_rth: bool,
    ) -> list[Bar]: ...


class Sessions(Protocol):
    """The exchange calendar, as far as the update needs it."""

    def open_at(self, day: date) -> datetime: ...

    def close_at(self, day: date) -> datetime: ...


class BarUpdateFailed(RuntimeError):
    """Not one symbol's bars could be stored."""


@dataclass(frozen=True, slots=True)
class BarUpdateResult:
    """What a run stored (bars per symbol) and which symbols failed, with why."""

    day: date
    stored: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.stored and not self.failed:
            return f"{self.day}: no symbols on the watchlist"
        text = f"{self.day}: stored {sum(self.stored.values())} bars of {len(self.stored)} symbols"
        if self.failed:
            text += "; failed: " + "; ".join(f"{s} ({why})" for s, why in self.failed.items())
        return text


def update_bars(
    database: Database,
    fetch: FetchBars,
    symbols: Sequence[str],
    day: date,
    calendar: Sessions,
    *,
    recorder: EventRecorder | None = None,
    attempts: int = 3,
    backoff_s: float = 2.0,
    budget_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> BarUpdateResult:
    """Fetch and store session ``day``'s bars of each of ``symbols`` (see the module);
    no new request starts after ``budget_s`` seconds."""
    result = BarUpdateResult(day)
    opened, closed = calendar.open_at(day), calendar.close_at(day)
    deadline = None if budget_s is None else clock() + budget_s
    for symbol in dict.fromkeys(symbols):  # each once, in the watchlist's order
        for attempt in range(1, attempts + 1):
            if deadline is not None and clock() >= deadline:
                result.failed[symbol] = f"not fetched: the run's {budget_s:g} s budget ran out"
                break
            try:
                bars = _session_bars(database, fetch, symbol, day, opened, closed)
                result.stored[symbol] = database.bars.upsert(bars)
                break
            except TRANSIENT as exc:
                why = f"{type(exc).__name__}: {exc}"
                if attempt == attempts:
                    result.failed[symbol] = why
                    break
                log.info("bar_update_retry", symbol=symbol, attempt=attempt, error=why)
                sleep(backoff_s * attempt)
            except Exception as exc:  # noqa: BLE001 - unknown symbol, storage: reported below
                result.failed[symbol] = f"{type(exc).__name__}: {exc}"
                break
    for symbol, why in result.failed.items():
        log.warning("bar_update_symbol_failed", symbol=symbol, day=str(day), error=why)
        if recorder is not None:
            recorder.record(
                SYSTEM,
                f"bar update {day}: {symbol} failed: {why}",
                severity=Severity.WARNING,
                context={"job": "bar_update", "day": str(day), "symbol": symbol, "error": why},
                event_id=uuid.uuid5(EVENT_NAMESPACE, f"bar_update:{day}:{symbol}"),
                log_line=False,
            )
    if result.failed and not result.stored:
        raise BarUpdateFailed(str(result))
    return result


def _session_bars(
    database: Database,
    fetch: FetchBars,
    symbol: str,
    day: date,
    opened: datetime,
    closed: datetime,
) -> list[BarRecord]:
    seconds = int((closed - opened).total_seconds())
    minutes = fetch(symbol, bar_size=MINUTE, duration=f"{seconds} S", end=closed, use_rth=True)
    days = fetch(
        symbol, bar_size=DAY, duration=_daily_span(database, symbol, day), end=closed, use_rth=True
    )
    return [
        *(_record(b, MINUTE) for b in minutes if opened <= b.start < closed),
        *(_record(b, DAY) for b in days if b.start.date() <= day),
    ]


def _daily_span(database: Database, symbol: str, day: date) -> str:
    """``1 D`` when yesterday's daily bar is stored; back to the last stored one (or a
    year) after a gap or on a first run."""
    stored = database.bars.recent(symbol, 1, DAY)
    days = BACKFILL_MAX_DAYS if not stored else (day - stored[-1].start.date()).days
    if days > BACKFILL_MAX_DAYS - 5:
        return "1 Y"
    return f"{max(1, days + 1)} D"


def _record(bar: Bar, bar_size: str) -> BarRecord:
    return BarRecord(
        symbol=bar.symbol,
        bar_size=bar_size,
        start=bar.start,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        wap=bar.wap,
    )
