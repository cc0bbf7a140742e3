"""``POST /api/trading/cancel-all`` and ``POST /api/trading/flatten``: leave the market.

Like pause and resume (:mod:`tradingbot.web.trading_api`) they **always** need the API
token, also on loopback (403 pointing to the shell without one configured), and take a
JSON body ``{"reason": "..."}`` (required: it is recorded and mailed). The work blocks
on the broker and the event store, so it runs on a worker thread. A broker that is not
synced answers 503; a cancel-all that could not be recorded (nothing sent) 503; a
timeout 504 (the outcome is then unknown: look at ``GET /api/trading`` and the events).
The 200 body says what was cancelled and sent, plus ``summary``: the same lines the
shell prints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from tradingbot.broker import BrokerNotReady, cancel_all, flatten
from tradingbot.broker.flatten import cancel_all_dict, describe_cancel_all, describe_flatten
from tradingbot.events.recorder import EventNotDurable
from tradingbot.tellable import Tellable
from tradingbot.trading.switch import MAX_REASON_CHARS
from tradingbot.web.openapi_schemas import JSON, content, problem_response, ref, schema_ref
from tradingbot.web.problems import problem
from tradingbot.web.session import CURRENT
from tradingbot.web.trading_api import TRADING_API, _json, _reason

EXIT_TIMEOUT_S = 20.0
NO_TOKEN = (
    "cancelling orders or flattening over HTTP needs TRADINGBOT_API_TOKEN; without one use "
    "the shell: trading-bot shell -c 'flatten REASON' (or 'cancel-all REASON')"
)


@dataclass(frozen=True, slots=True)
class Broker:
    """How the endpoints reach the broker actor: its handle, None while it is not up."""

    handle: Callable[[], Tellable | None]


BROKER = web.AppKey("trading_exits_broker", Broker)


def add_exit_routes(app: web.Application, broker: Callable[[], Tellable | None]) -> None:
    """Register both endpoints; ``broker`` gives the broker actor's handle (None: down)."""
    app[BROKER] = Broker(broker)
    app.router.add_post("/api/trading/cancel-all", post_cancel_all)
    app.router.add_post("/api/trading/flatten", post_flatten)


async def _exit(request: web.Request, name: str, run: Callable[..., Any]) -> web.Response:
    api = request.app[TRADING_API]
    if not api.token_configured:
        return problem(403, NO_TOKEN)
    reason = await _reason(request, required=True)
    if isinstance(reason, web.Response):
        return reason
    handle = request.app[BROKER].handle()
    if handle is None:
        return problem(503, "the bot is not running")
    via = "dashboard session" if request.get(CURRENT) is not None else "HTTP API token"
    by = f"{via} ({request.remote or 'unknown client'})"
    try:
        body: dict[str, Any] = await asyncio.to_thread(run, handle, api.status, by, reason)
    except BrokerNotReady as exc:
        return problem(503, f"{name}: {exc}; nothing was sent")
    except EventNotDurable as exc:
        return problem(503, f"{name} refused, nothing was sent: {exc}")
    except ValueError as exc:  # e.g. control characters in the reason
        return problem(400, str(exc))
    except TimeoutError as exc:
        return problem(504, f"{name}: {exc}; the outcome is unknown, see GET /api/trading")
    body["by"] = by
    body["reason"] = reason
    return _json(body)


def _cancel_all(handle: Tellable, status: Any, by: str, reason: str) -> dict[str, Any]:
    result = cancel_all(handle, status, by=by, reason=reason, timeout_s=EXIT_TIMEOUT_S)
    return {**cancel_all_dict(result), "summary": describe_cancel_all(result)}


def _flatten(handle: Tellable, status: Any, by: str, reason: str) -> dict[str, Any]:
    result = flatten(handle, status, by=by, reason=reason, timeout_s=EXIT_TIMEOUT_S)
    return {**result.as_dict(), "summary": describe_flatten(result)}


async def post_cancel_all(request: web.Request) -> web.Response:
    """``POST /api/trading/cancel-all``: cancel every open order of the account."""
    return await _exit(request, "cancel-all", _cancel_all)


async def post_flatten(request: web.Request) -> web.Response:
    """``POST /api/trading/flatten``: cancel all, then close every position at market."""
    return await _exit(request, "flatten", _flatten)


# -- OpenAPI ---------------------------------------------------------------------------------

_ORDER: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["order_ref", "ours", "symbol", "side", "quantity", "status"],
    "properties": {
        "order_ref": {"type": "string", "description": "`TB-…` for the bot's own orders."},
        "ours": {"type": "boolean"},
        "symbol": {"type": "string"},
        "side": {"enum": ["BUY", "SELL"]},
        "quantity": {"type": "number"},
        "filled": {"type": "number"},
        "order_type": {"type": "string"},
        "status": {"type": "string"},
    },
}
_CANCELLED: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["scope", "open_orders"],
    "properties": {
        "scope": {
            "enum": ["global", "account"],
            "description": "`global`: the gateway's global cancel; `account`: one cancel per"
            " order of the account (the login manages other accounts too).",
        },
        "open_orders": {
            "type": "array",
            "description": "The account's orders open at the gateway just before the cancel.",
            "items": _ORDER,
        },
    },
}
_COMMON: Final[dict[str, Any]] = {
    "by": {"type": "string", "description": "Who: `HTTP API token (address)` or the session."},
    "reason": {"type": "string"},
    "summary": {
        "type": "array",
        "items": {"type": "string"},
        "description": "What was done, in the lines the shell prints.",
    },
}
_CLOSING: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["symbol", "position", "side", "quantity", "order_ref", "sent", "error"],
    "properties": {
        "symbol": {"type": "string"},
        "position": {"type": "number", "description": "The signed position closed."},
        "side": {"enum": ["BUY", "SELL"]},
        "quantity": {"type": "number"},
        "order_ref": {"type": ["string", "null"]},
        "sent": {
            "type": "boolean",
            "description": "False: a live closing order was already known, or an error.",
        },
        "error": {"type": ["string", "null"], "description": "Why no order went out."},
    },
}
OPENAPI_SCHEMAS: Final[dict[str, Any]] = {
    "CancelAllResult": {
        "type": "object",
        "required": ["scope", "open_orders", "by", "reason", "summary"],
        "properties": {**_CANCELLED["properties"], **_COMMON},
    },
    "FlattenResult": {
        "type": "object",
        "required": ["cancelled", "still_open", "closing", "by", "reason", "summary"],
        "properties": {
            "cancelled": _CANCELLED,
            "still_open": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Our orders not yet final when the bounded wait ended.",
            },
            "closing": {"type": "array", "items": _CLOSING},
            **_COMMON,
        },
    },
}


def _operation(name: str, summary: str, description: str, schema: str) -> dict[str, Any]:
    reason = {"type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS}
    body = {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": reason},
    }
    return {
        "post": {
            "tags": ["trading"],
            "operationId": name,
            "summary": summary,
            "description": description,
            "requestBody": {"required": True, "content": content(JSON, body)},
            "responses": {
                "200": {
                    "description": "What was cancelled (and sent).",
                    "headers": {"Cache-Control": ref("headers", "NoStore")},
                    "content": content(JSON, schema_ref(schema)),
                },
                "400": problem_response("The body is not a JSON object with a valid reason."),
                "403": problem_response("No API token is configured: use the shell."),
                "413": problem_response("The body is larger than 4096 bytes."),
                "503": problem_response(
                    "Not running, the broker is not synced, or the cancel could not be"
                    " recorded: nothing was sent."
                ),
                "504": problem_response("No answer in time: the outcome is unknown."),
            },
        }
    }


OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/trading/cancel-all": _operation(
        "cancelAllOrders",
        "Cancel every open order",
        "The gateway's global cancel (every open order of the account, whoever placed it;"
        " order by order when the login manages other accounts too), recorded and mailed"
        " first. Works while paused or tripped. Always needs the API token (403 without one"
        " configured).",
        "CancelAllResult",
    ),
    "/api/trading/flatten": _operation(
        "flattenPositions",
        "Cancel all orders, then close every position",
        "Cancel-all, a bounded wait for our orders to end, then one reduce-only market order"
        " per non-zero position. Idempotent: a repeat finds a live closing order known and"
        " sends nothing new; a flat account sends nothing. Works while paused or tripped (not"
        " before the start reconciliation passed: then `closing[].error` says so). Always"
        " needs the API token (403 without one configured).",
        "FlattenResult",
    ),
}
