"""The trading API: ``GET /api/trading`` (the kill switch and the order gates) and
``POST /api/trading/pause`` / ``/resume``.

The mutating endpoints **always** need the API token, also on loopback: with no
``TRADINGBOT_API_TOKEN`` configured they answer 403 and point to the shell (whose
socket only its owner's uid may use), so another local user cannot pause or resume the
account's trading. A body is JSON ``{"reason": "..."}`` (required to pause). Kill-switch
calls block on the database, so they run on a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from tradingbot.broker.status import BrokerStatus
from tradingbot.storage import StorageError
from tradingbot.trading import KillSwitch, SwitchResult
from tradingbot.trading.switch import MAX_REASON_CHARS
from tradingbot.web.problems import problem
from tradingbot.web.session import CURRENT

MAX_BODY_BYTES = 4096
NO_TOKEN = (
    "changing the trading state over HTTP needs TRADINGBOT_API_TOKEN; without one use the "
    "shell: trading-bot shell -c 'pause REASON' (or 'resume')"
)


class TradingApi:
    """What the trading endpoints use: the kill switch (once the runtime started), the
    broker's gates, and whether a token protects the API."""

    def __init__(
        self,
        switch: Callable[[], KillSwitch | None],
        status: BrokerStatus,
        *,
        token_configured: bool,
    ) -> None:
        self.switch = switch
        self.status = status
        self.token_configured = token_configured


TRADING_API = web.AppKey("trading_api", TradingApi)


def add_trading_routes(app: web.Application, api: TradingApi) -> None:
    app[TRADING_API] = api
    app.router.add_get("/api/trading", get_trading)
    app.router.add_post("/api/trading/pause", post_pause)
    app.router.add_post("/api/trading/resume", post_resume)


def _json(body: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _state(api: TradingApi, switch: KillSwitch) -> dict[str, Any]:
    pnl = api.status.pnl()
    return {
        "kill_switch": switch.state().as_dict(),
        "gates": api.status.gates(),
        "orders_allowed": api.status.trading_blocked() is None,
        "pnl": None if pnl is None else pnl.as_dict(),
    }


async def get_trading(request: web.Request) -> web.Response:
    """``GET /api/trading``: the kill switch and why new orders are refused, if they are."""
    api = request.app[TRADING_API]
    switch = api.switch()
    if switch is None:
        return problem(503, "the bot is not running")
    return _json(_state(api, switch))


async def _reason(request: web.Request, *, required: bool) -> str | web.Response:
    """The ``reason`` of the JSON body, or the 400 naming what is wrong."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return problem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.read()  # read once (the body-timeout middleware may have read it)
    if len(raw) > MAX_BODY_BYTES:
        return problem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if required:
            return problem(400, 'a JSON body {"reason": "..."} is required')
        return ""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return problem(400, 'the body is not JSON; expected {"reason": "..."}')
    if not isinstance(body, dict) or set(body) - {"reason"}:
        return problem(400, 'expected a JSON object with only "reason"')
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        return problem(400, '"reason" must be a string')
    reason = " ".join(reason.split())
    if required and not reason:
        return problem(400, '"reason" must not be empty')
    if len(reason) > MAX_REASON_CHARS:
        return problem(400, f'"reason" is longer than {MAX_REASON_CHARS} characters')
    return reason


async def _switch(
    request: web.Request, change: Callable[[KillSwitch, str, str], SwitchResult], required: bool
) -> web.Response:
    api = request.app[TRADING_API]
    if not api.token_configured:
        return problem(403, NO_TOKEN)
    reason = await _reason(request, required=required)
    if isinstance(reason, web.Response):
        return reason
    switch = api.switch()
    if switch is None:
        return problem(503, "the bot is not running")
    via = "dashboard session" if request.get(CURRENT) is not None else "HTTP API token"
    by = f"{via} ({request.remote or 'unknown client'})"
    try:
        result = await asyncio.to_thread(change, switch, by, reason)
    except StorageError as exc:
        return problem(503, f"not changed, trading stays stopped: {exc}")
    except ValueError as exc:  # e.g. control characters in the reason
        return problem(400, str(exc))
    body = _state(api, switch)
    body["changed"] = result.changed
    body["warning"] = result.warning
    return _json(body)


async def post_pause(request: web.Request) -> web.Response:
    """``POST /api/trading/pause``: no new orders (open orders stay), durable."""
    return await _switch(
        request, lambda switch, by, reason: switch.pause(by=by, reason=reason), True
    )


async def post_resume(request: web.Request) -> web.Response:
    """``POST /api/trading/resume``: orders may flow again (refused unless stored)."""
    return await _switch(
        request, lambda switch, by, reason: switch.resume(by=by, reason=reason), False
    )
