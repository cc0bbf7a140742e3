"""Bearer-token authentication (RFC 6750) for every endpoint but ``/api/health/live``.

With ``TRADINGBOT_API_TOKEN`` set, a request must carry ``Authorization: Bearer
<token>``; the WebSocket ``/api/events/stream`` is covered too (the header goes on the
upgrade request). Without a token (the loopback default) everything is open. Only
``GET``/``HEAD /api/health/live`` is always open, so that a load balancer or systemd
can check liveness without the secret; an unknown path also answers 401, so that the
API cannot be mapped without the token.

A refused request answers 401 ``application/problem+json`` with ``WWW-Authenticate:
Bearer realm="trading-bot"`` (plus ``error="invalid_token"`` when a token was given but
is wrong). The detail says what is wrong and never echoes what the client sent.

The comparison is constant-time: SHA-256 digests of the given and expected tokens are
compared with :func:`hmac.compare_digest`, so neither the content nor the length of
the expected token shows in the timing. The Authorization header is never logged.
"""

from __future__ import annotations

import hashlib
import hmac

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from tradingbot.web.problems import Handler, problem

log = structlog.get_logger(__name__)

REALM = "trading-bot"
OPEN_PATHS = frozenset({"/api/health/live"})
OPEN_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})
CHALLENGE = f'Bearer realm="{REALM}"'
# Request key set by an earlier middleware that authenticated the request otherwise
# (the dashboard's session cookie, tradingbot.web.session).
AUTHENTICATED = web.RequestKey("authenticated", bool)
INVALID_TOKEN_CHALLENGE = f'{CHALLENGE}, error="invalid_token"'

MISSING = "this endpoint requires an 'Authorization: Bearer <token>' header"
MALFORMED = "the Authorization header is malformed; expected 'Bearer <token>'"
WRONG = "the bearer token is not valid"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _is_open(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return (
        resource is not None and resource.canonical in OPEN_PATHS and request.method in OPEN_METHODS
    )


def _refuse(request: web.Request, detail: str, challenge: str, reason: str) -> web.Response:
    log.info(
        "http_unauthorized",
        method=request.method,
        path=request.path,
        remote=request.remote,
        reason=reason,
    )
    response = problem(401, detail)
    response.headers[hdrs.WWW_AUTHENTICATE] = challenge
    return response


def bearer_auth(token: str | None) -> Middleware:
    """The middleware: pass-through without a token, else require ``Bearer <token>``."""
    if not token:

        @web.middleware
        async def open_access(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await handler(request)

        return open_access

    expected = _digest(token)

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_open(request) or request.get(AUTHENTICATED):
            return await handler(request)
        headers = request.headers.getall(hdrs.AUTHORIZATION, [])
        if not headers:
            return _refuse(request, MISSING, CHALLENGE, "missing")
        parts = headers[0].split()
        if len(headers) > 1 or len(parts) != 2 or parts[0].lower() != "bearer":
            return _refuse(request, MALFORMED, CHALLENGE, "malformed")
        if not hmac.compare_digest(_digest(parts[1]), expected):
            return _refuse(request, WRONG, INVALID_TOKEN_CHALLENGE, "invalid_token")
        return await handler(request)

    return require_token


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MISDIRECTED = (
    "this API answers only requests addressed to this machine's loopback name "
    "(e.g. http://127.0.0.1:PORT); configure TRADINGBOT_API_TOKEN to serve other names"
)


def loopback_host_only(bound_host: str) -> Middleware:
    """Without a token: refuse requests whose ``Host`` is not a loopback name (421).

    A tokenless API is open to anything on this machine; a web page of another site can
    still reach it through DNS rebinding (its name re-resolved to 127.0.0.1), but its
    requests then carry that site's name in ``Host``, so they are refused here.
    """
    allowed = LOOPBACK_NAMES | {bound_host.strip("[]").lower()}

    @web.middleware
    async def require_loopback_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST, "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.strip("[]").lower() not in allowed:
            log.info("http_host_refused", path=request.path, remote=request.remote)
            return problem(421, MISDIRECTED)
        return await handler(request)

    return require_loopback_host
