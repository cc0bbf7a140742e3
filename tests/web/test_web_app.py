"""The aiohttp app served for real on a loopback port, over a real runtime on SQLite."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from tradingbot.config import Config, load_config
from tradingbot.runtime import Runtime
from tradingbot.storage import Database
from tradingbot.web import create_app

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoopThread:
    """An event loop in a daemon thread, as the process's main loop would be."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


class Server:
    """``create_app`` behind a real TCP site on 127.0.0.1 and an OS-chosen port."""

    def __init__(self, loop: LoopThread, app: web.Application) -> None:
        self._loop = loop
        self._runner = web.AppRunner(app, access_log=None)
        self.port = loop.run(self._start())

    async def _start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        address = self._runner.addresses[0]
        return int(address[1])

    def request(self, path: str, method: str = "GET") -> Reply:
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, dict(error.headers), error.read())

    def close(self) -> None:
        self._loop.run(self._runner.cleanup())


def _config(tmp: Path) -> Config:
    env_file = tmp / "empty.env"  # so that a ./.env in the working directory is not read
    env_file.write_text("")
    return load_config(
        environ={
            "TRADINGBOT_HOME": str(tmp / "home"),
            "TRADINGBOT_ENV_FILE": str(env_file),
            "TRADINGBOT_HEARTBEAT_INTERVAL_S": "0.2",
            "TRADINGBOT_LIVENESS_PROBE_INTERVAL_S": "0.2",
            "TRADINGBOT_LIVENESS_DEADLINE_S": "1",
        }
    )


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime(_config(tmp_path_factory.mktemp("web")))


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, runtime: Runtime) -> Iterator[Server]:
    """The app managing its runtime (database, run record, tree), served on a real port."""
    served = Server(loop_thread, create_app(runtime))
    yield served
    served.close()


def test_actors_returns_the_supervision_tree_as_json(server: Server) -> None:
    """GET /api/actors answers JSON: the root supervisor with the heartbeat worker running."""
    reply = server.request("/api/actors")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    tree = reply.json()
    for node in (tree, *tree["children"]):
        assert {"id", "kind", "status", "restarts", "children"} <= node.keys()
    assert (tree["id"], tree["kind"], tree["status"]) == ("root", "supervisor", "running")
    # issue 5: the broker actor sits between the heartbeat and the health actor.
    ids = [child["id"] for child in tree["children"]]
    assert ids == ["event_logger", "heartbeat", "broker", "health"]
    heartbeat = tree["children"][1]
    assert (heartbeat["kind"], heartbeat["status"], heartbeat["restarts"]) == (
        "worker",
        "running",
        0,
    )


def test_liveness_is_health_json_that_is_never_cached(server: Server, runtime: Runtime) -> None:
    """GET /api/health/live is application/health+json, Cache-Control no-store, status pass."""
    reply = server.request("/api/health/live")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/health+json")
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.json()
    assert body["status"] == "pass"
    assert body["serviceId"] == runtime.run_id
    assert body["checks"]["eventloop:lag"][0]["status"] == "pass"


def test_unknown_path_is_a_404_problem(server: Server) -> None:
    """An unknown path answers 404 application/problem+json whose detail names the path."""
    reply = server.request("/api/nothing-here")
    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    problem = reply.json()
    assert problem["status"] == 404
    assert problem["title"] == "Not Found"
    assert "/api/nothing-here" in problem["detail"]


def test_wrong_method_is_a_405_problem(server: Server) -> None:
    """POST on /api/actors answers 405 application/problem+json with an Allow header."""
    reply = server.request("/api/actors", method="POST")
    assert reply.status == 405
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert "GET" in reply.headers["Allow"]
    problem = reply.json()
    assert problem["status"] == 405
    assert "POST" in problem["detail"]


def test_actors_before_the_tree_runs_is_a_503_problem(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    """While the tree is not running, /api/actors answers 503 problem+json, not a traceback."""
    idle = Runtime(_config(tmp_path))
    server = Server(loop_thread, create_app(idle, manage_runtime=False))
    try:
        reply = server.request("/api/actors")
    finally:
        server.close()
    assert reply.status == 503
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert "not running" in reply.json()["detail"]


def test_stopping_the_app_records_a_clean_stop(loop_thread: LoopThread, tmp_path: Path) -> None:
    """Cleaning up the app stops the tree and records this run's clean stop in the database."""
    runtime = Runtime(_config(tmp_path))
    server = Server(loop_thread, create_app(runtime))
    assert server.request("/api/health/live").status == 200
    database_url = runtime.config.database_url
    server.close()

    with Database.open(database_url) as database:
        run = database.system_state.get(runtime.run_id)
    assert run is not None
    assert run.clean_stop is True
    assert run.stopped_at is not None
