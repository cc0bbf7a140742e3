"""The daily summary's numbers against a hand-computed fixture, and the broker's account
recorded at the close, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from tradingbot.broker import AccountPnL, AccountValue, BrokerNotReady, PortfolioItem
from tradingbot.events.model import SIGNAL, SYSTEM, TRADE, Event, Severity
from tradingbot.notify import Renderer
from tradingbot.reports.account import NOT_RECORDED, BrokerAccount, mark_from_broker, record_mark
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


NOW = et(DAY, 16, 30)  # the summary's time on the day


def broker_account(msft: float = 60, nvda_price: float = 99.0) -> BrokerAccount:
    """What the broker says at the close: MSFT and NVDA with marks, equity, P&L."""

    def item(symbol: str, qty: float, avg: float, price: float) -> PortfolioItem:
        return PortfolioItem(
            account="DU1",
            symbol=symbol,
            con_id=1,
            quantity=qty,
            avg_cost=avg,
            market_price=price,
            market_value=qty * price,
            unrealized_pnl=(price - avg) * qty,
            realized_pnl=0.0,
        )

    return BrokerAccount(
        portfolio=[item("NVDA", 5, 100.2, nvda_price), item("MSFT", msft, 400.01, 412.0)],
        values=[
            AccountValue(account="DU1", tag="TotalCashValue", value="75000", currency="USD"),
            AccountValue(account="DU1", tag="NetLiquidation", value="100713.40", currency="USD"),
        ],
        pnl=AccountPnL(
            account="DU1", daily=1058.0, unrealized=713.4, realized=344.6, received_at=NOW
        ),
    )


def yesterday(database: Database, equity: float) -> None:
    database.equity_marks.add(
        mark_from_broker(
            "DU1",
            date(2026, 3, 9),
            BrokerAccount(
                portfolio=[],
                values=[
                    AccountValue(
                        account="DU1", tag="NetLiquidation", value=str(equity), currency="USD"
                    )
                ],
                pnl=None,
            ),
            et(date(2026, 3, 9), 16, 30),
        )
    )


def test_the_summary_shows_the_brokers_positions_equity_and_its_change(
    database: Database,
) -> None:
    """Made at the close, the summary lists the broker's positions with their marks, the
    net liquidation, its change since the last recorded one and the broker's P&L."""
    database.events.insert_many(FILLS)
    yesterday(database, 99_655.40)
    note = record_mark(database, nyse(), "DU1", DAY, broker_account, NOW)
    assert note is None
    report = daily_report(database, DAY, nyse(), account="DU1")
    assert report["positions_source"] == "broker"
    assert report["broker"] == {
        "recorded": True,
        "as_of": NOW.astimezone(UTC).isoformat(),
        "note": None,
    }
    positions = {p["symbol"]: p for p in report["positions"]}
    assert positions["MSFT"]["market_price"] == 412.0
    assert positions["MSFT"]["unrealized_pnl"] == pytest.approx(719.40)
    assert positions["MSFT"]["opened_at"] is not None  # from our books
    assert positions["NVDA"]["unrealized_pnl"] == pytest.approx(-6.0)
    assert report["unrealized_pnl"] == pytest.approx(713.40)
    assert report["position_differences"] == []
    assert report["equity"] == pytest.approx(100_713.40)
    assert report["equity_previous"] == {"date": "2026-03-09", "equity": 99_655.40}
    assert report["equity_change"] == pytest.approx(1_058.0)
    assert report["equity_change_pct"] == pytest.approx(1.06)
    assert report["broker_pnl"] == {"daily": 1058.0, "realized": 344.6, "unrealized": 713.4}


def test_a_later_summary_of_the_date_shows_what_was_recorded_then(database: Database) -> None:
    """Run again later (or for a past date), the summary shows the marks recorded at the
    close, not the broker's present: the broker is not even asked."""
    database.events.insert_many(FILLS)
    record_mark(database, nyse(), "DU1", DAY, broker_account, NOW)
    asked: list[bool] = []

    def moved() -> BrokerAccount:
        asked.append(True)
        return broker_account(nvda_price=150.0)

    assert record_mark(database, nyse(), "DU1", DAY, moved, et(DAY, 17)) is None
    next_day = et(date(2026, 3, 11), 16, 30)
    assert record_mark(database, nyse(), "DU1", date(2026, 3, 9), moved, next_day) is None
    assert asked == []
    report = daily_report(database, DAY, nyse(), account="DU1")
    assert {p["symbol"]: p["market_price"] for p in report["positions"]} == {
        "MSFT": 412.0,
        "NVDA": 99.0,
    }
    past = daily_report(database, date(2026, 3, 9), nyse(), account="DU1")
    assert past["positions_source"] == "books"
    assert past["equity"] is None
    assert past["broker"]["note"] == NOT_RECORDED
    assert [p["symbol"] for p in past["positions"]] == ["MSFT"]


def test_an_unreachable_broker_falls_back_to_our_books_and_says_why(
    database: Database,
) -> None:
    """When the broker cannot answer at the close, the summary shows our books' positions,
    marked as such, with the broker's error, and nothing is recorded for the date."""
    database.events.insert_many(FILLS)

    def down() -> BrokerAccount:
        raise BrokerNotReady("account refused: the broker is disconnected, not synced")

    note = record_mark(database, nyse(), "DU1", DAY, down, NOW)
    assert note is not None
    assert "not reachable at 16:30 ET" in note
    assert "disconnected, not synced" in note
    report = daily_report(database, DAY, nyse(), account="DU1", broker_note=note)
    assert report["positions_source"] == "books"
    assert report["broker"] == {"recorded": False, "as_of": None, "note": note}
    assert [p["symbol"] for p in report["positions"]] == ["MSFT", "NVDA"]
    assert report["equity"] is None
    assert database.equity_marks.get("DU1", DAY) is None
    rendered = Renderer().render("daily_summary", {**report, "count": 1})
    for part in (rendered.text, rendered.html):
        assert "not reachable at 16:30 ET" in part
        assert "from our books" in part
        assert "not recorded" in part  # the net liquidation


def test_positions_that_differ_from_our_books_are_pointed_out(database: Database) -> None:
    """A quantity at the broker that is not the one of our books is listed in the report
    and in both parts of the mail."""
    database.events.insert_many(FILLS)
    record_mark(database, nyse(), "DU1", DAY, lambda: broker_account(msft=50), NOW)
    report = daily_report(database, DAY, nyse(), account="DU1")
    assert report["position_differences"] == [{"symbol": "MSFT", "broker": 50.0, "books": 60.0}]
    rendered = Renderer().render("daily_summary", {**report, "count": 1})
    for part in (rendered.text, rendered.html):
        assert "MSFT broker 50, books 60" in part
        assert "at the broker, marks as of" in part
        assert "100,713.40" in part
