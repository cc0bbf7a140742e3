"""The aiohttp app factory.

One ``cleanup_ctx`` generator per background service: the supervision tree (started on a
worker thread before the first request, stopped after the last) and the event-loop lag
monitor behind ``/api/health/live``. No pykka future is ever awaited on the loop: the
tree snapshot is read from thread-safe handles.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from tradingbot import __version__
from tradingbot.runtime import Runtime
from tradingbot.web.auth import bearer_auth, loopback_host_only
from tradingbot.web.connections import body_timeout_middleware
from tradingbot.web.dashboard import add_dashboard, dashboard_sessions
from tradingbot.web.events_api import add_routes as add_event_routes
from tradingbot.web.health import add_health_routes
from tradingbot.web.metrics import add_metrics, http_metrics_middleware
from tradingbot.web.openapi import add_openapi_route
from tradingbot.web.outbox_api import add_outbox_route
from tradingbot.web.problems import problem, problem_middleware
from tradingbot.web.reports import add_report_routes
from tradingbot.web.trading_api import TradingApi, add_trading_routes

RUNTIME = web.AppKey("runtime", Runtime)
LOOP_LAG = web.AppKey("loop_lag", list[float])  # [last observed lag in seconds]
HEALTH_JSON = "application/health+json"
LAG_SAMPLE_S = 0.5
LAG_WARN_S = 1.0
LAG_FAIL_S = 5.0


def create_app(runtime: Runtime, *, manage_runtime: bool = True) -> web.Application:
    """Build the app; with ``manage_runtime`` the app starts and stops the runtime."""
    # Outermost first: metrics see every final status (401s too); auth answers before any
    # handler runs, inside the problem+json translation.
    middlewares: list[Middleware] = [http_metrics_middleware, problem_middleware]
    if runtime.config.api_token:
        middlewares.append(dashboard_sessions)  # a browser's session cookie (dashboard.py)
        middlewares.append(bearer_auth(runtime.config.api_token))
    else:  # open to this machine only: refuse other names (DNS rebinding)
        middlewares.append(loopback_host_only(runtime.config.http_host))
    middlewares.append(body_timeout_middleware(runtime.config.http_body_timeout_s))
    app = web.Application(middlewares=middlewares)
    app[RUNTIME] = runtime
    app[LOOP_LAG] = [0.0]
    if manage_runtime:
        app.cleanup_ctx.append(_runtime_context)
    app.cleanup_ctx.append(_loop_lag_context)
    app.router.add_get("/api/actors", actors)
    app.router.add_get("/api/health/live", health_live)
    add_event_routes(app, RUNTIME)
    add_metrics(app, runtime)  # GET /metrics
    add_health_routes(app, RUNTIME)
    add_trading_routes(
        app,
        TradingApi(
            lambda: runtime.kill_switch,
            runtime.broker_status,
            token_configured=bool(runtime.config.api_token),
        ),
    )
    add_report_routes(app, RUNTIME)  # GET /api/reports/daily, /api/reports/pnl
    add_outbox_route(app, RUNTIME)
    add_openapi_route(app, token_required=bool(runtime.config.api_token))
    add_dashboard(app, RUNTIME)  # GET /, /tree, /events, /mail, /docs, /login
    return app


async def _runtime_context(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    await asyncio.to_thread(runtime.start)
    try:
        yield
    finally:
        await asyncio.to_thread(runtime.stop)


async def _loop_lag_context(app: web.Application) -> AsyncIterator[None]:
    async def sample() -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_SAMPLE_S)
            app[LOOP_LAG][0] = max(0.0, loop.time() - start - LAG_SAMPLE_S)

    task = asyncio.create_task(sample())
    yield
    task.cancel()


def _json(body: Any, *, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type=content_type,
        headers={"Cache-Control": "no-store"},
    )


async def actors(request: web.Request) -> web.Response:
    """``GET /api/actors``: the supervision tree as nested nodes."""
    tree = request.app[RUNTIME].tree
    if tree is None:
        return problem(503, "the supervision tree is not running")
    return _json(tree.snapshot().to_dict())


_PID = str(os.getpid())


async def health_live(request: web.Request) -> web.Response:
    """``GET /api/health/live``: the process and its event loop only, never dependencies."""
    runtime = request.app[RUNTIME]
    lag = request.app[LOOP_LAG][0]
    status = "pass" if lag < LAG_WARN_S else "warn" if lag < LAG_FAIL_S else "fail"
    moment = datetime.now(UTC)
    now = moment.isoformat()
    uptime = (moment - runtime.started_at).total_seconds()
    body = {
        "status": status,
        "version": "1",
        "releaseId": __version__,
        "serviceId": runtime.run_id,
        "description": "trading-bot liveness: process and event loop",
        "checks": {
            "eventloop:lag": [
                {
                    "componentType": "system",
                    "observedValue": round(lag * 1000, 3),
                    "observedUnit": "ms",
                    "status": status,
                    "time": now,
                }
            ],
            "process:uptime": [
                {
                    "componentType": "system",
                    "componentId": _PID,
                    "observedValue": round(uptime, 3),
                    "observedUnit": "s",
                    "status": "pass",
                    "time": now,
                }
            ],
        },
    }
    return _json(body, status=503 if status == "fail" else 200, content_type=HEALTH_JSON)
