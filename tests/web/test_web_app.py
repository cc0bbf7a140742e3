"""The aiohttp app served for real on a loopback port, over a real runtime on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.web_server import LoopThread, Server, web_config
from tradingbot.config import Config
from tradingbot.runtime import Runtime
from tradingbot.storage import Database
from tradingbot.web import create_app


def _config(tmp: Path) -> Config:
    return web_config(
        tmp,
        {
            "TRADINGBOT_HEARTBEAT_INTERVAL_S": "0.2",
            "TRADINGBOT_LIVENESS_PROBE_INTERVAL_S": "0.2",
            "TRADINGBOT_LIVENESS_DEADLINE_S": "1",
        },
    )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime(_config(tmp_path_factory.mktemp("web")))


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, runtime: Runtime) -> Iterator[Server]:
    """The app managing its runtime (database, run record, tree), served on a real port."""
    with Server(loop_thread, create_app(runtime)) as served:
        yield served


def test_actors_returns_the_supervision_tree_as_json(server: Server) -> None:
    """GET /api/actors answers JSON: the root supervisor with the heartbeat worker running."""
    reply = server.request("/api/actors")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    tree = reply.json()
    for node in (tree, *tree["children"]):
        assert {"id", "kind", "status", "restarts", "children"} <= node.keys()
    assert (tree["id"], tree["kind"], tree["status"]) == ("root", "supervisor", "running")
    # The risk monitor, the broker, the reconciler and the scheduler sit between the
    # heartbeat and health.
    ids = [child["id"] for child in tree["children"]]
    assert ids == [
        "event_logger",
        "notifier",
        "heartbeat",
        "risk",
        "broker",
        "reconciler",
        "scheduler",
        "health",
    ]
    heartbeat = tree["children"][ids.index("heartbeat")]
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


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 421),
        ("evil.example:{port}", 421),
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("[::1]:{port}", 200),
    ],
)
def test_without_a_token_only_loopback_names_are_served(
    server: Server, host: str, status: int
) -> None:
    """A tokenless API refuses a request addressed to another name (a DNS-rebinding page of
    another site) with 421 problem+json, and serves the machine's loopback names."""

    async def fetch() -> tuple[int, str]:
        headers = {"Host": host.format(port=server.port)}
        async with server.session.get(server.url("/api/actors"), headers=headers) as response:
            return response.status, response.headers.get("Content-Type", "")

    got, content_type = server.loop.run(fetch())
    assert got == status
    if status == 421:
        assert content_type.startswith("application/problem+json")
