"""The reports API on a real server: the daily summary and P&L as JSON, bad input as 400."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from support.web_server import LoopThread, Server, web_config
from tradingbot.events.model import TRADE, Event
from tradingbot.runtime import Runtime
from tradingbot.web import create_app


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
        yield served


def test_daily_report_answers_the_summary_of_a_date(server: Server) -> None:
    """GET /api/reports/daily?date= gives that date's P&L, trades and win rate."""
    reply = server.request("/api/reports/daily?date=2026-03-10")
    assert reply.status == 200
    body = reply.json()
    assert body["realized_pnl"] == pytest.approx(8.0)
    assert len(body["trades"]) == 2
    assert body["round_trips"]["win_rate"] == 1.0


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
