"""Session handlers for history, real-time bars and P&L, and their streamed updates.

- reqHistoricalData (20): TRADES / MIDPOINT, bar sizes 1 min .. 1 day, durations in
  S/D/W/M/Y (intraday up to 30 days, daily up to the history's head); ``useRTH=0``
  adds the calendar's extended hours (pre-market and after-hours); ``keepUpToDate``
  then streams the last bar (historicalDataUpdate 90) on every price tick.
- reqHeadTimeStamp (87): the first instant with history (of the extended hours when
  ``useRTH=0``).
- reqRealTimeBars (50): 5-second bars (``GatewaySimulator.realtime_bar_s``) of the
  streamed prices.
- reqPnL (92) / reqPnLSingle (94): account and position P&L, sent at once and on every
  tick; daily P&L counts from the start of the current session.
Anything the simulator cannot serve is error 162 (historical data) or 200 (contract).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .barwire import bars_payload, daily_payload, update_fields
from .calendar import NEW_YORK
from .model import Instrument
from .protocol import Field

if TYPE_CHECKING:
    from .session import Session

__all__ = ["HANDLERS", "Streams", "push_streams"]

HISTORICAL_ERROR = 162
NO_DEFINITION = "No security definition has been found for the request"
WHAT_TO_SHOW = ("TRADES", "MIDPOINT")
_BAR = re.compile(r"^(\d+)\s+(min|mins|hour|hours|day)$")
_BAR_MINUTES = {1, 2, 3, 5, 10, 15, 20, 30, 60, 120, 180, 240, 480, 1440}
_DURATION = re.compile(r"^(\d+)\s*([SDWMY])$")
_DURATION_DAYS = {"S": 1 / 86400, "D": 1, "W": 7, "M": 30, "Y": 365}
MAX_INTRADAY_DAYS = 30


@dataclass(slots=True)
class _RealTime:
    symbol: str
    started: float
    bar: list[float] = field(default_factory=list)  # open, high, low, close


@dataclass(slots=True)
class Streams:
    """A session's subscriptions: updating history, real-time bars, P&L."""

    history: dict[int, tuple[str, int, int, bool]] = field(default_factory=dict)
    realtime: dict[int, _RealTime] = field(default_factory=dict)
    pnl: dict[int, str] = field(default_factory=dict)
    pnl_single: dict[int, tuple[str, int]] = field(default_factory=dict)

    def symbols(self) -> set[str]:
        """Symbols whose prices these subscriptions follow."""
        return {h[0] for h in self.history.values()} | {r.symbol for r in self.realtime.values()}


def _field(f: list[str], i: int) -> str:
    return f[i] if i < len(f) else ""


def _int(text: str) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def _instrument(s: Session, f: list[str], req_id: int, at: int) -> Instrument | None:
    inst = s.sim.brokerage.lookup(
        symbol=_field(f, at + 1),
        con_id=_int(_field(f, at)),
        exchange=_field(f, at + 7),
        currency=_field(f, at + 9),
    )
    if inst is None or _field(f, at + 2) not in ("STK", ""):
        s.send([4, 2, req_id, 200, NO_DEFINITION, ""])
        return None
    return inst


def _hist_error(s: Session, req_id: int, text: str) -> None:
    s.send(
        [4, 2, req_id, HISTORICAL_ERROR, f"Historical Market Data Service error message:{text}", ""]
    )


def parse_end(text: str, now: datetime) -> datetime | None:
    """``""`` (now), ``yyyymmdd hh:mm:ss [zone]`` or ``yyyymmdd-hh:mm:ss`` (UTC)."""
    text = text.strip()
    if not text:
        return now
    zone = UTC
    if "-" in text[8:9]:
        text = text.replace("-", " ", 1)
    parts = text.split(" ")
    if len(parts) == 3:
        from zoneinfo import ZoneInfo

        try:
            zone = UTC if parts[2] == "UTC" else ZoneInfo(parts[2])  # type: ignore[assignment]
        except (ValueError, KeyError):
            return None
    try:
        return datetime.strptime(" ".join(parts[:2]), "%Y%m%d %H:%M:%S").replace(tzinfo=zone)
    except ValueError:
        return None


def bar_minutes(text: str) -> int | None:
    """Minutes of a bar size such as ``1 min``, ``2 hours``, ``1 day`` (None if unknown)."""
    m = _BAR.match(text.strip())
    if m is None:
        return None
    n, unit = int(m.group(1)), m.group(2)
    minutes = n * {"min": 1, "mins": 1, "hour": 60, "hours": 60, "day": 1440}[unit]
    return minutes if minutes in _BAR_MINUTES else None


def duration(text: str) -> timedelta | None:
    """A duration such as ``3600 S``, ``5 D``, ``2 W``, ``6 M``, ``1 Y``."""
    m = _DURATION.match(text.strip())
    if m is None or int(m.group(1)) <= 0:
        return None
    return timedelta(days=int(m.group(1)) * _DURATION_DAYS[m.group(2)])


def req_historical_data(s: Session, f: list[str]) -> None:
    """reqHistoricalData: bars at once, then updates when ``keepUpToDate``."""
    req_id = _int(_field(f, 1))
    inst = _instrument(s, f, req_id, 2)
    if inst is None:
        return
    now = s.sim.brokerage.now()
    end = parse_end(_field(f, 15), now)
    minutes = bar_minutes(_field(f, 16))
    span = duration(_field(f, 17))
    rth = _field(f, 18) != "0"
    what = _field(f, 19).upper()
    keep = _field(f, 21) == "1"
    if end is None:
        return _hist_error(s, req_id, f"bad end date/time {_field(f, 15)!r}")
    if minutes is None:
        return _hist_error(s, req_id, f"bar size {_field(f, 16)!r} is not supported")
    if span is None:
        return _hist_error(s, req_id, f"bad duration {_field(f, 17)!r}")
    if what not in WHAT_TO_SHOW:
        return _hist_error(s, req_id, f"whatToShow {what!r} is not supported")
    if minutes < 1440 and span > timedelta(days=MAX_INTRADAY_DAYS):
        return _hist_error(s, req_id, "duration too long for intraday bars")
    end = min(end, now + timedelta(minutes=1))
    if minutes >= 1440 and span < timedelta(days=1):
        span = timedelta(days=1)
    history = s.sim.brokerage.history
    bars = history.bars(inst.symbol, end - span, end, minutes, rth)
    format_date = _int(_field(f, 20)) or 1
    stamp = "%Y%m%d %H:%M:%S"
    head: list[Field] = [17, req_id, (end - span).strftime(stamp), end.strftime(stamp), len(bars)]
    # The bars go in pre-encoded: this message can hold 10,000s of fields.
    midpoint = what == "MIDPOINT"
    if minutes >= 1440:
        payload = daily_payload(history, inst.symbol, bars, midpoint=midpoint, rth=rth)
    else:
        payload = bars_payload(bars, minutes, format_date, midpoint=midpoint)
    s.send(head, payload)
    if keep:
        s.streams.history[req_id] = (inst.symbol, minutes, format_date, rth)


def cancel_historical_data(s: Session, f: list[str]) -> None:
    """cancelHistoricalData: stop the updates (no answer)."""
    s.streams.history.pop(_int(_field(f, 2)), None)


def req_head_timestamp(s: Session, f: list[str]) -> None:
    """reqHeadTimeStamp: the first instant with history."""
    req_id = _int(_field(f, 1))
    inst = _instrument(s, f, req_id, 2)
    if inst is not None:
        head = s.sim.brokerage.history.head(inst.symbol, _field(f, 15) != "0")
        if _field(f, 17) == "2":
            s.send([88, req_id, int(head.timestamp())])
        else:  # the gateway's local time (New York here)
            s.send([88, req_id, head.astimezone(NEW_YORK).strftime("%Y%m%d-%H:%M:%S")])


def req_real_time_bars(s: Session, f: list[str]) -> None:
    """reqRealTimeBars: 5-second bars of the streamed prices from now on."""
    req_id = _int(_field(f, 2))
    inst = _instrument(s, f, req_id, 3)
    if inst is None:
        return
    if _field(f, 16).upper() not in (*WHAT_TO_SHOW, "BID", "ASK"):
        return _hist_error(s, req_id, f"whatToShow {_field(f, 16)!r} is not supported")
    s.streams.realtime[req_id] = _RealTime(inst.symbol, s.sim.loop_time())


def cancel_real_time_bars(s: Session, f: list[str]) -> None:
    """cancelRealTimeBars: stop the bars (no answer)."""
    s.streams.realtime.pop(_int(_field(f, 2)), None)


def req_pnl(s: Session, f: list[str]) -> None:
    """reqPnL: daily, unrealized and realized P&L of an account, now and on each tick."""
    req_id, account = _int(_field(f, 1)), _field(f, 2)
    broker = s.sim.brokerage
    if account not in broker.accounts:
        s.send([4, 2, req_id, 321, f"Error validating request: invalid account {account}", ""])
        return
    s.streams.pnl[req_id] = account
    _send_pnl(s, req_id, account)


def req_pnl_single(s: Session, f: list[str]) -> None:
    """reqPnLSingle: one position's P&L, now and on each tick."""
    req_id, account, con_id = _int(_field(f, 1)), _field(f, 2), _int(_field(f, 4))
    if account not in s.sim.brokerage.accounts or s.sim.brokerage.lookup(con_id=con_id) is None:
        s.send([4, 2, req_id, 200, NO_DEFINITION, ""])
        return
    s.streams.pnl_single[req_id] = (account, con_id)
    _send_pnl_single(s, req_id, account, con_id)


def cancel_pnl(s: Session, f: list[str]) -> None:
    """cancelPnL: stop (no answer)."""
    s.streams.pnl.pop(_int(_field(f, 1)), None)


def cancel_pnl_single(s: Session, f: list[str]) -> None:
    """cancelPnLSingle: stop (no answer)."""
    s.streams.pnl_single.pop(_int(_field(f, 1)), None)


def _no_answer(s: Session, f: list[str]) -> None:
    """cancelHeadTimeStamp: nothing pending to cancel (the answer was immediate)."""


def _send_pnl(s: Session, req_id: int, account: str) -> None:
    daily, unrealized, realized = s.sim.brokerage.pnl(account)
    s.send([94, req_id, round(daily, 2), round(unrealized, 2), round(realized, 2)])


def _send_pnl_single(s: Session, req_id: int, account: str, con_id: int) -> None:
    broker = s.sim.brokerage
    pos = broker.positions.get((account, con_id))
    if pos is None:
        s.send([95, req_id, 0, 0.0, 0.0, 0.0, 0.0])
        return
    daily, unrealized, realized, value = broker.position_pnl(pos)
    s.send(
        [
            95,
            req_id,
            pos.quantity,
            round(daily, 2),
            round(unrealized, 2),
            round(realized, 2),
            round(value, 2),
        ]
    )


def push_streams(s: Session) -> None:
    """One round of updates for every subscription of ``s`` (called on each tick)."""
    broker = s.sim.brokerage
    now = broker.now()
    for req_id, (symbol, minutes, format_date, rth) in list(s.streams.history.items()):
        span = timedelta(minutes=minutes if minutes < 1440 else 2 * 1440)
        bars = broker.history.bars(symbol, now - span, now + timedelta(minutes=1), minutes, rth)
        if len(bars):
            s.send(update_fields(req_id, bars.bar(-1), minutes, format_date))
    loop_now = s.sim.loop_time()
    for req_id, rt in list(s.streams.realtime.items()):
        price = broker.prices.price(rt.symbol)
        if not rt.bar:
            rt.bar = [price, price, price, price]
        else:
            rt.bar = [rt.bar[0], max(rt.bar[1], price), min(rt.bar[2], price), price]
        if loop_now - rt.started >= s.sim.realtime_bar_s:
            o, h, lo, c = rt.bar
            start = int(now.timestamp()) - int(s.sim.realtime_bar_s)
            s.send([50, 3, req_id, start, o, h, lo, c, 0, round((h + lo + c) / 3, 4), 1])
            rt.started, rt.bar = loop_now, []
    for req_id, account in list(s.streams.pnl.items()):
        _send_pnl(s, req_id, account)
    for req_id, (account, con_id) in list(s.streams.pnl_single.items()):
        _send_pnl_single(s, req_id, account, con_id)


HANDLERS: dict[int, Callable[[Session, list[str]], None]] = {
    20: req_historical_data,
    25: cancel_historical_data,
    50: req_real_time_bars,
    51: cancel_real_time_bars,
    87: req_head_timestamp,
    90: _no_answer,
    92: req_pnl,
    93: cancel_pnl,
    94: req_pnl_single,
    95: cancel_pnl_single,
}
