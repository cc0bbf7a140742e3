"""The reports API on a real server: the daily summary and P&L as JSON, bad input as 400."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import jsonschema_rs
import pytest

from support.web_server import LoopThread, Server, web_config
from tradingbot.events.model import TRADE, Event
from tradingbot.runtime import Runtime
from tradingbot.storage import EquityMark
from tradingbot.web import create_app
from tradingbot.web.openapi import build_document


def _fill(at: str, side: str, qty: float, price: float) -> Event:
    ts = datetime.fromisoformat(at).astimezone(UTC)
    return Event(
        type=TRADE,
        message=f"{side} {qty} AAPL",
        context={
            "symbol": "AAPL",
            "side": side,
            "quantity": qty,
            "price": price,
            "commission": 1.0,
            "exec_id": at,
            "exec_time": ts.timestamp(),
        },
        timestamp=ts,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, loop_thread: LoopThread) -> Iterator[Server]:
    runtime = Runtime(web_config(tmp_path_factory.mktemp("reports")))
    with Server(loop_thread, create_app(runtime)) as served:
        assert runtime.database is not None
        runtime.database.events.insert_many(
            [
                _fill("2026-03-10T10:00:00-04:00", "BOT", 10, 100.0),  # avg 100.10
                _fill("2026-03-10T11:00:00-04:00", "SLD", 10, 101.0),  # +9.00 - 1 = +8.00
                _fill("2026-03-12T10:00:00-04:00", "BOT", 10, 100.0),
                _fill("2026-03-12T11:00:00-04:00", "SLD", 10, 99.0),  # -11.00 - 1 = -12.00
            ]
        )
        for day, equity in ((date(2026, 3, 11), 50_000.0), (date(2026, 3, 12), 49_988.0)):
            runtime.database.equity_marks.add(
                EquityMark(
                    account=runtime.account,
                    trading_date=day,
                    recorded_at=datetime(2026, 3, day.day, 20, 30, tzinfo=UTC),
                    equity=equity,
                    currency="USD",
                    daily_pnl=-12.0,
                    realized_pnl=-12.0,
                    unrealized_pnl=0.0,
                    positions=[],
                )
            )
        yield served


def test_daily_report_answers_the_summary_of_a_date(server: Server) -> None:
    """GET /api/reports/daily?date= gives that date's P&L, trades and win rate."""
    reply = server.request("/api/reports/daily?date=2026-03-10")
    assert reply.status == 200
    body = reply.json()
    assert body["realized_pnl"] == pytest.approx(8.0)
    assert len(body["trades"]) == 2
    assert body["round_trips"]["win_rate"] == 1.0


def test_daily_report_shows_the_equity_recorded_at_that_dates_summary(server: Server) -> None:
    """A date whose summary recorded the broker's account answers its equity and the
    change since the one before; a date without says the broker's figures were not
    recorded; both match the documented schema."""
    document = build_document(token_required=False)
    schema = document["paths"]["/api/reports/daily"]["get"]["responses"]["200"]["content"]
    validator = jsonschema_rs.Draft202012Validator(
        {**schema["application/json"]["schema"], "components": document["components"]},
        validate_formats=True,
    )
    recorded = server.request("/api/reports/daily?date=2026-03-12").json()
    validator.validate(recorded)
    assert recorded["equity"] == 49_988.0
    assert recorded["equity_previous"] == {"date": "2026-03-11", "equity": 50_000.0}
    assert recorded["equity_change"] == -12.0
    assert recorded["broker_pnl"]["daily"] == -12.0
    assert recorded["positions_source"] == "broker"
    assert recorded["broker"]["recorded"] is True
    missing = server.request("/api/reports/daily?date=2026-03-10").json()
    validator.validate(missing)
    assert missing["equity"] is None
    assert missing["positions_source"] == "books"
    assert "not recorded" in missing["broker"]["note"]


def test_pnl_report_groups_by_week(server: Server) -> None:
    """GET /api/reports/pnl by week adds up the week's realized P&L and round trips."""
    reply = server.request("/api/reports/pnl?from=2026-03-09&to=2026-03-15&by=week")
    assert reply.status == 200
    body = reply.json()
    assert [(p["period"], p["realized_pnl"], p["round_trips"]) for p in body["periods"]] == [
        ("2026-W11", pytest.approx(-4.0), 2)
    ]
    assert body["total"]["win_rate"] == 0.5
    by_day = server.request("/api/reports/pnl?from=2026-03-09&to=2026-03-15").json()
    assert [p["period"] for p in by_day["periods"]] == ["2026-03-10", "2026-03-12"]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("/api/reports/daily?date=yesterday", "date"),
        ("/api/reports/daily?date=1999-12-31", "date"),
        ("/api/reports/daily?day=2026-03-10", "day"),
        ("/api/reports/pnl?from=2026-03-10", "to"),
        ("/api/reports/pnl?from=2026-03-10&to=2026-03-01", "to"),
        ("/api/reports/pnl?from=2026-03-01&to=2026-03-10&by=year", "by"),
    ],
)
def test_bad_report_parameters_answer_400_naming_them(
    server: Server, query: str, param: str
) -> None:
    """A malformed or missing parameter is a 400 problem+json naming it, never a 500."""
    reply = server.request(query)
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert param in [p["name"] for p in reply.json()["invalid_params"]]
