"""The dashboard's pages, login, session cookie, CSRF rule and the outbox API, over a
loopback server and a real runtime on SQLite (the browser itself: tests/e2e).

With ``TRADINGBOT_API_TOKEN`` set a browser logs in once with the token and then holds
an HttpOnly, SameSite=Strict session cookie; a mutating API call with that cookie also
needs the page's CSRF token; without a token everything is open and the controls are
disabled with a line saying how to enable them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import pytest

from support.waiting import wait_until
from support.web_server import LoopThread, Reply, Server, web_config
from tradingbot.broker import OrderRequest, place_order
from tradingbot.runtime import Runtime
from tradingbot.storage.outbox import NewMail, OutboxRepository
from tradingbot.web import create_app
from tradingbot.web.app import RUNTIME
from tradingbot.web.dashboard import NO_TOKEN_HINT, PAGES
from tradingbot.web.session import (
    COOKIE,
    CSRF_HEADER,
    LOGIN_FAILURES_MAX,
    LOGIN_WINDOW_S,
    Sessions,
)

TOKEN = "dashboard-T0ken_for.tests"
HTML = "text/html"


@dataclass
class Browser:
    """A client keeping one session cookie, as a browser would."""

    server: Server
    cookie: str | None = None

    def call(
        self,
        path: str,
        method: str = "GET",
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        async def go() -> Reply:
            sent = dict(headers or {})
            if self.cookie:
                sent["Cookie"] = f"{COOKIE}={self.cookie}"
            async with self.server.session.request(
                method, self.server.url(path), data=data, headers=sent, allow_redirects=False
            ) as response:
                return Reply(response.status, response.headers, await response.read())

        return self.server.loop.run(go())

    def login(self, token: str = TOKEN) -> Reply:
        reply = self.call("/login", "POST", data={"token": token})
        raw = reply.headers.get("Set-Cookie")
        if raw:
            self.cookie = SimpleCookie(raw)[COOKIE].value
        return reply

    def csrf(self) -> str:
        match = re.search(r'name="csrf-token" content="([^"]*)"', self.call("/").text())
        assert match is not None
        return match.group(1)


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An app with a token, managing its runtime."""
    runtime = Runtime(web_config(tmp_path_factory.mktemp("dash"), token=TOKEN))
    with Server(loop_thread, create_app(runtime)) as served:
        yield served


@pytest.fixture(scope="module")
def open_server(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """An app without a token (the loopback default), managing its runtime."""
    runtime = Runtime(web_config(tmp_path_factory.mktemp("dash-open")))
    with Server(loop_thread, create_app(runtime)) as served:
        yield served


@pytest.mark.parametrize("path", [*PAGES, "/docs"])
def test_pages_without_a_session_send_the_browser_to_the_login_form(
    server: Server, path: str
) -> None:
    """With a token configured, a page opened without a session redirects to /login."""
    reply = Browser(server).call(path)
    assert reply.status == 303
    assert reply.headers["Location"] == "/login"


def test_a_wrong_token_is_refused_without_a_cookie(server: Server) -> None:
    """A wrong token at the login form answers 401 with the form again and sets no cookie."""
    browser = Browser(server)
    reply = browser.login("not-the-token")
    assert reply.status == 401
    assert "Set-Cookie" not in reply.headers
    assert "not valid" in reply.text()
    assert b"not-the-token" not in reply.body


def test_login_sets_an_httponly_strict_cookie_that_opens_pages_and_api(server: Server) -> None:
    """The right token answers a HttpOnly, SameSite=Strict cookie without the token in it,
    and with that cookie every page and the read API answer 200."""
    browser = Browser(server)
    reply = browser.login()
    assert reply.status == 303
    assert reply.headers["Location"] == "/"
    raw = reply.headers["Set-Cookie"]
    assert "HttpOnly" in raw
    assert "SameSite=Strict" in raw
    assert TOKEN not in raw
    for path in [*PAGES, "/docs"]:
        page = browser.call(path)
        assert page.status == 200, path
        assert page.media_type == HTML
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert TOKEN.encode() not in page.body
    assert browser.call("/api/actors").status == 200
    assert browser.call("/api/outbox").status == 200


def test_a_mutating_call_with_the_cookie_needs_the_csrf_token(server: Server) -> None:
    """A POST with the session cookie but without the page's CSRF token is refused with
    403; with it the request reaches the API (here: 405, no POST on /api/actors)."""
    browser = Browser(server)
    browser.login()
    refused = browser.call("/api/actors", "POST")
    assert refused.status == 403
    assert CSRF_HEADER in refused.json()["detail"]
    wrong = browser.call("/api/actors", "POST", headers={CSRF_HEADER: "guess"})
    assert wrong.status == 403
    passed = browser.call("/api/actors", "POST", headers={CSRF_HEADER: browser.csrf()})
    assert passed.status == 405


def test_a_request_from_another_origin_is_refused(server: Server) -> None:
    """A request with the session cookie whose Origin is another host or port answers 403
    (the same host over https, as behind a TLS proxy, is the same site)."""
    browser = Browser(server)
    browser.login()
    reply = browser.call("/api/actors", headers={"Origin": "https://evil.example"})
    assert reply.status == 403
    same = browser.call("/api/actors", headers={"Origin": server.url("")})
    assert same.status == 200
    behind_tls_proxy = server.url("").replace("http://", "https://")
    assert browser.call("/api/actors", headers={"Origin": behind_tls_proxy}).status == 200
    other_port = f"http://127.0.0.1:{server.port + 1}"
    assert browser.call("/api/actors", headers={"Origin": other_port}).status == 403


def test_logout_ends_the_session(server: Server) -> None:
    """After logging out, the old cookie opens nothing."""
    browser = Browser(server)
    browser.login()
    csrf = browser.csrf()
    assert browser.call("/logout", "POST", data={"csrf_token": csrf}).status == 303
    assert browser.call("/").status == 303
    assert browser.call("/api/actors").status == 401


def test_logging_out_closes_the_live_event_stream_opened_with_the_session(
    server: Server,
) -> None:
    """A live event stream a browser opened with its session is closed (1008, "log in
    again") when that session logs out: a stolen or forgotten tab stops receiving events."""
    browser = Browser(server)
    browser.login()
    csrf = browser.csrf()

    async def watch() -> tuple[int | None, str]:
        headers = {"Cookie": f"{COOKIE}={browser.cookie}"}
        url = server.url("/api/events/stream")
        async with server.session.ws_connect(url, headers=headers) as ws:
            await asyncio.to_thread(browser.call, "/logout", "POST", data={"csrf_token": csrf})
            message = await asyncio.wait_for(ws.receive(), 30)
            return ws.close_code, str(message.extra or "")

    code, reason = server.loop.run(watch())
    assert code == 1008
    assert "log in again" in reason


def test_the_session_cookie_is_secure_behind_a_tls_proxy(server: Server) -> None:
    """Behind a TLS-terminating proxy (``X-Forwarded-Proto: https``) the session cookie
    is marked Secure, so the browser never sends it over plain http."""
    reply = Browser(server).call(
        "/login", "POST", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}
    )
    assert reply.status == 303
    assert "Secure" in reply.headers["Set-Cookie"]
    plain = Browser(server).login()
    assert "Secure" not in plain.headers["Set-Cookie"]


def test_wrong_tokens_at_the_login_form_are_throttled(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """After ten wrong tokens within a minute the login form answers 429 with Retry-After
    to every attempt, the right token included, so the token cannot be guessed quickly."""
    runtime = Runtime(web_config(tmp_path_factory.mktemp("dash-throttle"), token=TOKEN))
    with Server(loop_thread, create_app(runtime)) as served:
        browser = Browser(served)
        for attempt in range(LOGIN_FAILURES_MAX):
            assert browser.login(f"wrong-token-{attempt:04d}").status == 401
        refused = browser.login()
        assert refused.status == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        assert "Too many wrong tokens" in refused.text()
        assert "Set-Cookie" not in refused.headers


def test_the_login_throttle_lets_attempts_through_once_the_window_passed() -> None:
    """Failures older than the window no longer count: the form takes attempts again."""
    now = [1000.0]
    sessions = Sessions(TOKEN, clock=lambda: now[0])
    for _ in range(LOGIN_FAILURES_MAX):
        assert sessions.login_wait_s() == 0
        sessions.login_failed()
        now[0] += 1.0
    assert sessions.login_wait_s() == pytest.approx(LOGIN_WINDOW_S - LOGIN_FAILURES_MAX)
    now[0] += LOGIN_WINDOW_S
    assert sessions.login_wait_s() == 0


def test_static_assets_and_the_login_form_are_public(server: Server) -> None:
    """The login form, the stylesheet, the script and Swagger UI load without a session."""
    browser = Browser(server)
    assert browser.call("/login").status == 200
    for path in (
        "/static/dashboard/dashboard.css",
        "/static/dashboard/dashboard.js",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/LICENSE",
    ):
        assert browser.call(path).status == 200, path
    assert browser.call("/docs/assets/index.html").status == 404


def test_without_a_token_pages_are_open_and_controls_disabled(open_server: Server) -> None:
    """Without a token the overview opens directly, its controls are disabled, and a line
    says how to enable them."""
    reply = Browser(open_server).call("/")
    assert reply.status == 200
    text = reply.text()
    assert NO_TOKEN_HINT.replace("'", "&#39;") in text
    assert re.search(r"<button type=\"submit\" disabled>Pause trading", text)


def test_the_live_fragment_is_the_page_region_only(open_server: Server) -> None:
    """Asked with X-Dashboard-Fragment the tree page answers its table, not the frame."""
    reply = Browser(open_server).call("/tree", headers={"X-Dashboard-Fragment": "1"})
    assert reply.status == 200
    assert 'data-actor="root"' in reply.text()
    assert "<html" not in reply.text()


def test_bad_event_filters_show_one_message_on_the_page(open_server: Server) -> None:
    """A bad filter on the events page is one message naming it, never a traceback."""
    reply = Browser(open_server).call("/events?severity=LOUD&since=yesterday")
    assert reply.status == 200
    text = reply.text()
    assert "severity" in text
    assert "since" in text
    assert "Traceback" not in text
    cursor = Browser(open_server).call("/events?cursor=not-a-cursor")
    assert cursor.status == 200
    assert "cursor" in cursor.text()


def _mail(subject: str, now: datetime) -> NewMail:
    return NewMail(
        message_id=f"<{subject}@test>",
        kind="alert",
        severity=40,
        subject=subject,
        sender="bot@example.com",
        recipients=("ops@example.com",),
        context={},
        created_at=now,
        next_attempt_at=now + timedelta(days=1),  # not due: the notifier leaves it alone
    )


def test_outbox_api_and_mail_page_show_pending_failed_with_reason_and_sent(
    open_server: Server,
) -> None:
    """The mail page and /api/outbox list pending mail, failed mail with its reason, and
    sent mail, each under its own heading."""
    database = open_server.app[RUNTIME].database
    assert database is not None
    repository = OutboxRepository(database)
    now = datetime.now(UTC)
    repository.add(_mail("waiting-mail", now))
    failed = repository.add(_mail("refused-mail", now))
    sent = repository.add(_mail("delivered-mail", now))
    assert failed is not None
    assert sent is not None
    repository.mark_failed(failed.id, now, "550 mailbox unavailable")
    repository.mark_sent(sent.id, now)
    browser = Browser(open_server)
    for status, subject in (
        ("pending", "waiting-mail"),
        ("failed", "refused-mail"),
        ("sent", "delivered-mail"),
    ):
        mails = browser.call(f"/api/outbox?status={status}").json()["mails"]
        assert subject in [m["subject"] for m in mails]
    assert browser.call("/api/outbox?status=failed").json()["mails"][0]["last_error"] == (
        "550 mailbox unavailable"
    )
    page = browser.call("/mail").text()
    assert "550 mailbox unavailable" in page
    for subject in ("waiting-mail", "refused-mail", "delivered-mail"):
        assert subject in page
    bad = browser.call("/api/outbox?status=lost&limit=0")
    assert bad.status == 400
    assert {p["name"] for p in bad.json()["invalid_params"]} == {"status", "limit"}


def test_overview_lists_the_open_orders_of_this_process(open_server: Server) -> None:
    """A resting limit order placed through the broker shows on the overview with its
    symbol, side, quantity and reference."""
    runtime = open_server.app[RUNTIME]
    status = runtime.broker_status
    wait_until(
        lambda: status.view().state.value == "synced" and status.trading_blocked() is None,
        60,
        "the simulator broker to sync and reconciliation to open the gate",
    )
    assert runtime.tree is not None
    assert runtime.simulator is not None
    # 3 % under the market: it rests, and it is inside the risk limits' 5 % price band.
    market = runtime.simulator.call(lambda s: s.brokerage.prices.price("MSFT"))
    limit = round(market * 0.97, 2)
    order_ref = place_order(
        runtime.tree.handle("broker"),
        status,
        OrderRequest("MSFT", "BUY", 7, "LMT", limit, client_order_id="dash-resting"),
    )
    text = Browser(open_server).call("/").text()
    assert order_ref in text
    assert "MSFT" in text
    assert "BUY" in text


def test_pnl_page_shows_the_fills_of_a_round_trip_and_jobs_lists_the_scheduler(
    open_server: Server,
) -> None:
    """After a bought-and-sold round trip through the simulator, the P&L page's range
    includes its fills (table and chart); the jobs page lists each scheduled job."""
    runtime = open_server.app[RUNTIME]
    status = runtime.broker_status
    wait_until(lambda: status.trading_blocked() is None, 60, "the trading gate to open")
    assert runtime.tree is not None
    broker = runtime.tree.handle("broker")
    for side in ("BUY", "SELL"):
        ref = place_order(broker, status, OrderRequest("AAPL", side, 3))
        status.wait_for_order(ref, {"Filled"}, timeout_s=30)
    browser = Browser(open_server)

    def page_with_fills() -> str | None:
        text = browser.call("/pnl").text()
        return text if re.search(r"\b2 fills, 1 round trips", text) else None

    text = wait_until(page_with_fills, 30, "the P&L page to count the two fills")
    assert "<svg" in text
    assert "<rect" in text
    bad = browser.call("/pnl?from=2026-12-06&to=2026-01-01&by=year").text()
    assert "to: is before from" in bad
    assert "by: expected one of" in bad
    states = wait_until(runtime.scheduler_status.snapshot, 30, "the scheduler's jobs")
    jobs = browser.call("/jobs").text()
    for state in states:
        assert f'data-job="{state.job.name}"' in jobs
