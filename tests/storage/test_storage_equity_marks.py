"""The equity marks of the daily summary, stored per account and date, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tradingbot.storage import Database, EquityMark

RECORDED = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)


def mark(day: date, equity: float | None, account: str = "DU1") -> EquityMark:
    return EquityMark(
        account=account,
        trading_date=day,
        recorded_at=RECORDED,
        equity=equity,
        currency="USD",
        daily_pnl=12.5,
        realized_pnl=10.0,
        unrealized_pnl=2.5,
        positions=[{"symbol": "MSFT", "quantity": 60.0, "market_price": 412.0}],
    )


def test_the_first_mark_of_a_date_stays(database: Database) -> None:
    """A second mark for the same account and date does not replace the first one, so a
    later report shows what the mail showed."""
    first = database.equity_marks.add(mark(date(2026, 3, 10), 100_000.0))
    again = database.equity_marks.add(mark(date(2026, 3, 10), 99_000.0))
    assert again == first
    stored = database.equity_marks.get("DU1", date(2026, 3, 10))
    assert stored is not None
    assert stored.equity == 100_000.0
    assert stored.positions == [{"symbol": "MSFT", "quantity": 60.0, "market_price": 412.0}]
    assert stored.recorded_at == RECORDED
    assert database.equity_marks.get("DU2", date(2026, 3, 10)) is None


def test_the_previous_equity_is_the_latest_recorded_one_of_the_account(
    database: Database,
) -> None:
    """The equity a date's change is measured from is the account's latest mark before
    it that has an equity; other accounts' marks do not count."""
    database.equity_marks.add(mark(date(2026, 3, 5), 98_000.0))
    database.equity_marks.add(mark(date(2026, 3, 6), None))  # the broker sent no equity
    database.equity_marks.add(mark(date(2026, 3, 9), 97_000.0, account="DU2"))
    database.equity_marks.add(mark(date(2026, 3, 10), 100_000.0))
    previous = database.equity_marks.latest_before("DU1", date(2026, 3, 10))
    assert previous is not None
    assert (previous.trading_date, previous.equity) == (date(2026, 3, 5), 98_000.0)
    assert database.equity_marks.latest_before("DU1", date(2026, 3, 5)) is None
