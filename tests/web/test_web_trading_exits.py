"""``POST /api/trading/cancel-all`` and ``/flatten`` on a real server and runtime."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from support.waiting import wait_until
from support.web_server import LoopThread, Reply, Server, web_config
from tradingbot.broker import OrderRequest, place_order
from tradingbot.runtime import Runtime
from tradingbot.web import create_app
from tradingbot.web.openapi import build_document

TOKEN = "exits-test-token-4711"
PATHS = ("/api/trading/cancel-all", "/api/trading/flatten")


def _post(server: Server, path: str, body: bytes, token: str | None = TOKEN) -> Reply:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    async def post() -> Reply:
        async with server.session.post(server.url(path), data=body, headers=headers) as response:
            return Reply(response.status, response.headers, await response.read())

    return server.loop.run(post())


def _matches(path: str, reply: Reply) -> dict[str, Any]:
    """The body, checked against the schema the OpenAPI document gives this answer."""
    document = build_document(token_required=True)
    response = document["paths"][path]["post"]["responses"][str(reply.status)]
    media = reply.headers["Content-Type"].split(";")[0]
    schema = {**response["content"][media]["schema"], "components": document["components"]}
    body: dict[str, Any] = reply.json()
    errors = [e.message for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(body)]
    assert not errors, f"{path} {reply.status}: {errors}"
    return body


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A running bot (SQLite, simulator) with a token, trading allowed."""
    # Resting limit orders at half the market: far outside the risk limits' price band.
    wide_band = {"TRADINGBOT_RISK_PRICE_BAND_PCT": "100"}
    bot = Runtime(web_config(tmp_path_factory.mktemp("exits"), wide_band, token=TOKEN))
    bot.start()
    try:
        wait_until(
            lambda: bot.broker_status.trading_blocked() is None,
            message="the start reconciliation to open trading",
        )
        yield bot
    finally:
        bot.stop()


@pytest.fixture(scope="module")
def server(runtime: Runtime, loop_thread: LoopThread) -> Iterator[Server]:
    with Server(loop_thread, create_app(runtime, manage_runtime=False), TOKEN) as served:
        yield served


@pytest.mark.parametrize("path", PATHS)
def test_a_bad_token_or_none_is_refused_with_401(server: Server, path: str) -> None:
    """Without the right bearer token nothing is cancelled: 401 problem+json."""
    for token in (None, "wrong-token"):
        refused = _post(server, path, b'{"reason": "x"}', token=token)
        assert refused.status == 401
        assert refused.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "reason"),
        (b'{"reason": ""}', "must not be empty"),
        (b'{"why": "x"}', "reason"),
        (b'{"reason": "x\\u0000y"}', "control characters"),
    ],
)
def test_a_missing_or_bad_reason_is_a_400(server: Server, body: bytes, detail: str) -> None:
    """A flatten needs a reason (it is mailed): without one it is a 400 naming the problem."""
    refused = _post(server, "/api/trading/flatten", body)
    assert refused.status == 400
    assert detail in _matches("/api/trading/flatten", refused)["detail"]


def test_cancel_all_and_flatten_with_the_token(runtime: Runtime, server: Server) -> None:
    """With the token, cancel-all reports the resting order it cancelled and flatten
    closes the position; both answers match the OpenAPI document and name the caller."""
    assert runtime.tree is not None
    assert runtime.simulator is not None
    handle, status = runtime.tree.handle("broker"), runtime.broker_status
    limit = round(runtime.simulator.call(lambda s: s.brokerage.prices.price("MSFT")) * 0.5, 2)
    resting = place_order(handle, status, OrderRequest("MSFT", "BUY", 1, "LMT", limit))
    wait_until(
        lambda: (o := status.order(resting)) is not None and o.status == "Submitted",
        message="the order to rest",
    )
    cancelled = _post(server, "/api/trading/cancel-all", b'{"reason": "news"}')
    assert cancelled.status == 200, cancelled.body
    body = _matches("/api/trading/cancel-all", cancelled)
    assert [o["order_ref"] for o in body["open_orders"]] == [resting]
    assert body["by"].startswith("HTTP API token")
    assert body["reason"] == "news"

    bought = place_order(handle, status, OrderRequest("AAPL", "BUY", 4))
    wait_until(lambda: (o := status.order(bought)) is not None and o.status == "Filled")
    flattened = _post(server, "/api/trading/flatten", b'{"reason": "end of day"}')
    assert flattened.status == 200, flattened.body
    body = _matches("/api/trading/flatten", flattened)
    assert [(c["symbol"], c["side"], c["quantity"], c["sent"]) for c in body["closing"]] == [
        ("AAPL", "SELL", 4, True)
    ]
    assert any(line.startswith("sent: SELL 4 AAPL MKT") for line in body["summary"])
    wait_until(
        lambda: (
            not any(
                p.quantity
                for p in runtime.simulator.call(lambda s: s.brokerage.account_positions())
            )
        ),
        message="the simulator to show the account flat",
    )


@pytest.mark.parametrize("path", PATHS)
def test_without_a_configured_token_the_answer_is_403(
    tmp_path: Path, loop_thread: LoopThread, path: str
) -> None:
    """With no token configured, HTTP cannot cancel or flatten: 403 pointing to the shell."""
    bot = Runtime(web_config(tmp_path))
    with Server(loop_thread, create_app(bot, manage_runtime=False)) as served:
        refused = _post(served, path, b'{"reason": "x"}', token=None)
    assert refused.status == 403
    assert "trading-bot shell" in _matches(path, refused)["detail"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_broker_that_is_not_synced_is_a_503(tmp_path: Path, loop_thread: LoopThread) -> None:
    """When the broker cannot reach its gateway, a flatten is a 503 saying so; nothing sent."""
    settings = {"TRADINGBOT_BROKER": "ibkr", "TRADINGBOT_IB_PORT": str(_free_port())}
    bot = Runtime(web_config(tmp_path, settings, token=TOKEN))
    bot.start()
    try:
        with Server(loop_thread, create_app(bot, manage_runtime=False), TOKEN) as served:
            refused = _post(served, "/api/trading/flatten", b'{"reason": "x"}')
        assert refused.status == 503
        assert "not synced" in _matches("/api/trading/flatten", refused)["detail"]
    finally:
        bot.stop()
