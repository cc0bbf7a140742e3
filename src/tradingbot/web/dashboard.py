"""The operator's dashboard: server-rendered HTML pages at ``/``, ``/strategies``,
``/tree``, ``/events``, ``/pnl``, ``/jobs`` and ``/mail``, the login form, and their
static assets.

Every page is complete without JavaScript (the first paint is rendered here, from the
same data the JSON API serves). With JavaScript, ``static/dashboard.js`` refreshes the
page's live region every 1.5 s by asking the same URL for its fragment only (header
``X-Dashboard-Fragment: 1``), so there is one rendering of each page, and follows new
events over the ``/api/events/stream`` WebSocket. Status is always written as a word with
a symbol, never shown by colour alone. No asset comes from another site (the
Content-Security-Policy says so to the browser).

Authentication follows the API's rule: with ``TRADINGBOT_API_TOKEN`` set the pages need a
session (:mod:`tradingbot.web.session`), opened by posting the token to ``/login``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import jinja2
import structlog
from aiohttp import web
from multidict import MultiDict

from tradingbot import __version__
from tradingbot.broker.status import FINAL_STATUSES
from tradingbot.events import Severity
from tradingbot.health import HealthState, worst
from tradingbot.storage import EventQuery, StorageError, StorageUnavailable
from tradingbot.storage.outbox import FAILED, PENDING, SENT
from tradingbot.supervision import SupervisionTree
from tradingbot.supervision.snapshot import ActorSnapshot
from tradingbot.web.account_view import EQUITY_CACHE, EquityCache, account_overview
from tradingbot.web.dashboard_reports import jobs_page, pnl_page
from tradingbot.web.docs import ASSETS_PATH, DOCS_PATH, add_docs_routes
from tradingbot.web.events_api import LIST_PARAMS, _read_filters, _read_range
from tradingbot.web.outbox_api import read_outbox
from tradingbot.web.params import InvalidParams, QueryReader
from tradingbot.web.services import (
    BROKER_STATUS,
    CONFIG,
    DATABASE,
    HEALTH,
    RUN_ID,
    SCHEDULER_STATUS,
    TREE,
)
from tradingbot.web.session import (
    API,
    COOKIE,
    CSRF_FIELD,
    CURRENT,
    PAGE,
    PUBLIC,
    SESSIONS,
    Sessions,
    session_middleware,
    set_cookie,
)
from tradingbot.web.strategies_api import strategies_body
from tradingbot.web.trading_view import trading_state

log = structlog.get_logger(__name__)

STATIC_PREFIX: Final = "/static/dashboard"
STATIC_DIR: Final = Path(__file__).parent / "static"
PAGES: Final = {
    "/": "Overview",
    "/strategies": "Strategies",
    "/tree": "Supervision tree",
    "/events": "Events",
    "/pnl": "P&L",
    "/jobs": "Jobs",
    "/mail": "Mail",
}
PUBLIC_PATHS: Final = frozenset({"/login", "/logout"})
FRAGMENT_HEADER: Final = "X-Dashboard-Fragment"
EVENTS_PAGE_SIZE: Final = 50
STREAM_FILTERS: Final = ("type", "severity", "strategy_id")
MAIL_ROWS: Final = 50
MAX_ORDERS_SHOWN: Final = 50
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
NO_TOKEN_HINT: Final = (
    "Controls are disabled: set TRADINGBOT_API_TOKEN and restart to enable them "
    "(or use the shell: trading-bot shell -c 'pause REASON', or 'flatten REASON')."
)

_TEMPLATES = web.AppKey("dashboard_templates", jinja2.Environment)

# Status words with a symbol, so that no state is told by colour alone.
SYMBOLS: Final = {
    "pass": "✔",
    "warn": "▲",
    "fail": "✖",
    "running": "●",
    "restarting": "↻",
    "stopped": "■",
    "waiting": "…",
    "not started": "○",
    "unresponsive": "✖",
    "paused": "‖",
    "tripped": "✖",
    PENDING: "…",
    FAILED: "✖",
    SENT: "✔",
}


def is_dashboard(route: web.AbstractRoute) -> bool:
    """True for the routes of the HTML dashboard (not part of the OpenAPI document)."""
    resource = route.resource
    if resource is None:
        return False
    canonical = resource.canonical
    return (
        canonical in PAGES
        or canonical in PUBLIC_PATHS
        or canonical in (DOCS_PATH, STATIC_PREFIX)
        or canonical.startswith(ASSETS_PATH + "/")
    )


def classify(request: web.Request) -> str:
    """Route kind for the session layer: a dashboard page, a public route, or the API."""
    path = request.path
    if path.startswith((STATIC_PREFIX + "/", ASSETS_PATH + "/")) or path in PUBLIC_PATHS:
        return PUBLIC
    if path in PAGES or path == DOCS_PATH:
        return PAGE
    return API


# The session layer, to put before the bearer check (it passes all on without a token).
dashboard_sessions = session_middleware(classify)


def add_dashboard(app: web.Application) -> None:
    """Register the pages, the login form, ``/docs`` and the static assets."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tradingbot.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(symbols=SYMBOLS, version=__version__, static=STATIC_PREFIX)
    env.filters.update(money=money, signed=signed, qty=quantity)
    app[_TEMPLATES] = env
    app[EQUITY_CACHE] = EquityCache()
    config = app[CONFIG]
    if config.api_token:
        app[SESSIONS] = Sessions(config.api_token)
    app.router.add_get("/", _page("overview.html", _overview))
    app.router.add_get("/strategies", _page("strategies.html", _strategies))
    app.router.add_get("/tree", _page("tree.html", _tree))
    app.router.add_get("/events", _page("events.html", _events))
    app.router.add_get("/mail", _page("mail.html", _mail))
    app.router.add_get("/pnl", _page("pnl.html", _pnl))
    app.router.add_get("/jobs", _page("jobs.html", _jobs))
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_static(STATIC_PREFIX, STATIC_DIR, append_version=False)
    add_docs_routes(app, env, _common)
    app.on_response_prepare.append(_security_headers)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.content_type == "text/html" and "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = CSP
    if response.content_type == "text/html":
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")


def _common(request: web.Request) -> dict[str, Any]:
    """What every page's frame needs: navigation, session, controls."""
    app = request.app
    session = request.get(CURRENT)
    token = bool(app[CONFIG].api_token)
    return {
        "pages": PAGES,
        "path": request.path,
        "csrf": session.csrf if session is not None else "",
        "csrf_field": CSRF_FIELD,
        "logged_in": session is not None,
        "controls_enabled": token and session is not None,
        "no_token_hint": None if token else NO_TOKEN_HINT,
        "docs_path": DOCS_PATH,
        "run_id": app[RUN_ID],
    }


Builder = Callable[[web.Request], Any]


def _page(template: str, build: Builder) -> Callable[[web.Request], Any]:
    """A handler rendering ``template`` with ``build``'s data; its live part on request."""

    async def handler(request: web.Request) -> web.Response:
        data = build(request)
        if asyncio.iscoroutine(data):
            data = await data
        if isinstance(data, web.Response):
            return data
        env = request.app[_TEMPLATES]
        context = {**_common(request), **data}
        live = template.replace(".html", "_live.html")
        # Only pages with a live part have one; any other asks for the whole page.
        if request.headers.get(FRAGMENT_HEADER) == "1" and live in env.list_templates():
            return _html(env.get_template(live).render(context))
        return _html(env.get_template(template).render(context))

    handler.__name__ = template.removesuffix(".html")
    return handler


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


def _health(state: HealthState) -> dict[str, Any]:
    """Health checks grouped by component, with the overall status and the report's age."""
    report = state.latest()
    if report is None:
        return {"status": "fail", "components": [], "age_s": None, "note": "not run yet"}
    components: dict[str, list[dict[str, Any]]] = {}
    for check in report.checks:
        value = check.observed_value
        if value is None or isinstance(value, dict | list):  # structured: see its own page
            shown = ""
        else:
            shown = f"{value} {check.observed_unit or ''}".strip()
        components.setdefault(check.component, []).append(
            {
                "name": check.measurement
                + ("" if check.component_id is None else f" ({check.component_id})"),
                "status": check.status,
                "value": shown,
                "output": check.output or "",
            }
        )
    age = state.age_s(report)
    stale = age > state.stale_after_s
    return {
        "status": "fail" if stale else worst(c.status for c in report.checks),
        "components": [
            {"name": name, "status": worst(c["status"] for c in checks), "checks": checks}
            for name, checks in sorted(components.items())
        ],
        "age_s": round(age, 1),
        "note": f"stale: last refresh {age:.0f} s ago" if stale else "",
    }


def _flatten(node: ActorSnapshot, depth: int = 0) -> list[dict[str, Any]]:
    failure = node.last_failure
    rows = [
        {
            "id": node.id,
            "depth": min(depth, 6),
            "kind": node.kind,
            "status": node.status,
            "restarts": node.restarts,
            "mailbox": node.mailbox,
            "critical": node.critical,
            "started_at": node.started_at or "",
            "failure": "" if failure is None else f"{failure.type}: {failure.message}",
        }
    ]
    for child in node.children:
        rows.extend(_flatten(child, depth + 1))
    return rows


def _actors(tree: SupervisionTree | None) -> list[dict[str, Any]]:
    return [] if tree is None else _flatten(tree.snapshot())


def money(value: float | None) -> str:
    """``12,345.60`` (an unknown value: an em dash)."""
    return "—" if value is None else f"{value:,.2f}"


def signed(value: float | None) -> str:
    """A P&L in words as well as sign, never by colour alone: ``+12.50 ▲ gain``."""
    if value is None:
        return "—"
    shown = round(value, 2)  # what rounds to 0.00 reads flat, not "-0.00 ▼ loss"
    if shown > 0:
        return f"+{shown:,.2f} ▲ gain"
    if shown < 0:
        return f"-{-shown:,.2f} ▼ loss"
    return "0.00 flat"


def quantity(value: float) -> str:
    """Shares without a needless ``.0``; a short position reads ``-100 (short)``."""
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4f}".rstrip("0")
    return f"{text} (short)" if value < 0 else text


async def _overview(request: web.Request) -> dict[str, Any]:
    app = request.app
    actors = _actors(app[TREE]())
    counts: dict[str, int] = {}
    for actor in actors:
        counts[actor["status"]] = counts.get(actor["status"], 0) + 1
    health = _health(app[HEALTH])
    orders = [o for o in app[BROKER_STATUS].orders() if o.status not in FINAL_STATUSES]
    broker = next((c for c in health["components"] if c["name"] == "broker"), None)
    return {
        "title": "Overview",
        "health": health,
        "broker": broker,
        "actor_counts": sorted(counts.items()),
        "actor_total": len(actors),
        "trading": trading_state(request.app),
        "open_orders": orders[:MAX_ORDERS_SHOWN],
        "open_orders_total": len(orders),
        "account": await account_overview(app),
        "now": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


async def _strategies(request: web.Request) -> dict[str, Any]:
    body = await strategies_body(request.app)
    return {
        "title": "Strategies",
        "running": body is not None,
        "strategies": [] if body is None else body["strategies"],
    }


def _tree(request: web.Request) -> dict[str, Any]:
    tree = request.app[TREE]()
    return {"title": "Supervision tree", "actors": _actors(tree), "running": tree}


def _filled(query: Mapping[str, str]) -> MultiDict[str]:
    """The query without empty values (a submitted form sends every field)."""
    return MultiDict((k, v) for k, v in query.items() if v.strip())


async def _events(request: web.Request) -> dict[str, Any] | web.Response:
    query = _filled(request.query)
    context: dict[str, Any] = {
        "title": "Events",
        "form": {k: query.get(k, "") for k in (*STREAM_FILTERS, "since", "until")},
        "severities": [member.name for member in Severity],
        "events": [],
        "error": "",
        "next_url": "",
        "paged": "cursor" in query,
        "stream_query": urlencode([(k, v) for k, v in query.items() if k in STREAM_FILTERS]),
    }
    try:
        reader = QueryReader(query, LIST_PARAMS)
        filters = _read_filters(reader)
        since, until = _read_range(reader)
        limit = reader.integer("limit", default=EVENTS_PAGE_SIZE, minimum=1, maximum=1000)
        cursor = reader.one("cursor")
        reader.check()
        event_query = EventQuery(
            types=filters.types,
            min_severity=filters.min_severity,
            since=since,
            until=until,
            strategy_id=filters.strategy_id,
            trade_id=filters.trade_id,
            limit=limit,
            cursor=cursor,
        )
    except (InvalidParams, ValueError) as exc:
        context["error"] = str(exc)
        return context
    database = request.app[DATABASE]()
    if database is None:
        context["error"] = "the bot is not running"
        return context
    try:
        page = await asyncio.to_thread(database.events.query, event_query)
    except StorageUnavailable:
        context["error"] = "database unavailable: retry later"
        return context
    except StorageError as exc:  # e.g. a cursor of other filters
        context["error"] = f"cannot read events: {exc}"
        return context
    context["events"] = [event.to_dict() for event in page.events]
    if page.next_cursor is not None:
        rest = [(k, v) for k, v in query.items() if k != "cursor"]
        context["next_url"] = "/events?" + urlencode([*rest, ("cursor", page.next_cursor)])
    return context


async def _mail(request: web.Request) -> dict[str, Any]:
    database = request.app[DATABASE]()
    lists: dict[str, list[Any]] = {}
    error = ""
    try:
        for status in (PENDING, FAILED, SENT):
            records = await asyncio.to_thread(read_outbox, database, status, MAIL_ROWS)
            lists[status] = records or []
    except StorageUnavailable:
        error = "database unavailable: retry later"
    return {
        "title": "Mail",
        "pending": lists.get(PENDING, []),
        "failed": lists.get(FAILED, []),
        "sent": lists.get(SENT, []),
        "error": error,
        "limit": MAIL_ROWS,
    }


async def _pnl(request: web.Request) -> dict[str, Any]:
    return await pnl_page(request.app[DATABASE](), request.query)


def _jobs(request: web.Request) -> dict[str, Any]:
    return jobs_page(request.app[SCHEDULER_STATUS])


# -- login ------------------------------------------------------------------------------


def _login_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    env = request.app[_TEMPLATES]
    context = {**_common(request), "title": "Log in", "message": message}
    return _html(env.get_template("login.html").render(context), status=status)


async def login_form(request: web.Request) -> web.Response:
    """``GET /login``: the token form (straight to the overview without a token)."""
    if not request.app[CONFIG].api_token:
        raise web.HTTPSeeOther("/")
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /login``: the token, once; answers a session cookie and the overview."""
    store = request.app.get(SESSIONS)
    if store is None:
        raise web.HTTPSeeOther("/")
    wait_s = store.login_wait_s()
    if wait_s > 0:
        log.warning("dashboard_login_throttled", remote=request.remote, wait_s=round(wait_s))
        response = _login_page(
            request,
            f"Too many wrong tokens: try again in {math.ceil(wait_s)} s.",
            status=429,
        )
        response.headers["Retry-After"] = str(math.ceil(wait_s))
        return response
    form = await request.post()
    given = form.get("token")
    if not isinstance(given, str) or not given or not store.token_matches(given.strip()):
        store.login_failed()
        log.info("dashboard_login_refused", remote=request.remote)
        return _login_page(request, "That token is not valid.", status=401)
    session_id, _ = store.open()
    log.info("dashboard_login", remote=request.remote)
    response = _see_other("/")
    set_cookie(response, request, session_id)
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /logout``: closes the session (its CSRF token must come with the form)."""
    store = request.app.get(SESSIONS)
    session = request.get(CURRENT)
    form = await request.post()
    if store is not None and session is not None and form.get(CSRF_FIELD) == session.csrf:
        store.close(request.cookies.get(COOKIE))
    response = _see_other("/login" if store is not None else "/")
    response.del_cookie(COOKIE, path="/")
    return response
