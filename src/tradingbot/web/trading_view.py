"""The trading state for the dashboard's overview: the kill switch and the order gates.

The same body ``GET /api/trading`` answers, read from the same in-memory source (no
database call); ``None`` while the bot is not running.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tradingbot.web.trading_api import TRADING_API, _state


def trading_state(app: web.Application) -> dict[str, Any] | None:
    """The body of ``GET /api/trading``, or None when the kill switch is not up."""
    api = app.get(TRADING_API)
    switch = None if api is None else api.switch()
    if api is None or switch is None:
        return None
    return _state(api, switch)
