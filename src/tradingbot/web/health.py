"""The ``/api/health`` family, in ``application/health+json``.

Handlers only read the health actor's cached report (:class:`HealthState`): no database
query, no actor round trip, so any number of requests costs no more than JSON encoding.
``fail`` answers 503, ``pass`` and ``warn`` 200; always ``Cache-Control: no-store``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tradingbot import __version__
from tradingbot.health import CONTENT_TYPE, FAIL, Check, health_body
from tradingbot.web.services import HEALTH, RUN_ID

Handler = Callable[[web.Request], Awaitable[web.Response]]

# Endpoint -> (description, components included; None = all).
_VIEWS: dict[str, tuple[str, frozenset[str] | None]] = {
    "": ("trading-bot health", None),
    "detailed": ("trading-bot health, with process metrics and database statistics", None),
    "database": ("trading-bot database", frozenset({"database"})),
    "broker": ("trading-bot broker connection", frozenset({"broker"})),
    "trading": ("trading-bot trading gate (reconciliation)", frozenset({"trading"})),
    "scheduler": ("trading-bot scheduler", frozenset({"scheduler"})),
    "disk": ("trading-bot disk space", frozenset({"disk"})),
    "ready": (
        "trading-bot readiness: critical dependencies",
        frozenset({"database", "supervision"}),
    ),
}
# The summary (/api/health) is the worst of EVERY component check; it leaves out only
# these informational measurements, which /detailed shows: the process metrics (always
# pass) and the database statistics (counts; their failure, keyed "database:statistics"
# when their query hangs or raises, says nothing about the database's health that
# database:responseTime does not). tests/web/test_health_summary.py enumerates the checks.
INFORMATIONAL = frozenset(
    {"database:trades", "database:signals", "database:events", "database:statistics"}
)
INFORMATIONAL_COMPONENTS = frozenset({"process"})


def in_summary(check: Check) -> bool:
    """Whether ``check`` counts in the overall status of ``/api/health``."""
    return check.key not in INFORMATIONAL and check.component not in INFORMATIONAL_COMPONENTS


def add_health_routes(app: web.Application) -> None:
    """Register every ``/api/health/*`` view except ``live`` (see app.py)."""
    for name in _VIEWS:
        path = "/api/health" + (f"/{name}" if name else "")
        app.router.add_get(path, _view(name))


def _view(name: str) -> Handler:
    description, components = _VIEWS[name]

    async def handler(request: web.Request) -> web.Response:
        state = request.app[HEALTH]
        report = state.latest()
        if report is None:
            body = health_body(
                [],
                description=description,
                release_id=__version__,
                service_id=request.app[RUN_ID],
                status=FAIL,
                output="health checks have not run yet",
            )
            return _respond(body)
        checks = report.select(components)
        if name == "":
            checks = [c for c in checks if in_summary(c)]
        if name == "ready":
            checks = [c for c in checks if c.key in ("database:responseTime", "supervision:actors")]
        age = state.age_s(report)
        output = None
        status = None
        if age > state.stale_after_s:
            status = FAIL
            output = f"health checks are stale: last refresh {age:.0f} s ago"
            checks = [*checks, _stale_check(age)]
        body = health_body(
            checks,
            description=description,
            release_id=__version__,
            service_id=request.app[RUN_ID],
            output=output,
            status=status,
        )
        return _respond(body)

    handler.__name__ = f"health_{name or 'summary'}"
    return handler


def _stale_check(age: float) -> Check:
    return Check(
        component="health",
        measurement="age",
        status=FAIL,
        observed_value=round(age, 3),
        observed_unit="s",
        output="the health actor is not refreshing",
    )


def _respond(body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=503 if body["status"] == FAIL else 200,
        body=orjson.dumps(body),
        content_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )
