"""``GET /api/strategies`` and the data of the dashboard's ``/strategies`` page.

One entry per configured strategy: its id and class, its state in words (running,
waiting for a named reason, restarting, stopped after a crash loop), its restarts, its
watchlist, its last signals (the SIGNAL events stored with its ``strategy_id``), and
its open and recent orders (the broker's order book, by the strategy recorded on each
order). The state comes from the strategy's node in the supervision tree, which the
strategy actor keeps up to date (``state``, ``waiting_for``, ``watchlist`` and its
activity counts in the node's details); no actor is asked anything. The signals come
from a :class:`~tradingbot.web.signal_book.SignalBook`: one read per strategy, then the
event hub.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from aiohttp import web

from tradingbot.broker.status import FINAL_STATUSES, OrderRecord
from tradingbot.storage import Database, StorageError, StorageUnavailable
from tradingbot.strategies.loader import LoadedStrategy
from tradingbot.supervision.snapshot import ActorSnapshot
from tradingbot.web.openapi_schemas import JSON, content, nullable, problem_response, schema_ref
from tradingbot.web.problems import problem
from tradingbot.web.services import BROKER_STATUS, DATABASE, EVENT_HUB, STRATEGIES, TREE
from tradingbot.web.signal_book import SignalBook

STRATEGIES_PATH: Final = "/api/strategies"
SIGNALS_SHOWN: Final = 10  # last signals per strategy
RECENT_ORDERS: Final = 20  # recent orders per strategy (open ones are all shown)
SIGNAL_BOOK: Final = web.AppKey("strategies_signal_book", SignalBook)
STATES: Final = ("running", "waiting", "restarting", "unresponsive", "stopped", "not started")


def _class_name(loaded: LoadedStrategy) -> str:
    return f"{loaded.cls.__module__}:{loaded.cls.__qualname__}"


def _state(node: ActorSnapshot | None) -> tuple[str, str]:
    """(state, in words) of a strategy's worker node."""
    if node is None:
        return "not started", "not started"
    if node.status == "stopped":
        if node.restarts:
            return "stopped", "stopped after a crash loop (its supervisor gave up)"
        return "stopped", "stopped"
    if node.status == "restarting":
        return "restarting", f"restarting (restart {node.restarts})"
    if node.status == "unresponsive":
        return "unresponsive", "unresponsive: stuck in a callback"
    details = node.details
    if details.get("state") == "running":
        return "running", "running"
    why = details.get("waiting_for")
    return "waiting", f"waiting for: {why}" if why else "waiting to start"


def _order(record: OrderRecord) -> dict[str, Any]:
    return {
        "order_id": record.order_ref,
        "symbol": record.symbol,
        "side": record.side,
        "quantity": record.quantity,
        "order_type": record.order_type,
        "limit_price": record.limit_price,
        "status": record.status,
        "filled": record.filled,
        "avg_fill_price": record.avg_fill_price,
        "signal_id": record.signal_id,
    }


def _signals(book: SignalBook, database: Database, strategy_id: str) -> list[dict[str, Any]]:
    """The strategy's newest SIGNAL events, newest first (StorageError if unreadable)."""
    rows = []
    for event in book.latest(database, strategy_id):
        context = event.context
        rows.append(
            {
                "id": str(event.id),
                "timestamp": event.timestamp.isoformat(),
                "symbol": str(context.get("symbol", "")),
                "side": str(context.get("side", "")),
                "strength": context.get("strength"),
                "reason": str(context.get("reason", "")),
            }
        )
    return rows


async def strategies_body(app: web.Application) -> dict[str, Any] | None:
    """The body of ``GET /api/strategies``; None while the bot is not running."""
    host = app[STRATEGIES]()
    tree = app[TREE]()
    if host is None or tree is None:
        return None
    snapshot = tree.snapshot()
    database = app[DATABASE]()
    orders = app[BROKER_STATUS].orders()
    entries = []
    for loaded in host.strategies:
        node = snapshot.find(loaded.actor_id)
        state, words = _state(node)
        details = {} if node is None else node.details
        mine = [o for o in orders if o.strategy_id == loaded.id]
        signals: list[dict[str, Any]] | None = None
        signals_error = ""
        if database is None:
            signals_error = "the database is not open"
        else:
            try:
                book = app[SIGNAL_BOOK]
                signals = await asyncio.to_thread(_signals, book, database, loaded.id)
            except StorageUnavailable:
                signals_error = "database unavailable: retry later"
            except StorageError as exc:
                signals_error = f"cannot read signals: {exc}"
        entries.append(
            {
                "id": loaded.id,
                "class": _class_name(loaded),
                "actor": loaded.actor_id,
                "state": state,
                "state_text": words,
                "waiting_for": details.get("waiting_for") if state == "waiting" else None,
                "restarts": 0 if node is None else node.restarts,
                "last_failure": None
                if node is None or node.last_failure is None
                else f"{node.last_failure.type}: {node.last_failure.message}",
                "watchlist": list(details.get("watchlist") or loaded.watchlist),
                "activity": {k: int(details.get(k, 0)) for k in ("signals", "orders", "refused")},
                "signals": signals,
                "signals_error": signals_error or None,
                "open_orders": [_order(o) for o in mine if o.status not in FINAL_STATUSES],
                "recent_orders": [_order(o) for o in reversed(mine[-RECENT_ORDERS:])],
            }
        )
    return {"strategies": entries}


async def get_strategies(request: web.Request) -> web.Response:
    """``GET /api/strategies``: each strategy's state, watchlist, signals and orders."""
    body = await strategies_body(request.app)
    if body is None:
        return problem(503, "the bot is not running")
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def add_strategies_route(app: web.Application) -> None:
    """Register ``GET /api/strategies`` and the signal book it (and the page) reads."""
    app[SIGNAL_BOOK] = SignalBook(SIGNALS_SHOWN)
    app.router.add_get(STRATEGIES_PATH, get_strategies)
    app.cleanup_ctx.append(_follow_signals)


async def _follow_signals(app: web.Application) -> AsyncIterator[None]:
    """The signal book follows the event hub while the app runs."""
    listener = app[EVENT_HUB].listen(app[SIGNAL_BOOK].on_events)
    try:
        yield
    finally:
        listener.close()


_ORDER: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["order_id", "symbol", "side", "quantity", "order_type", "status", "filled"],
    "properties": {
        "order_id": {"type": "string", "description": "Our order id (the `orderRef`)."},
        "symbol": {"type": "string"},
        "side": {"type": "string", "description": "BUY or SELL."},
        "quantity": {"type": "number"},
        "order_type": {"type": "string"},
        "limit_price": nullable({"type": "number"}),
        "status": {"type": "string"},
        "filled": {"type": "number"},
        "avg_fill_price": {"type": "number"},
        "signal_id": nullable({"type": "string"}),
    },
}
_SIGNAL: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["id", "timestamp", "symbol", "side"],
    "properties": {
        "id": {"type": "string", "description": "The SIGNAL event's id."},
        "timestamp": {"type": "string", "format": "date-time"},
        "symbol": {"type": "string"},
        "side": {"type": "string"},
        "strength": {"type": ["number", "null"]},
        "reason": {"type": "string"},
    },
}
OPENAPI_SCHEMAS: Final[dict[str, Any]] = {
    "StrategyOrder": _ORDER,
    "StrategySignal": _SIGNAL,
    "Strategy": {
        "type": "object",
        "required": ["id", "class", "state", "state_text", "restarts", "watchlist"],
        "properties": {
            "id": {"type": "string"},
            "class": {"type": "string", "description": "`module:Class` of the strategy."},
            "actor": {"type": "string", "description": "Its worker in the supervision tree."},
            "state": {"enum": list(STATES)},
            "state_text": {"type": "string", "description": "The state in words, with why."},
            "waiting_for": nullable({"type": "string"}),
            "restarts": {"type": "integer", "minimum": 0},
            "last_failure": nullable({"type": "string"}),
            "watchlist": {"type": "array", "items": {"type": "string"}},
            "activity": {
                "type": "object",
                "description": "Signals, orders and refusals of the running incarnation.",
                "properties": {
                    k: {"type": "integer", "minimum": 0} for k in ("signals", "orders", "refused")
                },
            },
            "signals": {
                "type": ["array", "null"],
                "description": f"The last {SIGNALS_SHOWN} SIGNAL events, newest first"
                " (null: the database could not be read, see `signals_error`).",
                "items": {"$ref": "#/components/schemas/StrategySignal"},
            },
            "signals_error": nullable({"type": "string"}),
            "open_orders": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/StrategyOrder"},
            },
            "recent_orders": {
                "type": "array",
                "description": f"Its last {RECENT_ORDERS} orders of this run, newest first.",
                "items": {"$ref": "#/components/schemas/StrategyOrder"},
            },
        },
    },
    "StrategyList": {
        "type": "object",
        "required": ["strategies"],
        "properties": {
            "strategies": {"type": "array", "items": {"$ref": "#/components/schemas/Strategy"}}
        },
    },
}
OPENAPI_PATHS: Final[dict[str, Any]] = {
    STRATEGIES_PATH: {
        "get": {
            "tags": ["strategies"],
            "operationId": "listStrategies",
            "summary": "The strategies: state, watchlist, last signals and orders",
            "responses": {
                "200": {
                    "description": "One entry per configured strategy (none configured: empty).",
                    "headers": {"Cache-Control": {"$ref": "#/components/headers/NoStore"}},
                    "content": content(JSON, schema_ref("StrategyList")),
                },
                "503": problem_response("The bot is not running."),
            },
        }
    }
}
