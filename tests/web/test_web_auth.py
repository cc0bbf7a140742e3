"""Bearer-token authentication over a loopback server and a real runtime on SQLite.

With ``TRADINGBOT_API_TOKEN`` set every endpoint but ``/api/health/live`` needs
``Authorization: Bearer <token>``, the WebSocket upgrade included; without it
everything is open.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tradingbot.config import Config, load_config
from tradingbot.runtime import Runtime
from tradingbot.web import create_app

T = TypeVar("T")
TOKEN = "s3cr3t-T0ken_for.tests~"
PROBLEM_JSON = "application/problem+json"
CHALLENGE = 'Bearer realm="trading-bot"'
# Endpoints whose right-token answer is 200 whatever the state of the health checks.
ENDPOINTS = ("/api/actors", "/api/events", "/api/events/summary", "/metrics")
LIVE = "/api/health/live"
STREAM = "/api/events/stream"


class LoopThread:
    """An event loop in a daemon thread, as the process's main loop would be."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """An app on 127.0.0.1 with an OS-chosen port, and an aiohttp client session for it."""

    def __init__(self, loop: LoopThread, app: web.Application) -> None:
        self.loop = loop
        self.app = app
        self._runner = web.AppRunner(app, access_log=None)
        self.port, self.session = loop.run(self._start())

    async def _start(self) -> tuple[int, aiohttp.ClientSession]:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1]), aiohttp.ClientSession()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _get(self, path: str, authorization: str | None) -> Reply:
        headers = {} if authorization is None else {"Authorization": authorization}
        async with self.session.get(self.url(path), headers=headers) as response:
            return Reply(response.status, response.headers, await response.read())

    def get(self, path: str, authorization: str | None = None) -> Reply:
        return self.loop.run(self._get(path, authorization))

    async def _upgrade(self, authorization: str | None) -> int:
        """The status of a WebSocket upgrade of the stream (101 when accepted)."""
        headers = {} if authorization is None else {"Authorization": authorization}
        try:
            async with self.session.ws_connect(self.url(STREAM), headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status

    def upgrade(self, authorization: str | None = None) -> int:
        return self.loop.run(self._upgrade(authorization))

    async def _stop(self) -> None:
        await self.session.close()
        await self._runner.cleanup()

    def close(self) -> None:
        self.loop.run(self._stop())


def _config(tmp: Path, token: str | None) -> Config:
    env_file = tmp / "empty.env"  # so that a ./.env in the working directory is not read
    env_file.write_text("")
    environ = {"TRADINGBOT_HOME": str(tmp / "home"), "TRADINGBOT_ENV_FILE": str(env_file)}
    if token is not None:
        environ["TRADINGBOT_API_TOKEN"] = token
    return load_config(environ=environ)


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An app with TRADINGBOT_API_TOKEN set, managing its runtime."""
    runtime = Runtime(_config(tmp_path_factory.mktemp("web-auth"), TOKEN))
    served = Server(loop_thread, create_app(runtime))
    yield served
    served.close()


@pytest.fixture(scope="module")
def open_server(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """An app without a token (the loopback default), managing its runtime."""
    runtime = Runtime(_config(tmp_path_factory.mktemp("web-open"), None))
    served = Server(loop_thread, create_app(runtime))
    yield served
    served.close()


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
    reply = server.get(path, f"Bearer {wrong}")
    body = _assert_refused(reply, invalid_token=True)
    assert wrong.encode() not in reply.body
    assert "not valid" in body["detail"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_endpoint_with_right_token_is_200(server: Server, path: str) -> None:
    """The right bearer token opens the endpoint."""
    assert server.get(path, f"Bearer {TOKEN}").status == 200


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
    body = _assert_refused(server.get("/api/actors", authorization))
    assert "malformed" in body["detail"]


def test_scheme_is_case_insensitive(server: Server) -> None:
    """'bearer' in lower case is the same scheme (RFC 7235)."""
    assert server.get("/api/actors", f"bearer {TOKEN}").status == 200


def test_liveness_is_open_without_token(server: Server) -> None:
    """/api/health/live answers without a token, so a load balancer can probe it."""
    assert server.get(LIVE).status == 200
    assert server.get(LIVE, "Bearer wrong").status == 200


def test_every_other_route_requires_the_token(server: Server) -> None:
    """Every registered GET route but liveness, the health family included, refuses no token."""
    paths = {
        route.resource.canonical
        for route in server.app.router.routes()
        if route.method == "GET" and route.resource is not None
    }
    assert set(ENDPOINTS) | {STREAM} <= paths
    for path in sorted(paths - {LIVE}):
        _assert_refused(server.get(re.sub(r"\{[^}]*\}", "x", path)))


def test_unknown_path_needs_the_token_before_its_404(server: Server) -> None:
    """Without the token an unknown path is 401 (no mapping of the API); with it, 404."""
    _assert_refused(server.get("/api/no-such-thing"))
    assert server.get("/api/no-such-thing", f"Bearer {TOKEN}").status == 404


def test_websocket_upgrade_requires_the_token(server: Server) -> None:
    """The stream's upgrade is refused with 401 without a token and accepted with it."""
    assert server.upgrade() == 401
    assert server.upgrade(f"Bearer {TOKEN}x") == 401
    assert server.upgrade(f"Bearer {TOKEN}") == 101


def test_refusals_are_logged_without_the_authorization_header(server: Server) -> None:
    """A refused request is logged with its reason, never with the token it carried."""
    with capture_logs() as logs:
        server.get("/api/actors", f"Bearer {TOKEN}-wrong")
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
