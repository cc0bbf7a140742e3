"""RFC 9457 problem details: every HTTP error is ``application/problem+json``, never a traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from aiohttp import web

log = structlog.get_logger(__name__)
PROBLEM_JSON = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, detail: str, **extra: Any) -> web.Response:
    """A problem+json response with the standard fields and any extension members."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store"},
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's HTTP errors and any unexpected exception into problem+json."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
        if exc.status == 404:
            detail = f"no such endpoint: {request.path}"
        elif exc.status == 405:
            detail = f"method {request.method} is not allowed on {request.path}"
        response = problem(exc.status, detail or exc.reason)
        for name in ("Allow", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("http_handler_failed", path=request.path, method=request.method)
        return problem(500, "internal error; see the server log")
