"""`trading-bot report daily|pnl` in process: a table or JSON, bad input in one line."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from tradingbot import exitcodes
from tradingbot.cli import main
from tradingbot.events.model import TRADE, Event
from tradingbot.storage import Database, EquityMark


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean TRADINGBOT_* environment whose database holds one round trip on 2026-03-10."""
    for name in list(os.environ):
        if name.startswith("TRADINGBOT_"):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    path = tmp_path / "home"
    monkeypatch.setenv("TRADINGBOT_HOME", str(path))
    assert main(["db", "upgrade"]) == exitcodes.OK
    with Database.open(f"sqlite:///{path / 'trading-bot.db'}") as database:
        database.events.insert_many(
            [
                _fill("2026-03-10T10:00:00-04:00", "BOT", 100.0),
                _fill("2026-03-10T15:00:00-04:00", "SLD", 102.0),  # (102 - 100.01) * 100 - 1
            ]
        )
    return path


def _fill(at: str, side: str, price: float) -> Event:
    ts = datetime.fromisoformat(at).astimezone(UTC)
    context = {
        "symbol": "MSFT",
        "side": side,
        "quantity": 100,
        "price": price,
        "commission": 1.0,
        "exec_id": at,
    }
    return Event(type=TRADE, message=side, context=context, timestamp=ts)


def test_report_daily_prints_a_table_and_json(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daily report of a past date prints its P&L as a table, and as JSON with --json."""
    assert main(["report", "daily", "--date", "2026-03-10"]) == exitcodes.OK
    table = capsys.readouterr().out
    assert "Daily summary 2026-03-10" in table
    assert "+198.00" in table
    assert "win rate 100%" in table
    assert main(["report", "daily", "--date", "2026-03-10", "--json"]) == exitcodes.OK
    data = json.loads(capsys.readouterr().out)
    assert data["realized_pnl"] == pytest.approx(198.0)


def _mark(day: date, equity: float, positions: list[dict[str, Any]]) -> EquityMark:
    return EquityMark(
        account="",
        trading_date=day,
        recorded_at=datetime(day.year, day.month, day.day, 20, 30, tzinfo=UTC),
        equity=equity,
        currency="USD",
        daily_pnl=250.0,
        realized_pnl=198.0,
        unrealized_pnl=52.0,
        positions=positions,
    )


def test_report_daily_shows_the_equity_and_positions_recorded_at_the_summary(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A date whose summary recorded the broker's account shows its equity, the change
    since the day before and the broker's positions; a date without says "not recorded"."""
    held = {"symbol": "AAPL", "quantity": 10.0, "avg_cost": 180.0, "market_price": 185.2}
    with Database.open(f"sqlite:///{home / 'trading-bot.db'}") as database:
        database.equity_marks.add(_mark(date(2026, 3, 9), 100_000.0, []))
        database.equity_marks.add(
            _mark(date(2026, 3, 10), 100_250.0, [{**held, "unrealized_pnl": 52.0}])
        )
    assert main(["report", "daily", "--date", "2026-03-10"]) == exitcodes.OK
    table = capsys.readouterr().out
    assert "Net liquidation     100,250.00 USD" in table
    assert "Equity change          +250.00 USD (+0.25%) since 2026-03-09" in table
    assert "Broker's P&L           +250.00 USD today" in table
    assert "Open positions (1, at the broker, marks as of 16:30:00 New York time)" in table
    assert "AAPL           10 @   180.0000  market     185.20  unrealized +52.00" in table
    assert "our books differ: AAPL broker 10, books 0" in table
    assert main(["report", "daily", "--date", "2026-03-11"]) == exitcodes.OK
    table = capsys.readouterr().out
    assert "Net liquidation   not recorded" in table
    assert "Open positions (0, from our books)" in table
    assert "were not recorded for this date" in table


def test_report_pnl_by_month(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The P&L report groups the period's realized P&L by month."""
    argv = ["report", "pnl", "--from", "2026-01-01", "--to", "2026-04-30", "--by", "month"]
    assert main([*argv, "--json"]) == exitcodes.OK
    data = json.loads(capsys.readouterr().out)
    assert [(p["period"], p["realized_pnl"]) for p in data["periods"]] == [
        ("2026-03", pytest.approx(198.0))
    ]
    assert main(argv) == exitcodes.OK
    assert "2026-03" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "daily", "--date", "2026-13-01"],
        ["report", "daily", "--date", "0001-01-01"],
        ["report", "pnl", "--from", "2026-03-10"],
        ["report", "pnl", "--from", "2026-03-10", "--to", "2026-03-10", "--by", "year"],
    ],
)
def test_bad_report_arguments_exit_2(
    home: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed date or option exits 2 with usage on stderr, never a traceback."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_a_reversed_period_is_one_line_and_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--to before --from exits 2 with one line naming the problem."""
    code = main(["report", "pnl", "--from", "2026-03-10", "--to", "2026-03-01"])
    assert code == exitcodes.USAGE
    assert capsys.readouterr().err.splitlines() == [
        "trading-bot: report: to (2026-03-01) is before from (2026-03-10)"
    ]
