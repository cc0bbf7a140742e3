"""Browser sessions for the dashboard: log in once with the API token, then a cookie.

With ``TRADINGBOT_API_TOKEN`` set, a browser cannot send ``Authorization: Bearer``
with page loads, so the dashboard's login form (``POST /login``) takes the token once
and answers a session cookie: random, ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it) and ``Secure`` behind TLS. The token
itself never goes into a URL, a cookie or a page.

The :func:`session_middleware` runs before the bearer check. A request carrying a live
session is marked authenticated (``AUTHENTICATED``), so the API's bearer middleware lets
it through. A mutating request (anything but GET/HEAD/OPTIONS) must also carry the
session's CSRF token in ``X-CSRF-Token`` (the pages hold it in a ``<meta>`` element), and
a request whose ``Origin`` names another site is refused whatever it carries: a page on
another site can neither read the CSRF token nor pass the origin check. Dashboard pages
without a session redirect to ``/login``; the API without a session or bearer token
still answers 401.

Sessions live in memory (bounded, oldest dropped first) and last ``SESSION_TTL_S``: a
restart or a changed token logs every browser out. A live event stream opened with a
session ends when the session does (logout or expiry). Wrong tokens at the login form are
throttled for the whole app: after ``LOGIN_FAILURES_MAX`` failures within
``LOGIN_WINDOW_S`` every attempt answers 429 until the oldest failure leaves the window
(the shell and the bearer API keep working meanwhile).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from tradingbot.web.auth import AUTHENTICATED
from tradingbot.web.problems import Handler, problem

log = structlog.get_logger(__name__)

COOKIE = "tradingbot_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 256
LOGIN_FAILURES_MAX = 10  # wrong tokens allowed per window, for the whole app
LOGIN_WINDOW_S = 60.0
SAFE_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})

CSRF_REFUSED = f"this request needs the session's {CSRF_HEADER} header; reload the page"
ORIGIN_REFUSED = "cross-site requests are refused"


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in browser: its CSRF token and when it expires (monotonic seconds)."""

    csrf: str
    expires_at: float


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).digest()


class Sessions:
    """The live sessions of one app, keyed by a digest of the cookie's value."""

    def __init__(
        self,
        token: str,
        *,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._expected = _key(token)
        self._ttl_s = ttl_s
        self._clock = clock
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()
        self._failures: deque[float] = deque()

    def login_wait_s(self) -> float:
        """Seconds until the login form takes another attempt (0: now)."""
        now = self._clock()
        while self._failures and self._failures[0] <= now - LOGIN_WINDOW_S:
            self._failures.popleft()
        if len(self._failures) < LOGIN_FAILURES_MAX:
            return 0.0
        return self._failures[0] + LOGIN_WINDOW_S - now

    def login_failed(self) -> None:
        """Count a wrong token (see :meth:`login_wait_s`)."""
        self._failures.append(self._clock())
        while len(self._failures) > LOGIN_FAILURES_MAX:
            self._failures.popleft()

    def alive(self, session: Session) -> bool:
        """Whether ``session`` is still open (not logged out, not expired)."""
        if session.expires_at <= self._clock():
            return False
        return any(open_ is session for open_ in self._sessions.values())

    def token_matches(self, given: str) -> bool:
        """Constant-time comparison of ``given`` with the API token."""
        return hmac.compare_digest(_key(given), self._expected)

    def open(self) -> tuple[str, Session]:
        """A new session: the cookie value (shown once) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), expires_at=self._clock() + self._ttl_s)
        self._sessions[_key(session_id)] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[key]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(_key(session_id), None)


SESSIONS = web.AppKey("dashboard_sessions", Sessions)
CURRENT = web.RequestKey("dashboard_session", Session)  # the request's live session

# What a route is to the session layer (see :func:`session_middleware`).
API, PAGE, PUBLIC = "api", "page", "public"


def same_origin(request: web.Request) -> bool:
    """True unless the request's ``Origin`` names another host or port than ``Host``.

    The scheme is not compared: behind a TLS-terminating proxy the page is https while
    the bot sees http (the proxy must pass the ``Host`` header through).
    """
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def set_cookie(response: web.StreamResponse, request: web.Request, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(SESSION_TTL_S),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or forwarded_https(request),
    )


def forwarded_https(request: web.Request) -> bool:
    """Whether a TLS-terminating proxy says the browser used https (``X-Forwarded-Proto``).

    Trusting the header is safe here: it can only make the cookie ``Secure`` (stricter).
    """
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",")[0].strip().lower() == "https"


def session_middleware(classify: Callable[[web.Request], str]) -> Middleware:
    """Authenticate by session cookie; send pages without one to ``/login``.

    ``classify`` names a route ``API`` (bearer rule, or a session plus CSRF header for
    mutations), ``PAGE`` (a dashboard page: needs a session, else a redirect to the
    login form) or ``PUBLIC`` (the login form and static assets, which hold no data).
    Without ``SESSIONS`` on the app (no token configured) it passes everything on.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        sessions = request.app.get(SESSIONS)
        if sessions is None:
            return await handler(request)
        session = sessions.get(request.cookies.get(COOKIE))
        kind = classify(request)
        unsafe = request.method not in SAFE_METHODS
        if (session is not None or unsafe) and not same_origin(request):
            log.info("http_cross_origin_refused", path=request.path, remote=request.remote)
            return problem(403, ORIGIN_REFUSED)
        if kind == PUBLIC:
            request[AUTHENTICATED] = True
        elif session is not None:
            if unsafe and kind == API:
                given = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(given.encode(), session.csrf.encode()):
                    log.info("http_csrf_refused", path=request.path, remote=request.remote)
                    return problem(403, CSRF_REFUSED)
            request[AUTHENTICATED] = True
        elif kind == PAGE:
            raise web.HTTPSeeOther("/login")
        if session is not None:
            request[CURRENT] = session
        return await handler(request)

    return middleware
