"""The strategies page and ``GET /api/strategies``, and the overview's account figures,
over a loopback server and a real runtime on SQLite trading the simulator.

One strategy (``BuyOnce``, from tests/strategies) buys one AAPL on its first quote: a
SIGNAL event, an order, a fill and a position the overview values.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web

from support.waiting import wait_until
from support.web_server import LoopThread, Server, web_config
from tradingbot.broker import BrokerStatus, ConnectionState
from tradingbot.broker.answers import AccountPnL, Holding
from tradingbot.events import SIGNAL
from tradingbot.runtime import Runtime
from tradingbot.web import create_app
from tradingbot.web.account_view import EQUITY_CACHE, EquityCache, account_overview
from tradingbot.web.app import RUNTIME
from tradingbot.web.openapi import build_document
from tradingbot.web.services import BROKER_STATUS, TREE
from tradingbot.web.strategies_api import STRATEGIES_PATH

SAMPLE = "strategies.strategy_samples:BuyOnce"


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An open app whose runtime runs BuyOnce against the simulator."""
    settings = {"TRADINGBOT_STRATEGIES": SAMPLE, "TRADINGBOT_WATCHLIST": "AAPL"}
    runtime = Runtime(web_config(tmp_path_factory.mktemp("strategies"), settings))
    with Server(loop_thread, create_app(runtime)) as served:
        yield served


def _traded(server: Server) -> dict[str, Any]:
    """The API's entry of the strategy once its order filled."""

    def filled() -> dict[str, Any] | None:
        body = server.request(STRATEGIES_PATH).json()
        entry = body["strategies"][0]
        done = [o for o in entry["recent_orders"] if o["status"] == "Filled"]
        return entry if done and entry["signals"] else None

    return wait_until(filled, 60, "the strategy's order to fill")


def _validator(path: str) -> jsonschema_rs.Validator:
    document = build_document(token_required=False)
    response = document["paths"][path]["get"]["responses"]["200"]
    schema = {**response["content"]["application/json"]["schema"]}
    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": document["components"]}, validate_formats=True
    )


def test_the_api_lists_a_running_strategy_with_its_signal_and_order(server: Server) -> None:
    """GET /api/strategies names the strategy, its class, state running, its watchlist, the
    SIGNAL it stored and the order it placed, in the documented shape."""
    entry = _traded(server)
    reply = server.request(STRATEGIES_PATH)
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.json()
    errors = [
        f"{e.instance_path}: {e.message}" for e in _validator(STRATEGIES_PATH).iter_errors(body)
    ]
    assert not errors
    assert entry["id"] == "buy_once"
    assert entry["class"].endswith("strategy_samples:BuyOnce")
    assert entry["state"] == "running"
    assert entry["restarts"] == 0
    assert entry["watchlist"] == ["AAPL"]
    signal = entry["signals"][0]
    assert (signal["symbol"], signal["side"], signal["reason"]) == ("AAPL", "BUY", "first quote")
    order = entry["recent_orders"][0]
    assert (order["symbol"], order["side"], order["quantity"]) == ("AAPL", "BUY", 1)
    assert order["signal_id"] == signal["id"]
    assert entry["open_orders"] == []


def test_a_new_signal_shows_without_rereading_the_table(server: Server) -> None:
    """A SIGNAL stored after the page first read the strategy's signals comes first on
    the next refresh (the signals follow the event hub after one read)."""
    _traded(server)
    runtime = server.app[RUNTIME]
    assert runtime.recorder is not None
    recorder = runtime.recorder.bind(source="test", strategy_id="buy_once")
    recorder.record_durable(
        SIGNAL, "second look", context={"symbol": "AAPL", "side": "SELL", "reason": "later"}
    )

    def newest() -> dict[str, Any] | None:
        entry = server.request(STRATEGIES_PATH).json()["strategies"][0]
        first = entry["signals"][0]
        return first if first["reason"] == "later" else None

    first = wait_until(newest, 30, "the new signal on the API")
    assert first["side"] == "SELL"
    body = server.request(STRATEGIES_PATH).json()["strategies"][0]
    assert [s["reason"] for s in body["signals"]] == ["later", "first quote"]


def test_the_strategies_page_shows_state_watchlist_signals_and_orders(server: Server) -> None:
    """The /strategies page, linked from the navigation, shows the running strategy, its
    watchlist, its last signal and its filled order; its live fragment is the region only."""
    entry = _traded(server)
    page = server.request("/strategies")
    assert page.status == 200
    text = page.text()
    assert 'href="/strategies" aria-current="page"' in text
    section = text[text.index('id="strategy-buy_once"') :]
    assert 'data-state="running"' in section
    assert "● running" in section
    assert "AAPL" in section
    assert "first quote" in section
    assert entry["recent_orders"][0]["order_id"] in section
    assert "Filled" in section
    request = urllib.request.Request(server.url("/strategies"))
    request.add_header("X-Dashboard-Fragment", "1")
    with urllib.request.urlopen(request, timeout=10) as response:
        fragment = response.read().decode()
    assert "<html" not in fragment
    assert 'id="strategy-buy_once"' in fragment
    assert 'href="/strategies"' in server.request("/").text()  # in the navigation


def test_the_overview_shows_todays_pnl_equity_and_the_position(server: Server) -> None:
    """After the strategy's fill the overview shows the day's P&L, the equity (NetLiquidation)
    and the AAPL position with its average cost, market price and unrealized P&L."""
    _traded(server)
    status = server.app[RUNTIME].broker_status

    def valued() -> bool:
        held = status.holdings().get("AAPL")
        return (
            held is not None
            and held.quantity == 1
            and status.pnl() is not None
            and status.account_value("NetLiquidation") is not None
        )

    wait_until(valued, 60, "the position, the P&L and the equity from the broker")
    text = server.request("/").text()
    held = status.holdings()["AAPL"]
    row = re.search(r'<tr data-symbol="AAPL">(.*?)</tr>', text, re.S)
    assert row is not None
    assert f"{held.avg_cost:,.2f}" in row.group(1)
    assert held.market_price is not None
    assert f"{held.market_price:,.2f}" in row.group(1)
    assert re.search(r"(gain|loss|flat)", row.group(1))  # in words, not by colour alone
    equity = status.account_value("NetLiquidation")
    assert equity is not None
    assert re.search(r'id="equity">[\d,]+\.\d\d USD', text)
    assert re.search(r'id="pnl-daily">[^<]*(gain|loss|flat)', text)
    assert "not connected" not in text


def test_a_crash_looping_strategy_shows_stopped_and_a_gated_one_waiting_for_the_reason(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A strategy whose supervisor gave up reads "stopped after a crash loop" with its
    restarts and failure; while the start gate names a reason, a strategy reads "waiting
    for" that reason, on the API and on the page."""
    settings = {
        "TRADINGBOT_STRATEGIES": "strategies.strategy_samples:Crasher",
        "TRADINGBOT_WATCHLIST": "AAPL",
    }
    runtime = Runtime(web_config(tmp_path_factory.mktemp("crasher"), settings))
    with Server(loop_thread, create_app(runtime)) as served:

        def stopped() -> dict[str, Any] | None:
            entry = served.request(STRATEGIES_PATH).json()["strategies"][0]
            return entry if entry["state"] == "stopped" else None

        entry = wait_until(stopped, 60, "the crash-looping strategy to be stopped")
        assert entry["id"] == "crasher"
        assert "crash loop" in entry["state_text"]
        assert entry["restarts"] >= 1
        assert "deliberate crash" in entry["last_failure"]
        page = served.request("/strategies").text()
        assert "■ stopped after a crash loop" in page
    gated = Runtime(web_config(tmp_path_factory.mktemp("gated"), settings))
    gated.strategy_start_gate = lambda: "live account U123 needs TRADINGBOT_LIVE_TRADING=yes"
    with Server(loop_thread, create_app(gated)) as served:

        def waiting() -> dict[str, Any] | None:
            entry = served.request(STRATEGIES_PATH).json()["strategies"][0]
            gate = "TRADINGBOT_LIVE_TRADING" in (entry["waiting_for"] or "")
            return entry if gate else None

        entry = wait_until(waiting, 60, "the strategy to wait for the start gate")
        assert entry["state"] == "waiting"
        assert entry["state_text"] == "waiting for: " + entry["waiting_for"]
        assert "waiting for: live account U123" in served.request("/strategies").text()


def test_the_equity_is_asked_of_the_broker_when_not_streamed(
    server: Server, loop_thread: LoopThread
) -> None:
    """Without a streamed NetLiquidation the equity is asked of the broker (and the answer
    reused); without a running bot the overview says why there is none."""
    _traded(server)
    runtime = server.app[RUNTIME]
    cache = EquityCache()
    found, why = loop_thread.run(cache.equity(runtime.tree, runtime.broker_status))
    assert why == ""
    assert found is not None
    value, currency = found
    assert value > 0
    assert currency == "USD"
    assert loop_thread.run(cache.equity(None, runtime.broker_status)) == (found, "")  # reused
    missing = loop_thread.run(EquityCache().equity(None, BrokerStatus()))
    assert missing == (None, "the bot is not running")


async def _overview_of(status: BrokerStatus) -> dict[str, Any]:
    app = web.Application()
    app[BROKER_STATUS] = status
    app[TREE] = lambda: None
    app[EQUITY_CACHE] = EquityCache()
    return await account_overview(app)


def test_a_disconnected_broker_shows_the_figures_with_their_time(loop_thread: LoopThread) -> None:
    """While the broker is not synced, the overview keeps the last figures and says
    "not connected: figures as of HH:MM UTC" with the time they were received."""
    status = BrokerStatus()
    at = datetime(2026, 12, 4, 14, 2, 30, tzinfo=UTC)
    status.set_position("MSFT", -5)
    status.set_holding(
        Holding(
            account="DU1",
            symbol="MSFT",
            quantity=-5,
            avg_cost=400.0,
            market_price=410.0,
            market_value=-2050.0,
            unrealized=-50.0,
            realized=0.0,
            received_at=at,
        )
    )
    status.set_pnl(
        AccountPnL(account="DU1", daily=-50.0, unrealized=-50.0, realized=0.0, received_at=at)
    )
    view = loop_thread.run(_overview_of(status))
    assert status.view().state == ConnectionState.DISCONNECTED
    assert view["stale_note"] == "not connected: figures as of 14:02 UTC"
    assert view["positions"][0]["unrealized"] == -50.0
    assert view["equity"] is None
    assert "not connected" in view["equity_note"]
    empty = loop_thread.run(_overview_of(BrokerStatus()))
    assert empty["stale_note"] == "not connected: no figures received yet"
