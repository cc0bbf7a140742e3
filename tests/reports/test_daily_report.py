"""The daily summary's numbers against a hand-computed fixture, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from tradingbot.events.model import SIGNAL, SYSTEM, TRADE, Event, Severity
from tradingbot.notify import Renderer
from tradingbot.reports.daily import daily_report
from tradingbot.scheduler import EXCHANGE_TZ, nyse
from tradingbot.storage import Database

DAY = date(2026, 3, 10)


def et(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=EXCHANGE_TZ)


def trade(
    at: datetime, side: str, qty: float, symbol: str, price: float, realized: float | None = None
) -> Event:
    context: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "quantity": qty,
        "price": price,
        "commission": 1.0,
        "currency": "USD",
        "realized_pnl": realized,
        "exec_id": f"{symbol}-{at.isoformat()}",
        "order_ref": f"o-{symbol}",
        "exec_time": at.timestamp(),
    }
    # The event is stored a little after the execution: exec_time decides the day.
    return Event(
        type=TRADE,
        message=f"{side} {qty} {symbol}",
        context=context,
        timestamp=at.astimezone(UTC),
    )


# Commission $1 a fill. Hand-computed (IB's method: the average cost includes the
# opening commission; a closing fill's P&L is net of its own commission):
#   MSFT carried overnight: 100 @ 400 + $1 -> avg 400.01
#   AAPL 10 @ 150 (+1 -> avg 150.10), sold 10 @ 155: (155 - 150.10) * 10 - 1 = +48.00  win
#   TSLA 20 @ 200 (+1 -> avg 200.05), sold 20 @ 195: (195 - 200.05) * 20 - 1 = -102.00 loss
#   MSFT sold 40 @ 410 (partial close): (410 - 400.01) * 40 - 1 = +398.60 (broker's figure)
#   NVDA 5 @ 100 (+1 -> avg 100.20), held overnight
# Day: realized 48 - 102 + 398.60 = 344.60; commissions 6 fills = 6.00;
# round trips closed 2 (AAPL, TSLA), 1 won: win rate 0.5;
# open: MSFT 60 @ 400.01, NVDA 5 @ 100.20; marks 412 / 99 -> +719.40 and -6.00 = +713.40.
FILLS = [
    trade(et(date(2026, 3, 9), 15), "BOT", 100, "MSFT", 400.0),
    trade(et(DAY, 9, 45), "BOT", 10, "AAPL", 150.0),
    trade(et(DAY, 10, 30), "SLD", 10, "AAPL", 155.0),
    trade(et(DAY, 11), "BOT", 20, "TSLA", 200.0),
    trade(et(DAY, 12), "SLD", 20, "TSLA", 195.0),
    trade(et(DAY, 13), "SLD", 40, "MSFT", 410.0, realized=398.6),
    trade(et(DAY, 14), "BOT", 5, "NVDA", 100.0),
    trade(et(date(2026, 3, 11), 10), "SLD", 60, "MSFT", 420.0),  # the next day: not counted
]


def signal(at: datetime, symbol: str, strength: float | None = None) -> Event:
    context: dict[str, Any] = {"symbol": symbol}
    if strength is not None:
        context["strength"] = strength
    return Event(type=SIGNAL, message=f"signal {symbol}", context=context, timestamp=at)


@pytest.fixture
def report(database: Database) -> dict[str, Any]:
    incident = Event(
        type=SYSTEM,
        message="broker disconnected",
        severity=Severity.WARNING,
        source="broker",
        timestamp=et(DAY, 11, 5),
    )
    database.events.insert_many([*FILLS, incident])
    return daily_report(database, DAY, nyse(), marks={"MSFT": 412.0, "NVDA": 99.0})


def test_realized_pnl_and_commissions_match_the_hand_computed_day(report: dict[str, Any]) -> None:
    """The day's realized P&L (+344.60) and commissions (6.00) are the hand-computed ones."""
    assert report["date"] == "2026-03-10"
    assert report["realized_pnl"] == pytest.approx(344.60)
    assert report["commissions"] == pytest.approx(6.0)
    per_trade = [(t["symbol"], t["side"], t["realized_pnl"]) for t in report["trades"]]
    assert per_trade == [
        ("AAPL", "BOT", 0.0),
        ("AAPL", "SLD", pytest.approx(48.0)),
        ("TSLA", "BOT", 0.0),
        ("TSLA", "SLD", pytest.approx(-102.0)),
        ("MSFT", "SLD", pytest.approx(398.6)),
        ("NVDA", "BOT", 0.0),
    ]


def test_win_rate_counts_closed_round_trips_only(report: dict[str, Any]) -> None:
    """Two round trips closed (one won); the partial MSFT close is not a round trip."""
    assert report["round_trips"] == {
        "closed": 2,
        "wins": 1,
        "losses": 1,
        "win_rate": 0.5,
        "pnl": pytest.approx(-54.0),
    }


def test_open_positions_carry_overnight_with_unrealized_pnl_from_marks(
    report: dict[str, Any],
) -> None:
    """MSFT (carried from yesterday, partly sold) and NVDA stay open, valued at the marks."""
    positions = {p["symbol"]: p for p in report["positions"]}
    assert sorted(positions) == ["MSFT", "NVDA"]
    assert positions["MSFT"]["quantity"] == 60
    assert positions["MSFT"]["avg_cost"] == pytest.approx(400.01)
    assert positions["MSFT"]["unrealized_pnl"] == pytest.approx(719.40)
    assert positions["NVDA"]["avg_cost"] == pytest.approx(100.20)
    assert positions["NVDA"]["unrealized_pnl"] == pytest.approx(-6.0)
    assert report["unrealized_pnl"] == pytest.approx(713.40)


def test_counts_and_incidents_of_the_day(report: dict[str, Any]) -> None:
    """The day's warnings are listed as incidents and counted as alerts."""
    assert report["counts"]["alerts"] == 1
    assert [i["message"] for i in report["incidents"]] == ["broker disconnected"]
    assert report["events"]["TRADE"] == 6


def test_tomorrows_watchlist_ranks_recent_strong_signals(database: Database) -> None:
    """Signals of the last five sessions rank symbols, newer ones weighing more."""
    database.events.insert_many(
        [
            signal(et(DAY, 10), "AAPL", 2.0),  # 2.0
            signal(et(DAY, 11), "MSFT"),  # 1.0 (no strength: 1)
            signal(et(date(2026, 3, 9), 10), "TSLA", -3.0),  # |-3| * 0.5 = 1.5
            signal(et(date(2026, 3, 7), 10), "GOOG"),  # Saturday -> Friday 03-06: 0.25
            signal(et(date(2026, 3, 3), 10), "NVDA", 10.0),  # six sessions back: out
            signal(et(date(2026, 3, 11), 10), "AMD", 5.0),  # after the day: out
        ]
    )
    report = daily_report(database, DAY, nyse())
    assert [(w["symbol"], w["score"]) for w in report["watchlist"]] == [
        ("AAPL", 2.0),
        ("TSLA", 1.5),
        ("MSFT", 1.0),
        ("GOOG", 0.25),
    ]
    assert report["counts"]["signals"] == 2


def test_a_day_without_trades_is_an_empty_summary_not_an_error(database: Database) -> None:
    """A holiday or a quiet day gives zeros and no win rate, never a failure."""
    report = daily_report(database, date(2026, 12, 25), nyse())
    assert report["session"] is False
    assert report["realized_pnl"] == 0
    assert report["round_trips"]["win_rate"] is None
    assert report["positions"] == []


def test_the_summary_mail_shows_win_rate_chart_incidents_and_watchlist(
    report: dict[str, Any],
) -> None:
    """The e-mail of the computed summary carries the win rate, a bar per closing trade,
    the incidents and the watchlist section, in both parts, with no remote resource."""
    rendered = Renderer().render("daily_summary", {**report, "count": 1})
    assert rendered.subject.startswith("[trading-bot] Daily summary 2026-03-10: P&L +344.60 USD")
    for part in (rendered.text, rendered.html):
        assert "50%" in part
        assert "broker disconnected" in part
        assert "watchlist" in part
        assert "6.00" in part  # commissions
    assert rendered.html.count("height: 12px") == 3  # three closing trades
    assert "http" not in rendered.html.replace("http-equiv", "")
