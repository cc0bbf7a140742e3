"""The aiohttp application: ``/api/actors``, ``/api/health/live`` and the error format."""

from tradingbot.web.app import RUNTIME, create_app

__all__ = ["RUNTIME", "create_app"]
