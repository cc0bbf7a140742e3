"""`trading-bot report daily|pnl` in process: a table or JSON, bad input in one line."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradingbot import exitcodes
from tradingbot.cli import main
from tradingbot.events.model import TRADE, Event
from tradingbot.storage import Database


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
