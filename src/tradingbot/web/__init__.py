"""The HTTP API: the aiohttp app factory, health, events, actors, metrics and OpenAPI."""

from tradingbot.web.app import create_app

__all__ = ["create_app"]
