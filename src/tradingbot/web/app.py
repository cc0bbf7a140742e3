"""The aiohttp app factory: the web layer's wiring.

The only web module that knows the :class:`~tradingbot.runtime.Runtime`: it fills one
app key per service (:mod:`tradingbot.web.services`) and the handler modules read those.

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
from tradingbot.metrics import RuntimeStateCollector
from tradingbot.runtime import Runtime
from tradingbot.scheduler.status import SchedulerCollector
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
from tradingbot.web.services import (
    ACCOUNT,
    BROKER_STATUS,
    CONFIG,
    DATABASE,
    EVENT_HUB,
    HEALTH,
    RUN_ID,
    SCHEDULER_STATUS,
    STARTED_AT,
    STRATEGIES,
    TREE,
)
from tradingbot.web.strategies_api import add_strategies_route
from tradingbot.web.trading_api import TradingApi, add_trading_routes
from tradingbot.web.trading_exits import add_exit_routes

# The Runtime this app was built from: for its start and stop here and for tests. No
# handler reads it: each reads the services it uses (tradingbot.web.services).
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
    _add_services(app, runtime)
    app[LOOP_LAG] = [0.0]
    if manage_runtime:
        app.cleanup_ctx.append(_runtime_context)
    app.cleanup_ctx.append(_loop_lag_context)
    app.router.add_get("/api/actors", actors)
    app.router.add_get("/api/health/live", health_live)
    add_event_routes(app)
    add_metrics(  # GET /metrics
        app,
        [
            *runtime.metrics.collectors(),
            RuntimeStateCollector(runtime),
            SchedulerCollector(runtime.scheduler_status),
        ],
    )
    add_health_routes(app)
    add_trading_routes(
        app,
        TradingApi(
            lambda: runtime.kill_switch,
            runtime.broker_status,
            token_configured=bool(runtime.config.api_token),
        ),
    )
    add_exit_routes(app, lambda: None if runtime.tree is None else runtime.tree.handle("broker"))
    add_report_routes(app)  # GET /api/reports/daily, /api/reports/pnl
    add_outbox_route(app)
    add_strategies_route(app)  # GET /api/strategies
    add_openapi_route(app, token_required=bool(runtime.config.api_token))
    add_dashboard(app)  # GET /, /strategies, /tree, /events, /mail, /docs, /login
    return app


def _add_services(app: web.Application, runtime: Runtime) -> None:
    """One key per service the handlers use; getters for what exists only once started."""
    app[CONFIG] = runtime.config
    app[RUN_ID] = runtime.run_id
    app[STARTED_AT] = runtime.started_at
    app[ACCOUNT] = runtime.account
    app[DATABASE] = lambda: runtime.database
    app[TREE] = lambda: runtime.tree
    app[EVENT_HUB] = runtime.hub
    app[HEALTH] = runtime.health
    app[BROKER_STATUS] = runtime.broker_status
    app[SCHEDULER_STATUS] = runtime.scheduler_status
    app[STRATEGIES] = lambda: runtime.strategies


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
    tree = request.app[TREE]()
    if tree is None:
        return problem(503, "the supervision tree is not running")
    return _json(tree.snapshot().to_dict())


_PID = str(os.getpid())


async def health_live(request: web.Request) -> web.Response:
    """``GET /api/health/live``: the process and its event loop only, never dependencies."""
    app = request.app
    lag = app[LOOP_LAG][0]
    status = "pass" if lag < LAG_WARN_S else "warn" if lag < LAG_FAIL_S else "fail"
    moment = datetime.now(UTC)
    now = moment.isoformat()
    uptime = (moment - app[STARTED_AT]).total_seconds()
    body = {
        "status": status,
        "version": "1",
        "releaseId": __version__,
        "serviceId": app[RUN_ID],
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
