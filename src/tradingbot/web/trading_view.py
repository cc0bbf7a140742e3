"""The trading state for the dashboard's overview: the kill switch and the order gates.

Read from the same source as ``GET /api/trading``; ``None`` while that API is not part
of the app.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


def trading_state(app: web.Application) -> dict[str, Any] | None:
    """The body ``GET /api/trading`` would answer, or None when it is not available."""
    del app
    return None
