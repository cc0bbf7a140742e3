"""The trading state for the dashboard's overview: the kill switch and the order gates.

The same body ``GET /api/trading`` answers, read from the same in-memory source (no
database call). The trading API lands in ``tradingbot.web.trading_api`` from the kill
switch's branch; until that module is present (or while the bot is not running) the
overview says the state is unavailable, so either branch can be merged first.
"""

from __future__ import annotations

import importlib
from typing import Any

from aiohttp import web

try:
    _TRADING_API: Any = importlib.import_module("tradingbot.web.trading_api")
except ImportError:  # the kill switch is not part of this build yet
    _TRADING_API = None


def trading_state(app: web.Application) -> dict[str, Any] | None:
    """The body of ``GET /api/trading``, or None when the kill switch is not up."""
    if _TRADING_API is None:
        return None
    api = app.get(_TRADING_API.TRADING_API)
    switch = None if api is None else api.switch()
    if api is None or switch is None:
        return None
    state: dict[str, Any] = _TRADING_API._state(api, switch)
    return state
