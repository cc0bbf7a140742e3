"""Bearer-token authentication over a loopback server and a real runtime on SQLite.

With ``TRADINGBOT_API_TOKEN`` set every endpoint but ``/api/health/live`` needs
``Authorization: Bearer <token>``, the WebSocket upgrade included; without it
everything is open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from support.web_server import STREAM_PATH, LoopThread, Reply, Server, web_config
from tradingbot.config import Config
from tradingbot.runtime import Runtime
from tradingbot.web import create_app
from tradingbot.web.dashboard import is_dashboard

TOKEN = "s3cr3t-T0ken_for.tests~"
PROBLEM_JSON = "application/problem+json"
CHALLENGE = 'Bearer realm="trading-bot"'
# Endpoints whose right-token answer is 200 whatever the state of the health checks.
ENDPOINTS = ("/api/actors", "/api/events", "/api/events/summary", "/metrics")
LIVE = "/api/health/live"
STREAM = STREAM_PATH


def _config(tmp: Path, token: str | None) -> Config:
    return web_config(tmp, token=token)


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An app with TRADINGBOT_API_TOKEN set, managing its runtime."""
    runtime = Runtime(_config(tmp_path_factory.mktemp("web-auth"), TOKEN))
    with Server(loop_thread, create_app(runtime)) as served:
        yield served


@pytest.fixture(scope="module")
def open_server(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """An app without a token (the loopback default), managing its runtime."""
    runtime = Runtime(_config(tmp_path_factory.mktemp("web-open"), None))
    with Server(loop_thread, create_app(runtime)) as served:
        yield served


def _assert_refused(reply: Reply, *, invalid_token: bool = False) -> dict[str, Any]:
    assert reply.status == 401
    assert reply.headers["Content-Type"].startswith(PROBLEM_JSON)
    expected = f'{CHALLENGE}, error="invalid_token"' if invalid_token else CHALLENGE
    assert reply.headers["WWW-Authenticate"] == expected
    body: dict[str, Any] = reply.json()
    assert (body["status"], body["title"]) == (401, "Unauthorized")
    assert body["detail"]
    assert TOKEN.encode() not in reply.body
    return body


@pytest.mark.parametrize("path", ENDPOINTS)
def test_endpoint_without_token_is_401(server: Server, path: str) -> None:
    """Without an Authorization header the endpoint answers 401 problem+json with a challenge."""
    body = _assert_refused(server.get(path))
    assert "Bearer" in body["detail"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_endpoint_with_wrong_token_is_401(server: Server, path: str) -> None:
    """A wrong bearer token answers 401 with error="invalid_token" and never echoes it."""
    wrong = TOKEN + "x"
    reply = server.get(path, authorization=f"Bearer {wrong}")
    body = _assert_refused(reply, invalid_token=True)
    assert wrong.encode() not in reply.body
    assert "not valid" in body["detail"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_endpoint_with_right_token_is_200(server: Server, path: str) -> None:
    """The right bearer token opens the endpoint."""
    assert server.get(path, authorization=f"Bearer {TOKEN}").status == 200


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Basic {TOKEN}", id="other-scheme"),
        pytest.param("Bearer", id="no-token"),
        pytest.param(f"Bearer {TOKEN} extra", id="two-tokens"),
        pytest.param(TOKEN, id="no-scheme"),
    ],
)
def test_malformed_authorization_is_401(server: Server, authorization: str) -> None:
    """A header that is not 'Bearer <token>' is refused, even when it contains the token."""
    body = _assert_refused(server.get("/api/actors", authorization=authorization))
    assert "malformed" in body["detail"]


def test_scheme_is_case_insensitive(server: Server) -> None:
    """'bearer' in lower case is the same scheme (RFC 7235)."""
    assert server.get("/api/actors", authorization=f"bearer {TOKEN}").status == 200


def test_liveness_is_open_without_token(server: Server) -> None:
    """/api/health/live answers without a token, so a load balancer can probe it."""
    assert server.get(LIVE).status == 200
    assert server.get(LIVE, authorization="Bearer wrong").status == 200


def test_every_other_route_requires_the_token(server: Server) -> None:
    """Every registered GET route but liveness, the health family included, refuses no token
    (the dashboard's HTML pages send a browser to their login form instead: see
    test_web_dashboard.py)."""
    paths = {
        route.resource.canonical
        for route in server.app.router.routes()
        if route.method == "GET" and route.resource is not None and not is_dashboard(route)
    }
    assert set(ENDPOINTS) | {STREAM} <= paths
    for path in sorted(paths - {LIVE}):
        _assert_refused(server.get(re.sub(r"\{[^}]*\}", "x", path)))


def test_unknown_path_needs_the_token_before_its_404(server: Server) -> None:
    """Without the token an unknown path is 401 (no mapping of the API); with it, 404."""
    _assert_refused(server.get("/api/no-such-thing"))
    assert server.get("/api/no-such-thing", authorization=f"Bearer {TOKEN}").status == 404


def test_websocket_upgrade_requires_the_token(server: Server) -> None:
    """The stream's upgrade is refused with 401 without a token and accepted with it."""
    assert server.upgrade() == 401
    assert server.upgrade(f"Bearer {TOKEN}x") == 401
    assert server.upgrade(f"Bearer {TOKEN}") == 101


def test_refusals_are_logged_without_the_authorization_header(server: Server) -> None:
    """A refused request is logged with its reason, never with the token it carried."""
    with capture_logs() as logs:
        server.get("/api/actors", authorization=f"Bearer {TOKEN}-wrong")
    refusals = [entry for entry in logs if entry["event"] == "http_unauthorized"]
    assert [entry["reason"] for entry in refusals] == ["invalid_token"]
    assert TOKEN not in repr(logs)


@pytest.mark.parametrize("path", [*ENDPOINTS, LIVE])
def test_without_a_token_everything_is_open(open_server: Server, path: str) -> None:
    """With no token configured every endpoint answers without Authorization."""
    assert open_server.get(path).status == 200


def test_without_a_token_the_stream_is_open(open_server: Server) -> None:
    """With no token configured the WebSocket upgrade is accepted without Authorization."""
    assert open_server.upgrade() == 101
