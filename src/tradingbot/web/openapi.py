"""``GET /api/openapi.json``: the OpenAPI 3.1 description of every endpoint served.

The document is plain data built once at import, from the same constants the handlers
use (limits, enums, patterns), and encoded once: serving it costs a dict lookup.

It comes in two variants that differ only in ``security``: with ``TRADINGBOT_API_TOKEN``
set, every operation except ``/api/health/live`` requires ``Authorization: Bearer`` and
documents its 401 answer; without a token nothing is required and no 401 is listed. The
app serves the variant that matches its configuration, so the contract a client reads
is the one the server enforces.

``tests/web/test_web_openapi.py`` checks that the document is valid OpenAPI 3.1 and
that it describes exactly the routes the app registers; ``test_web_schemathesis.py``
fuzzes a real server against it.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import orjson
from aiohttp import web

from tradingbot import __version__
from tradingbot.events.model import MAX_ID_CHARS
from tradingbot.health.model import CONTENT_TYPE as HEALTH_JSON
from tradingbot.reports import BY_CHOICES
from tradingbot.storage.event_query import MAX_TYPES
from tradingbot.web.auth import OPEN_METHODS, OPEN_PATHS
from tradingbot.web.events_api import DEFAULT_LIMIT, MAX_LIMIT
from tradingbot.web.openapi_schemas import (
    CURSOR,
    DATE_TIME,
    JSON,
    SCHEMAS,
    TEXT,
    TYPE_ITEM,
    Json,
    content,
    problem_response,
    ref,
    schema_ref,
)
from tradingbot.web.outbox_api import OPENAPI_PATHS as _OUTBOX_PATHS
from tradingbot.web.reports import DATE_PATTERN
from tradingbot.web.strategies_api import OPENAPI_PATHS as _STRATEGY_PATHS
from tradingbot.web.strategies_api import OPENAPI_SCHEMAS as _STRATEGY_SCHEMAS
from tradingbot.web.trading_exits import OPENAPI_PATHS as _EXIT_PATHS
from tradingbot.web.trading_exits import OPENAPI_SCHEMAS as _EXIT_SCHEMAS

OPENAPI_PATH: Final = "/api/openapi.json"
BEARER_SCHEME: Final = "bearerAuth"


# -- parameters -----------------------------------------------------------------------------

_NON_BLANK_ID: Final[Json] = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}


def _query(name: str, description: str, schema: Json, **extra: Any) -> Json:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


_REPORT_DATE: Final[Json] = {"type": "string", "format": "date", "pattern": DATE_PATTERN}

_PARAMETERS: Final[Json] = {
    "date": _query(
        "date",
        "The trading date (`2026-03-10`; default: today in New York), 2000-01-01 to a year ahead.",
        _REPORT_DATE,
    ),
    "from": _query("from", "First date of the period (inclusive).", _REPORT_DATE, required=True),
    "to": _query(
        "to",
        "Last date of the period (inclusive), not before `from`.",
        _REPORT_DATE,
        required=True,
    ),
    "by": _query(
        "by", "The grouping (default `day`).", {"type": "string", "enum": list(BY_CHOICES)}
    ),
    "type": _query(
        "type",
        "Only these event types (case-insensitive), repeated (`type=TRADE&type=ORDER`) or"
        f" comma-separated (`type=TRADE,ORDER`); at most {MAX_TYPES} distinct types.",
        {"type": "array", "items": {"type": "string", "pattern": TYPE_ITEM}},
        style="form",
        explode=True,
    ),
    "severity": _query(
        "severity",
        "Minimum severity (case-insensitive): `WARNING` returns WARNING, ERROR and CRITICAL.",
        schema_ref("Severity"),
    ),
    "since": _query(
        "since",
        "Inclusive lower bound: ISO 8601 with a timezone (`2024-05-01T12:00:00Z`; encode"
        " a `+` offset as `%2B`). Must be before `until`.",
        DATE_TIME,
    ),
    "until": _query("until", "Exclusive upper bound: ISO 8601 with a timezone.", DATE_TIME),
    "strategy_id": _query(
        "strategy_id", "Exact match (not blank).", {**_NON_BLANK_ID, "pattern": "\\S"}
    ),
    "trade_id": _query("trade_id", "Exact match (not blank).", {**_NON_BLANK_ID, "pattern": "\\S"}),
    "limit": _query(
        "limit",
        "Page size.",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    "cursor": _query(
        "cursor",
        "The `next_cursor` of the previous page, with the same filters.",
        {"type": "string", "pattern": CURSOR},
    ),
}
_FILTERS: Final = ["type", "severity", "strategy_id", "trade_id"]

# -- responses ------------------------------------------------------------------------------

_HEADERS: Final[Json] = {
    "NoStore": {
        "description": "Every answer is computed fresh: `no-store`.",
        "required": True,
        "schema": {"type": "string", "const": "no-store"},
    },
}

_RESPONSES: Final[Json] = {
    "InvalidParams": problem_response(
        "A query parameter is unknown, repeated, empty or malformed; `invalid_params` names"
        " each one.",
        "InvalidParamsProblem",
    ),
    "Unauthorized": problem_response(
        "The bearer token is missing, malformed or wrong.",
        headers={
            "WWW-Authenticate": {
                "description": '`Bearer realm="trading-bot"`, with `error="invalid_token"`'
                " when a token was given but is wrong.",
                "required": True,
                "schema": {"type": "string", "pattern": "^Bearer realm="},
            }
        },
    ),
    "DatabaseUnavailable": problem_response("The database is unavailable; retry later."),
    # Not referenced by an operation (no path has parameters, every operation is a GET):
    # the answers to a request outside the documented operations, for reference.
    "NotFound": problem_response("No such endpoint (with a token configured: 401 first)."),
    "MethodNotAllowed": problem_response(
        "The path exists but not with this method.",
        headers={
            "Allow": {
                "description": "The methods the path supports, e.g. `GET,HEAD`.",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
    "HealthPass": {
        "description": "`pass` or `warn`.",
        "headers": {"Cache-Control": ref("headers", "NoStore")},
        "content": content(
            HEALTH_JSON,
            {
                "allOf": [
                    schema_ref("Health"),
                    {"properties": {"status": {"enum": ["pass", "warn"]}}},
                ]
            },
        ),
    },
    "HealthFail": {
        "description": "`fail` (also when the checks have not run yet or are stale).",
        "headers": {"Cache-Control": ref("headers", "NoStore")},
        "content": content(
            HEALTH_JSON,
            {"allOf": [schema_ref("Health"), {"properties": {"status": {"const": "fail"}}}]},
        ),
    },
}


def _health_operation(path: str, summary: str, description: str) -> tuple[str, Json]:
    name = path.removeprefix("/api/health").strip("/") or "summary"
    return path, {
        "get": {
            "tags": ["health"],
            "operationId": f"health{name.title()}",
            "summary": summary,
            "description": description,
            "responses": {
                "200": ref("responses", "HealthPass"),
                "503": ref("responses", "HealthFail"),
            },
        }
    }


_HEALTH_PATHS: Final = dict(
    [
        _health_operation(
            "/api/health",
            "Overall health",
            "Database, supervision tree, disk, event spool, broker, trading gate and scheduler,"
            " from the"
            " health actor's cached report (never a query per request).",
        ),
        _health_operation(
            "/api/health/detailed",
            "Every check",
            "All checks, with process metrics and database statistics.",
        ),
        _health_operation("/api/health/database", "Database", "Round trip and latency."),
        _health_operation("/api/health/broker", "Broker", "Connection to the gateway."),
        _health_operation(
            "/api/health/trading",
            "Trading gate",
            "warn with 'blocked: reconciliation (...)' while new orders are refused.",
        ),
        _health_operation("/api/health/scheduler", "Scheduler", "Runs and outcomes."),
        _health_operation("/api/health/disk", "Disk", "Free space of the home and log folders."),
        _health_operation(
            "/api/health/ready",
            "Readiness",
            "Critical dependencies only: the database and the supervision tree.",
        ),
        _health_operation(
            "/api/health/live",
            "Liveness",
            "The process and its event loop only, never a dependency. Needs no token.",
        ),
    ]
)


def _header(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "schema": schema,
        "description": description,
    }


# The RFC 6455 handshake; without an upgrade request the endpoint answers 426.
_WEBSOCKET_HEADERS: Final = [
    _header("Upgrade", {"type": "string", "const": "websocket"}, "The upgrade request."),
    _header(
        "Connection",
        {"type": "string", "pattern": "[Uu][Pp][Gg][Rr][Aa][Dd][Ee]"},
        "Contains `Upgrade`.",
    ),
    _header("Sec-WebSocket-Key", {"type": "string"}, "Base64 of 16 random bytes."),
    _header("Sec-WebSocket-Version", {"type": "string", "const": "13"}, "13."),
]


def _trading_operation(name: str, description: str, *, reason_required: bool) -> Json:
    body: Json = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": 500}},
    }
    if reason_required:
        body["required"] = ["reason"]
        body["properties"]["reason"]["minLength"] = 1
    return {
        "post": {
            "tags": ["trading"],
            "operationId": f"{name}Trading",
            "summary": f"{name.capitalize()} trading",
            "description": description,
            "requestBody": {"required": reason_required, "content": content(JSON, body)},
            "responses": {
                "200": {
                    "description": "The state after the call (``changed``: false when it was"
                    " already so).",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(JSON, schema_ref("TradingState")),
                },
                "400": problem_response("The body is not a JSON object with a valid reason."),
                "403": problem_response("No API token is configured: use the shell."),
                "413": problem_response("The body is larger than 4096 bytes."),
                "503": problem_response("Not running, or a resume that could not be stored."),
            },
        }
    }


_PATHS: Final[Json] = {
    **_HEALTH_PATHS,
    **_OUTBOX_PATHS,
    **_EXIT_PATHS,
    **_STRATEGY_PATHS,
    "/api/events": {
        "get": {
            "tags": ["events"],
            "operationId": "listEvents",
            "summary": "Stored events, newest first",
            "description": "Keyset pagination: following `next_cursor` returns every event of"
            " the walk exactly once. Any other query parameter is rejected (400).",
            "parameters": [
                ref("parameters", name) for name in (*_FILTERS, "since", "until", "limit")
            ]
            + [ref("parameters", "cursor")],
            "responses": {
                "200": {
                    "description": "One page.",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(JSON, schema_ref("EventPage")),
                },
                "400": ref("responses", "InvalidParams"),
                "503": ref("responses", "DatabaseUnavailable"),
            },
        }
    },
    "/api/events/summary": {
        "get": {
            "tags": ["events"],
            "operationId": "summarizeEvents",
            "summary": "Counts by type and by severity",
            "parameters": [ref("parameters", "since"), ref("parameters", "until")],
            "responses": {
                "200": {
                    "description": "The counts over `[since, until)`.",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(JSON, schema_ref("EventSummary")),
                },
                "400": ref("responses", "InvalidParams"),
                "503": ref("responses", "DatabaseUnavailable"),
            },
        }
    },
    "/api/events/stream": {
        "get": {
            "tags": ["events"],
            "operationId": "streamEvents",
            "summary": "Live tail (WebSocket)",
            "description": "A WebSocket: after the handshake the server sends one JSON text"
            " message per newly stored event (an `Event`, see `x-websocket-message`) and"
            " ignores what the client sends. A client that falls too far behind is closed"
            " with 1008 (slow consumer); server shutdown closes with 1001. `since`, `until`,"
            " `limit` and `cursor` are rejected: the stream sends new events only.",
            "x-websocket-message": schema_ref("Event"),
            "parameters": [
                *(ref("parameters", name) for name in _FILTERS),
                *_WEBSOCKET_HEADERS,
            ],
            "responses": {
                "101": {"description": "Switching to the WebSocket protocol."},
                "400": problem_response(
                    "A filter is invalid (`invalid_params` names it), or the WebSocket"
                    " handshake is malformed."
                ),
                "426": problem_response(
                    "Not a WebSocket upgrade request.",
                    headers={
                        "Upgrade": {
                            "required": True,
                            "schema": {"type": "string", "const": "websocket"},
                        }
                    },
                ),
            },
        }
    },
    "/api/trading": {
        "get": {
            "tags": ["trading"],
            "operationId": "getTrading",
            "summary": "The kill switch and the order gates",
            "responses": {
                "200": {
                    "description": "Whether new orders may go out, and why not.",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(JSON, schema_ref("TradingState")),
                },
                "503": problem_response("The bot is not running."),
            },
        }
    },
    "/api/trading/pause": _trading_operation(
        "pause",
        "Pause new orders (open orders stay); durable, audited, mailed. Always needs the"
        " API token (403 without one configured).",
        reason_required=True,
    ),
    "/api/trading/resume": _trading_operation(
        "resume",
        "Let new orders flow again (other gates permitting); refused with 503 unless it"
        " can be stored. Always needs the API token (403 without one configured).",
        reason_required=False,
    ),
    "/api/reports/daily": {
        "get": {
            "tags": ["reports"],
            "operationId": "getDailyReport",
            "summary": "The daily summary of a trading date",
            "description": "Trades with realized P&L, commissions, win rate, open positions,"
            " counts, incidents and tomorrow's watchlist, from the recorded events; the"
            " broker's positions with marks, equity and its change as recorded when the"
            " date's summary was made (see docs/reports.md). The same JSON as"
            " `trading-bot report daily --json`.",
            "parameters": [ref("parameters", "date")],
            "responses": {
                "200": {
                    "description": "The summary.",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(JSON, schema_ref("DailyReport")),
                },
                "400": ref("responses", "InvalidParams"),
                "503": ref("responses", "DatabaseUnavailable"),
            },
        }
    },
    "/api/reports/pnl": {
        "get": {
            "tags": ["reports"],
            "operationId": "getPnlReport",
            "summary": "Realized P&L over a period, by day, week or month",
            "parameters": [ref("parameters", name) for name in ("from", "to", "by")],
            "responses": {
                "200": {
                    "description": "One row per period with fills, and the total.",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(JSON, schema_ref("PnlReport")),
                },
                "400": ref("responses", "InvalidParams"),
                "503": ref("responses", "DatabaseUnavailable"),
            },
        }
    },
    "/api/actors": {
        "get": {
            "tags": ["actors"],
            "operationId": "getActors",
            "summary": "The supervision tree",
            "responses": {
                "200": {
                    "description": "The root supervisor, its children nested.",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(JSON, schema_ref("ActorNode")),
                },
                "503": problem_response("The supervision tree is not running."),
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["metrics"],
            "operationId": "getMetrics",
            "summary": "Prometheus metrics",
            "description": "Text exposition format 0.0.4: process, HTTP request durations by"
            " route, events recorded, actor restarts, spool and outbox depth.",
            "responses": {
                "200": {
                    "description": "The exposition.",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(TEXT, {"type": "string"}),
                },
            },
        }
    },
    OPENAPI_PATH: {
        "get": {
            "tags": ["meta"],
            "operationId": "getOpenApi",
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 description of this server.",
                    "content": content(JSON, schema_ref("OpenApiDocument")),
                },
            },
        }
    },
}


def build_document(*, token_required: bool) -> Json:
    """The whole document; with ``token_required``, bearer auth and 401s are documented."""
    document: Json = {
        "openapi": "3.1.0",
        "info": {
            "title": "trading-bot",
            "version": __version__,
            "description": "The operations API of trading-bot: health, events, the"
            " supervision tree, the kill switch and metrics. Errors are `application/problem+json`"
            " (RFC 9457) and never carry a traceback: an unknown path answers 404 and a method"
            " a path does not support 405 with `Allow` (components `NotFound` and"
            " `MethodNotAllowed`). Any undocumented query parameter is rejected with 400.",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "health", "description": "`application/health+json`; 503 on `fail`."},
            {"name": "events", "description": "What the bot did."},
            {"name": "actors", "description": "The supervision tree."},
            {
                "name": "trading",
                "description": "The kill switch: pause, resume, cancel-all, flatten.",
            },
            {"name": "strategies", "description": "The strategies, their signals and orders."},
            {"name": "reports", "description": "Daily summary and P&L."},
            {"name": "mail", "description": "The outbox of alert e-mails."},
            {"name": "metrics", "description": "Prometheus."},
            {"name": "meta", "description": "This description."},
        ],
        "paths": copy.deepcopy(_PATHS),
        "components": {
            "schemas": copy.deepcopy({**SCHEMAS, **_EXIT_SCHEMAS, **_STRATEGY_SCHEMAS}),
            "parameters": copy.deepcopy(_PARAMETERS),
            "responses": copy.deepcopy(_RESPONSES),
            "headers": copy.deepcopy(_HEADERS),
        },
    }
    if token_required:
        document["components"]["securitySchemes"] = {
            BEARER_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "The value of `TRADINGBOT_API_TOKEN`.",
            }
        }
        document["security"] = [{BEARER_SCHEME: []}]
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                if path in OPEN_PATHS and method.upper() in OPEN_METHODS:
                    operation["security"] = []
                else:
                    operation["responses"]["401"] = ref("responses", "Unauthorized")
    else:
        del document["components"]["responses"]["Unauthorized"]
    return document


_ENCODED: Final = {
    secured: orjson.dumps(build_document(token_required=secured)) for secured in (False, True)
}
_TOKEN_REQUIRED = web.AppKey("openapi_token_required", bool)


def add_openapi_route(app: web.Application, *, token_required: bool) -> None:
    """Register ``GET /api/openapi.json`` serving the variant for this configuration."""
    app[_TOKEN_REQUIRED] = token_required
    app.router.add_get(OPENAPI_PATH, openapi_json)


async def openapi_json(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``: this server's OpenAPI 3.1 document."""
    return web.Response(body=_ENCODED[request.app[_TOKEN_REQUIRED]], content_type=JSON)
