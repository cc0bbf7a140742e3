"""The building blocks of the OpenAPI document: media types, helpers and the schemas.

:mod:`tradingbot.web.openapi` assembles the paths, parameters and responses from these;
the schemas are plain data built once at import, from the same constants the handlers
use (limits, enums, patterns).
"""

from __future__ import annotations

from typing import Any, Final

from tradingbot.events.model import MAX_ID_CHARS, MAX_MESSAGE_CHARS, Severity
from tradingbot.reports import BY_CHOICES
from tradingbot.supervision.handle import RESTARTING, RUNNING, STOPPED, UNRESPONSIVE
from tradingbot.supervision.spec import Kind, Restart
from tradingbot.web.events_api import MAX_LIMIT
from tradingbot.web.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tradingbot.web.outbox_api import OPENAPI_SCHEMAS as _OUTBOX_SCHEMAS
from tradingbot.web.problems import PROBLEM_JSON

JSON: Final = "application/json"
TEXT: Final = METRICS_CONTENT_TYPE.split(";", 1)[0]
SEVERITIES: Final = [member.name for member in Severity]
HEALTH_STATUSES: Final = ["pass", "warn", "fail"]
# The type filter upper-cases each item before checking it against the event type rule.
TYPE_ITEM: Final = "^[A-Za-z][A-Za-z0-9_]{0,31}$"
CURSOR: Final = "^[A-Za-z0-9_-]{55}$"  # base64url, no padding, of 41 bytes (cursor.py)

Json = dict[str, Any]


def ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> Json:
    return ref("schemas", name)


def nullable(schema: Json) -> Json:
    """``schema`` or null (JSON Schema 2020-12: ``type`` as a list)."""
    nullable = dict(schema)
    nullable["type"] = [schema["type"], "null"]
    return nullable


def content(media_type: str, schema: Json) -> Json:
    return {media_type: {"schema": schema}}


def problem_response(
    description: str, schema: str = "Problem", *, headers: Json | None = None
) -> Json:
    return {
        "description": description,
        "headers": {"Cache-Control": ref("headers", "NoStore"), **(headers or {})},
        "content": content(PROBLEM_JSON, schema_ref(schema)),
    }


# -- schemas --------------------------------------------------------------------------------

DATE_TIME: Final[Json] = {"type": "string", "format": "date-time"}
ID: Final[Json] = {"type": "string", "maxLength": MAX_ID_CHARS}
COUNT: Final[Json] = {"type": "integer", "minimum": 0}

MONEY: Final[Json] = {"type": "number"}
RATE: Final[Json] = {"type": ["number", "null"], "minimum": 0, "maximum": 1}

SCHEMAS: Final[Json] = {
    "DailyReport": {
        "description": "The daily summary (docs/reports.md defines each figure).",
        "type": "object",
        "required": [
            "date",
            "session",
            "realized_pnl",
            "commissions",
            "trades",
            "round_trips",
            "positions",
            "positions_source",
            "broker",
            "counts",
            "incidents",
            "watchlist",
        ],
        "properties": {
            "date": {"type": "string", "format": "date"},
            "session": {"type": "boolean"},
            "early_close": {"type": "boolean"},
            "realized_pnl": MONEY,
            "commissions": MONEY,
            "unrealized_pnl": {"type": ["number", "null"]},
            "equity": {
                "type": ["number", "null"],
                "description": "Net liquidation recorded at the date's summary (null: not"
                " recorded).",
            },
            "equity_previous": {
                "type": ["object", "null"],
                "description": "The latest recorded equity before the date.",
                "properties": {
                    "date": {"type": "string", "format": "date"},
                    "equity": {"type": "number"},
                },
            },
            "equity_change": {"type": ["number", "null"]},
            "equity_change_pct": {"type": ["number", "null"]},
            "broker_pnl": {
                "type": ["object", "null"],
                "description": "The broker's P&L of the day as recorded at the summary.",
                "properties": {
                    "daily": MONEY,
                    "realized": {"type": ["number", "null"]},
                    "unrealized": {"type": ["number", "null"]},
                },
            },
            "positions_source": {
                "type": "string",
                "enum": ["broker", "books"],
                "description": "broker: the positions and marks recorded at the summary;"
                " books: ours, rebuilt from the fills.",
            },
            "position_differences": {
                "type": "array",
                "description": "Symbols whose quantity at the broker differs from our books.",
                "items": {
                    "type": "object",
                    "required": ["symbol", "broker", "books"],
                    "properties": {
                        "symbol": {"type": "string"},
                        "broker": {"type": "number"},
                        "books": {"type": "number"},
                    },
                },
            },
            "broker": {
                "type": "object",
                "required": ["recorded", "as_of", "note"],
                "properties": {
                    "recorded": {"type": "boolean"},
                    "as_of": {"type": ["string", "null"], "format": "date-time"},
                    "note": {
                        "type": ["string", "null"],
                        "description": "Why the broker's figures are missing.",
                    },
                },
            },
            "trades": {"type": "array", "items": {"type": "object"}},
            "round_trips": {
                "type": "object",
                "required": ["closed", "wins", "losses", "win_rate"],
                "properties": {
                    "closed": {"type": "integer", "minimum": 0},
                    "wins": {"type": "integer", "minimum": 0},
                    "losses": {"type": "integer", "minimum": 0},
                    "win_rate": RATE,
                },
            },
            "positions": {"type": "array", "items": {"type": "object"}},
            "counts": {"type": "object"},
            "incidents": {"type": "array", "items": {"type": "object"}},
            "watchlist": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["symbol", "score", "signals"],
                    "properties": {
                        "symbol": {"type": "string"},
                        "score": {"type": "number"},
                        "signals": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
    "PnlReport": {
        "type": "object",
        "required": ["from", "to", "by", "periods", "total"],
        "properties": {
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "by": {"type": "string", "enum": list(BY_CHOICES)},
            "periods": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["period", "realized_pnl", "commissions", "fills", "win_rate"],
                    "properties": {
                        "period": {"type": "string"},
                        "realized_pnl": MONEY,
                        "commissions": MONEY,
                        "fills": {"type": "integer", "minimum": 0},
                        "win_rate": RATE,
                    },
                },
            },
            "total": {"type": "object"},
        },
    },
    **_OUTBOX_SCHEMAS,
    "Problem": {
        "description": "RFC 9457 problem details; never a traceback.",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference", "examples": ["about:blank"]},
            "title": {"type": "string", "description": "The HTTP reason phrase."},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "invalid_params": {"type": "array", "items": schema_ref("InvalidParam")},
        },
    },
    "InvalidParamsProblem": {
        "description": "A 400 naming every rejected query parameter at once.",
        "allOf": [
            schema_ref("Problem"),
            {
                "type": "object",
                "required": ["invalid_params"],
                "properties": {
                    "status": {"const": 400},
                    "invalid_params": {"minItems": 1},
                },
            },
        ],
    },
    "InvalidParam": {
        "type": "object",
        "required": ["name", "reason"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "description": "The query parameter's name."},
            "reason": {"type": "string"},
        },
    },
    "Severity": {"type": "string", "enum": SEVERITIES},
    "EventType": {
        "type": "string",
        "pattern": "^[A-Z][A-Z0-9_]{0,31}$",
        "description": "TRADE, SIGNAL, ORDER, RISK, SYSTEM, or a strategy's own type.",
    },
    "Event": {
        "type": "object",
        "required": [
            "id",
            "timestamp",
            "type",
            "severity",
            "message",
            "source",
            "strategy_id",
            "trade_id",
            "user_id",
            "context",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "timestamp": {**DATE_TIME, "description": "UTC."},
            "type": schema_ref("EventType"),
            "severity": schema_ref("Severity"),
            "message": {"type": "string", "maxLength": MAX_MESSAGE_CHARS},
            "source": {**ID, "description": "The recording actor, or empty."},
            "strategy_id": nullable(ID),
            "trade_id": nullable(ID),
            "user_id": nullable(ID),
            "context": {"type": "object", "description": "Free-form JSON; secrets redacted."},
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["events", "next_cursor"],
        "additionalProperties": False,
        "properties": {
            "events": {
                "type": "array",
                "items": schema_ref("Event"),
                "maxItems": MAX_LIMIT,
                "description": "Newest first.",
            },
            "next_cursor": {
                "type": ["string", "null"],
                "pattern": CURSOR,
                "description": "Pass as `cursor` (with the same filters) for the next page;"
                " null on the last page.",
            },
        },
    },
    "EventSummary": {
        "type": "object",
        "required": ["since", "until", "total", "by_type", "by_severity"],
        "additionalProperties": False,
        "properties": {
            "since": nullable(DATE_TIME),
            "until": nullable(DATE_TIME),
            "total": COUNT,
            "by_type": {
                "type": "object",
                "description": "The types present in the range, sorted.",
                "propertyNames": schema_ref("EventType"),
                "additionalProperties": COUNT,
            },
            "by_severity": {
                "type": "object",
                "description": "Every severity, 0 for the absent ones.",
                "required": SEVERITIES,
                "additionalProperties": False,
                "properties": dict.fromkeys(SEVERITIES, COUNT),
            },
        },
    },
    "KillSwitch": {
        "type": "object",
        "required": ["mode", "trading", "reason", "changed_by", "since", "durable"],
        "properties": {
            "mode": {"enum": ["running", "paused", "tripped"]},
            "trading": {"type": "boolean"},
            "reason": {"type": "string"},
            "changed_by": {"type": "string"},
            "since": nullable(DATE_TIME),
            "durable": {
                "type": "boolean",
                "description": "false: the last change could not be stored (a restart would"
                " not remember it)",
            },
        },
    },
    "TradingState": {
        "type": "object",
        "required": ["kill_switch", "gates", "orders_allowed"],
        "properties": {
            "kill_switch": schema_ref("KillSwitch"),
            "gates": {
                "type": "object",
                "description": "Each order gate's reason while it refuses new orders (null: open).",
                "properties": {
                    "kill_switch": nullable({"type": "string"}),
                    "live_account": nullable({"type": "string"}),
                    "restart_window": nullable({"type": "string"}),
                    "reconciliation": nullable({"type": "string"}),
                },
            },
            "orders_allowed": {"type": "boolean"},
            "pnl": nullable(
                {
                    "type": "object",
                    "description": "The account's latest P&L from the broker (`reqPnL`); "
                    "`daily` is what the daily loss limit reads (null: no report yet).",
                    "required": ["account", "daily", "unrealized", "realized", "received_at"],
                    "properties": {
                        "account": {"type": "string"},
                        "daily": {"type": "number"},
                        "unrealized": nullable({"type": "number"}),
                        "realized": nullable({"type": "number"}),
                        "received_at": {"type": "string", "format": "date-time"},
                    },
                }
            ),
            "changed": {"type": "boolean"},
            "warning": nullable({"type": "string"}),
        },
    },
    "ActorNode": {
        "description": "One node of the supervision tree; `children` nest recursively.",
        "type": "object",
        "required": [
            "id",
            "kind",
            "status",
            "restarts",
            "restart_type",
            "critical",
            "started_at",
            "mailbox",
            "dropped_messages",
            "last_failure",
            "details",
            "children",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "kind": {"type": "string", "enum": [kind.value for kind in Kind]},
            "status": {"type": "string", "enum": [RUNNING, RESTARTING, STOPPED, UNRESPONSIVE]},
            "restarts": COUNT,
            "restart_type": {"type": "string", "enum": [restart.value for restart in Restart]},
            "critical": {"type": "boolean"},
            "started_at": nullable(DATE_TIME),
            "mailbox": {**COUNT, "description": "Messages waiting in the actor's inbox."},
            "dropped_messages": COUNT,
            "last_failure": {"oneOf": [{"type": "null"}, schema_ref("ActorFailure")]},
            "details": {
                "type": "object",
                "description": "What the actor publishes about itself, e.g. the event"
                " logger's `mode`, `spool_depth` and `spool_oldest`.",
            },
            "children": {"type": "array", "items": schema_ref("ActorNode")},
        },
    },
    "ActorFailure": {
        "type": "object",
        "required": ["type", "message", "traceback"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "description": "The exception's class name."},
            "message": {"type": "string"},
            "traceback": {"type": "string"},
        },
    },
    "Health": {
        "description": "draft-inadarei-api-health-check; `status` is the worst of the checks.",
        "type": "object",
        "required": ["status", "version", "releaseId", "serviceId", "description", "checks"],
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": HEALTH_STATUSES},
            "version": {"type": "string", "description": "Version of this format: 1."},
            "releaseId": {"type": "string", "description": "The trading-bot release."},
            "serviceId": {"type": "string", "description": "This run's id."},
            "description": {"type": "string"},
            "output": {"type": "string", "minLength": 1},
            "checks": {
                "type": "object",
                "description": "Keyed `component:measurement`, e.g. `database:responseTime`.",
                "propertyNames": {"pattern": "^[^:]+:[^:]+$"},
                "additionalProperties": {
                    "type": "array",
                    "minItems": 1,
                    "items": schema_ref("HealthCheck"),
                },
            },
        },
    },
    "HealthCheck": {
        "type": "object",
        "required": ["componentType", "status", "time"],
        "additionalProperties": False,
        "properties": {
            "componentId": {"type": "string"},
            "componentType": {
                "type": "string",
                "examples": ["component", "datastore", "system"],
            },
            "observedValue": {
                "type": ["number", "string", "boolean", "object", "array"],
                "description": "Absent when nothing was measured.",
            },
            "observedUnit": {"type": "string"},
            "status": {"type": "string", "enum": HEALTH_STATUSES},
            "time": DATE_TIME,
            "output": {"type": "string", "minLength": 1},
            "affectedEndpoints": {"type": "array", "items": {"type": "string"}},
        },
    },
    "OpenApiDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {
            "openapi": {"type": "string", "pattern": "^3\\.1\\.[0-9]+$"},
            "info": {"type": "object"},
            "paths": {"type": "object"},
        },
    },
}
