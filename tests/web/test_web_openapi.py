"""``GET /api/openapi.json``: a valid OpenAPI 3.1 document describing exactly what is served.

Checked here: the document against the official OAS 3.1 schema (2022-10-07) and every
embedded JSON Schema against the 2020-12 meta-schema; every ``$ref`` resolves; the
documented operations are exactly the app's routes (HEAD aside); the served document is
the variant matching the token configuration; and real answers of a real server, in
states fuzzing rarely reaches (a crashed actor, a second page), match their schemas.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from support.web_server import LoopThread, Reply, Server, web_config
from tradingbot.config import Config
from tradingbot.events import ORDER, SIGNAL, TRADE, Severity
from tradingbot.runtime import Runtime
from tradingbot.web import create_app
from tradingbot.web.dashboard import is_dashboard
from tradingbot.web.openapi import BEARER_SCHEME, OPENAPI_PATH, build_document

TOKEN = "s3cret-openapi-token"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
VARIANTS = [pytest.param(False, id="open"), pytest.param(True, id="token")]


# -- harness ---------------------------------------------------------------------------------


def _config(tmp: Path, *, token: str | None = None) -> Config:
    settings = {
        "TRADINGBOT_EVENTS_MIN_SEVERITY": "DEBUG",
        "TRADINGBOT_EVENTS_FLUSH_INTERVAL_S": "0.05",
    }
    return web_config(tmp, settings, token=token)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, loop_thread: LoopThread) -> Iterator[Server]:
    """The app managing a real runtime on SQLite, with a bearer token configured."""
    runtime = Runtime(_config(tmp_path_factory.mktemp("openapi"), token=TOKEN))
    with Server(loop_thread, create_app(runtime), TOKEN) as served:
        _record_events(runtime)
        _crash_heartbeat(runtime)
        yield served


def _record_events(runtime: Runtime) -> None:
    assert runtime.recorder is not None
    recorder = runtime.recorder.bind(source="openapi_test", strategy_id="mr-1")
    recorder.record_durable(SIGNAL, "z-score crossed 2.0", context={"z": 2.04})
    recorder.record_durable(ORDER, "submitted LMT 189.20", trade_id="T-1")
    recorder.record_durable(
        TRADE, "FILLED BUY 10 AAPL", trade_id="T-1", severity=Severity.WARNING, context={"q": 10}
    )


def _crash_heartbeat(runtime: Runtime) -> None:
    """A real crash and restart, so that ``last_failure`` is an object, not null."""
    tree = runtime.tree
    assert tree is not None
    tree.crash("heartbeat")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        node = tree.snapshot().find("heartbeat")
        if node is not None and node.restarts >= 1 and node.status == "running":
            return
        time.sleep(0.05)
    pytest.fail("the heartbeat actor was not restarted after the crash drill")


# -- helpers ---------------------------------------------------------------------------------


def _pointer(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used, got {ref!r}"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and set(node) == {"$ref"}:
        node = _pointer(document, node["$ref"])
    return node


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method, path, item[method]


def _response_validator(
    document: dict[str, Any], method: str, path: str, status: int, media_type: str
) -> jsonschema_rs.Validator:
    """A validator for the body the document gives ``method path`` for this answer."""
    operation = document["paths"][path][method]
    response = _resolve(document, operation["responses"].get(str(status)))
    assert response is not None, f"{method.upper()} {path}: {status} is not documented"
    content = response.get("content", {})
    assert media_type in content, f"{method.upper()} {path} {status}: {media_type} undocumented"
    schema = {**content[media_type]["schema"], "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def _assert_matches(
    document: dict[str, Any], method: str, path: str, reply: Reply
) -> dict[str, Any]:
    validator = _response_validator(document, method, path, reply.status, reply.media_type)
    body = reply.json()
    errors = [f"{error.instance_path}: {error.message}" for error in validator.iter_errors(body)]
    assert not errors, f"{method.upper()} {path} {reply.status}: {errors}"
    assert isinstance(body, dict)
    return body


# -- the document ----------------------------------------------------------------------------


@pytest.mark.parametrize("token_required", VARIANTS)
def test_document_is_valid_openapi_3_1(token_required: bool) -> None:
    """The official OAS 3.1 schema accepts it; each JSON Schema is valid 2020-12."""
    document = build_document(token_required=token_required)
    validator = jsonschema_rs.Draft202012Validator(OPENAPI_31)
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors
    assert document["openapi"].startswith("3.1.")
    assert document["servers"] == [{"url": "/"}]
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
        # Compiling resolves every $ref the schema makes.
        jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


@pytest.mark.parametrize("token_required", VARIANTS)
def test_every_reference_resolves_and_every_operation_is_named(token_required: bool) -> None:
    """Every reference in the API document resolves, and operation ids and parameter names are
    unique."""
    document = build_document(token_required=token_required)
    for where, node in _walk(document):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            assert _pointer(document, node["$ref"]) is not None, where
    operation_ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(operation_ids) == len(set(operation_ids))
    for method, path, operation in _operations(document):
        assert operation["responses"], f"{method} {path}"
        names = [_resolve(document, p)["name"] for p in operation.get("parameters", [])]
        assert len(names) == len(set(names)), f"{method} {path}"


@pytest.mark.parametrize("token_required", VARIANTS)
def test_documented_operations_are_exactly_the_routes_of_the_app(
    tmp_path: Path, token_required: bool
) -> None:
    """Every route the app registers is documented, and nothing else (HEAD and the
    dashboard's HTML pages aside)."""
    token = TOKEN if token_required else None
    app = create_app(Runtime(_config(tmp_path, token=token)), manage_runtime=False)
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None and not is_dashboard(route)
    }
    documented = {
        (method, path)
        for method, path, _ in _operations(build_document(token_required=token_required))
    }
    assert routes == documented
    assert ("get", OPENAPI_PATH) in routes


def test_the_token_variant_documents_bearer_auth_and_its_401s() -> None:
    """With a token configured, the document says every operation but the liveness probe needs the
    bearer token and may answer 401; without one it says nothing of auth."""
    secured = build_document(token_required=True)
    assert secured["components"]["securitySchemes"][BEARER_SCHEME] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The value of `TRADINGBOT_API_TOKEN`.",
    }
    assert secured["security"] == [{BEARER_SCHEME: []}]
    for method, path, operation in _operations(secured):
        if path == "/api/health/live":
            assert operation["security"] == []
            assert "401" not in operation["responses"]
        else:
            assert "security" not in operation, f"{method} {path}"
            assert operation["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
    open_document = build_document(token_required=False)
    assert "security" not in open_document
    assert "securitySchemes" not in open_document["components"]
    assert all("401" not in op["responses"] for _, _, op in _operations(open_document))


def test_parameters_carry_the_handlers_validation_rules() -> None:
    """The documented query parameters carry the limits and formats the handlers enforce."""
    parameters = build_document(token_required=False)["components"]["parameters"]
    assert parameters["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 100,
    }
    assert parameters["since"]["schema"]["format"] == "date-time"
    assert parameters["until"]["schema"]["format"] == "date-time"
    severity = _resolve(build_document(token_required=False), parameters["severity"]["schema"])
    assert severity["enum"] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    assert parameters["type"]["explode"] is True


# -- the served document and real answers ----------------------------------------------------


def test_the_served_document_is_the_token_variant_and_needs_the_token(server: Server) -> None:
    """With a token configured, /api/openapi.json needs the token and serves the token variant of
    the document."""
    refused = server.request(OPENAPI_PATH, auth=False)
    assert refused.status == 401
    assert refused.media_type == "application/problem+json"
    reply = server.request(OPENAPI_PATH)
    assert reply.status == 200
    assert reply.media_type == "application/json"
    assert reply.json() == build_document(token_required=True)
    _assert_matches(reply.json(), "get", OPENAPI_PATH, reply)


def test_without_a_token_the_open_variant_is_served(
    tmp_path: Path, loop_thread: LoopThread
) -> None:
    """Without a token configured, /api/openapi.json serves the variant without auth."""
    app = create_app(Runtime(_config(tmp_path)), manage_runtime=False)
    served = Server(loop_thread, app)
    try:
        reply = served.request(OPENAPI_PATH)
    finally:
        served.close()
    assert reply.status == 200
    assert reply.json() == build_document(token_required=False)


def test_real_answers_match_the_documented_schemas(server: Server) -> None:
    """The tree after a crash, two pages of events, the summary, health, 400 and 401."""
    document = build_document(token_required=True)
    tree = _assert_matches(document, "get", "/api/actors", server.request("/api/actors"))
    heartbeat = next(node for node in tree["children"] if node["id"] == "heartbeat")
    assert heartbeat["last_failure"]["type"] == "CrashDrill"

    first = _assert_matches(
        document, "get", "/api/events", server.request("/api/events?strategy_id=mr-1&limit=2")
    )
    assert len(first["events"]) == 2
    assert first["next_cursor"] is not None
    second = _assert_matches(
        document,
        "get",
        "/api/events",
        server.request(f"/api/events?strategy_id=mr-1&limit=2&cursor={first['next_cursor']}"),
    )
    assert second["next_cursor"] is None

    summary = _assert_matches(
        document,
        "get",
        "/api/events/summary",
        server.request("/api/events/summary?since=2000-01-01T00:00:00Z"),
    )
    assert summary["by_type"]["TRADE"] >= 1

    for path in [p for p in document["paths"] if p.startswith("/api/health")]:
        _assert_matches(document, "get", path, server.request(path))

    bad = _assert_matches(
        document, "get", "/api/events", server.request("/api/events?limit=0&severity=LOUD")
    )
    assert {p["name"] for p in bad["invalid_params"]} == {"limit", "severity"}

    refused = server.request("/api/events", auth=False)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    _assert_matches(document, "get", "/api/events", refused)


def test_websocket_refusals_and_errors_outside_operations_match(server: Server) -> None:
    """The stream's 426 and 400, and the NotFound and MethodNotAllowed components."""
    document = build_document(token_required=True)
    plain = server.request("/api/events/stream")
    assert plain.status == 426
    assert plain.headers["Upgrade"] == "websocket"
    _assert_matches(document, "get", "/api/events/stream", plain)
    bad = _assert_matches(
        document, "get", "/api/events/stream", server.request("/api/events/stream?limit=5")
    )
    assert [p["name"] for p in bad["invalid_params"]] == ["limit"]

    components = document["components"]["responses"]
    for reply, name in [
        (server.request("/api/nothing-here"), "NotFound"),
        (server.request("/api/actors", method="POST"), "MethodNotAllowed"),
    ]:
        assert reply.media_type == "application/problem+json"
        response = components[name]
        for header, spec in response["headers"].items():
            if _resolve(document, spec).get("required"):
                assert header in reply.headers, (name, header)
        schema = {
            **response["content"][reply.media_type]["schema"],
            "components": document["components"],
        }
        assert jsonschema_rs.Draft202012Validator(schema).is_valid(reply.json()), name
    assert server.request("/api/nothing-here").status == 404
    assert server.request("/api/actors", method="POST").headers["Allow"] == "GET,HEAD"
