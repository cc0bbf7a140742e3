"""The HTTP API: the aiohttp app factory, health, events, actors, metrics and OpenAPI."""

from tradingbot.web.app import RUNTIME, create_app

__all__ = ["RUNTIME", "create_app"]
