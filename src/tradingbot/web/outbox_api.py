"""``GET /api/outbox``: the mail outbox, read-only: pending, failed (with why) and sent.

One status per request, newest first, at most ``MAX_LIMIT`` rows; the mail's rendering
context and MIME body are left out (they can be large, and the subject says what it
is). The database call runs on a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson
from aiohttp import web

from tradingbot.storage import Database, StorageUnavailable
from tradingbot.storage.outbox import FAILED, PENDING, SENT, OutboxRecord, OutboxRepository
from tradingbot.web.params import InvalidParams, QueryReader
from tradingbot.web.problems import problem
from tradingbot.web.services import DATABASE

OUTBOX_PATH: Final = "/api/outbox"
STATUSES: Final = (PENDING, FAILED, SENT)
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500


def mail_dict(record: OutboxRecord) -> dict[str, Any]:
    """JSON-ready form of one stored mail (the shape of ``/api/outbox`` items)."""

    def when(moment: Any) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "id": record.id,
        "message_id": record.message_id,
        "kind": record.kind,
        "severity": record.severity,
        "subject": record.subject,
        "recipients": list(record.recipients),
        "status": record.status,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "created_at": when(record.created_at),
        "next_attempt_at": when(record.next_attempt_at),
        "sent_at": when(record.sent_at),
        "coalesced": record.coalesced,
    }


def read_outbox(database: Database | None, status: str, limit: int) -> list[OutboxRecord] | None:
    """The newest ``limit`` mails of ``status`` (None: the runtime is not running)."""
    if database is None:
        return None
    return OutboxRepository(database).recent(status=status, limit=limit)


def add_outbox_route(app: web.Application) -> None:
    async def outbox(request: web.Request) -> web.Response:
        """``GET /api/outbox?status=&limit=``: stored mails of one status, newest first."""
        reader = QueryReader(request.query, ("status", "limit"))
        status = reader.one("status") or PENDING
        if status not in STATUSES:
            reader.fail("status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
        limit = reader.integer("limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        try:
            reader.check()
        except InvalidParams as exc:
            return exc.response()
        try:
            database = request.app[DATABASE]()
            records = await asyncio.to_thread(read_outbox, database, status, limit)
        except StorageUnavailable:
            return problem(503, "database unavailable: retry later")
        if records is None:
            return problem(503, "the bot is not running")
        return web.Response(
            body=orjson.dumps({"status": status, "mails": [mail_dict(r) for r in records]}),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    app.router.add_get(OUTBOX_PATH, outbox)


# -- its part of /api/openapi.json (merged by tradingbot.web.openapi) --------------------

_STAMP: Final = {"type": ["string", "null"], "format": "date-time"}
OPENAPI_SCHEMAS: Final[dict[str, Any]] = {
    "Mail": {
        "type": "object",
        "required": ["id", "message_id", "kind", "subject", "status", "attempts", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "message_id": {"type": "string"},
            "kind": {"type": "string"},
            "severity": {"type": "integer"},
            "subject": {"type": "string"},
            "recipients": {"type": "array", "items": {"type": "string"}},
            "status": {"enum": list(STATUSES)},
            "attempts": {"type": "integer", "minimum": 0},
            "last_error": {"type": ["string", "null"], "description": "Why it failed."},
            "created_at": {"type": "string", "format": "date-time"},
            "next_attempt_at": _STAMP,
            "sent_at": _STAMP,
            "coalesced": {"type": "integer", "minimum": 0},
        },
    },
    "MailList": {
        "type": "object",
        "required": ["status", "mails"],
        "properties": {
            "status": {"enum": list(STATUSES)},
            "mails": {"type": "array", "items": {"$ref": "#/components/schemas/Mail"}},
        },
    },
}
OPENAPI_PATHS: Final[dict[str, Any]] = {
    OUTBOX_PATH: {
        "get": {
            "tags": ["mail"],
            "operationId": "listOutbox",
            "summary": "The mail outbox: pending, failed (with the reason) or sent",
            "description": "Newest first; the rendering context and MIME body are left out."
            " Any other query parameter is rejected (400).",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "description": "Which mails.",
                    "schema": {"enum": list(STATUSES), "default": PENDING},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "description": "At most this many.",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LIMIT,
                        "default": DEFAULT_LIMIT,
                    },
                },
            ],
            "responses": {
                "200": {
                    "description": "The mails.",
                    "headers": {"Cache-Control": {"$ref": "#/components/headers/NoStore"}},
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/MailList"}}
                    },
                },
                "400": {"$ref": "#/components/responses/InvalidParams"},
                "503": {"$ref": "#/components/responses/DatabaseUnavailable"},
            },
        }
    }
}
