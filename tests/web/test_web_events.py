"""The events API over a loopback server, a real runtime and event logger, SQLite and PostgreSQL.

Events are recorded through ``runtime.recorder`` (the real actor writes them to the
database and publishes them to the hub) and read back with aiohttp's client.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from support.postgres import reset_postgres
from support.web_server import LoopThread, Reply, Server, web_config
from tradingbot.config import Config
from tradingbot.events import Event, Severity
from tradingbot.events.event_logger import FlushEvents
from tradingbot.events.recorder import EventRecorder
from tradingbot.runtime import Runtime
from tradingbot.storage import Database
from tradingbot.web import create_app
from tradingbot.web.events_api import STREAM_HEARTBEAT_S, STREAM_MAX_PENDING

TIMEOUT_S = 10.0
PROBLEM_JSON = "application/problem+json"


# -- harness ------------------------------------------------------------------------------


def _config(tmp: Path, database_url: str | None = None) -> Config:
    settings = {
        "TRADINGBOT_EVENTS_MIN_SEVERITY": "DEBUG",  # persist every event
        "TRADINGBOT_EVENTS_FLUSH_INTERVAL_S": "0.05",
    }
    return web_config(tmp, settings, database_url=database_url)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def module_database_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite (the default file in HOME), else the session's PostgreSQL, emptied."""
    if request.param == "sqlite":
        return None
    reset_postgres(request.getfixturevalue("_postgres_session_engine"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Runtime:
    return Runtime(_config(tmp_path_factory.mktemp("web-events"), module_database_url))


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, runtime: Runtime) -> Iterator[Server]:
    """The app managing its runtime (database, tree with the event logger), on a real port."""
    with Server(loop_thread, create_app(runtime)) as served:
        yield served


@pytest.fixture
def small_server(loop_thread: LoopThread, runtime: Runtime, server: Server) -> Iterator[Server]:
    """A second app over the same running runtime whose streams allow 5 pending events."""
    app = create_app(runtime, manage_runtime=False)
    app[STREAM_MAX_PENDING] = 5
    app[STREAM_HEARTBEAT_S] = 5.0
    with Server(loop_thread, app) as served:
        yield served


def _recorder(runtime: Runtime) -> EventRecorder:
    assert runtime.recorder is not None
    return runtime.recorder


def _flush(runtime: Runtime) -> None:
    """Ask the real event logger to write (and publish) everything it buffered."""
    assert runtime.tree is not None
    runtime.tree.handle("event_logger").ask(FlushEvents(), timeout_s=TIMEOUT_S)


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


# -- the data set for the query tests -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataSet:
    events: list[Event]  # in recording order (oldest first)
    strategies: tuple[str, str]
    trades: tuple[str, str]

    @property
    def since(self) -> datetime:
        return self.events[0].timestamp

    @property
    def until(self) -> datetime:
        return self.events[-1].timestamp + timedelta(microseconds=1)


@pytest.fixture(scope="module")
def dataset(server: Server, runtime: Runtime) -> DataSet:
    """Thirty events of several types, severities, strategies and trades, stored for real."""
    tag = _tag()
    strategies = (f"s-{tag}-a", f"s-{tag}-b")
    trades = (f"t-{tag}-1", f"t-{tag}-2")
    types = ("TRADE", "SIGNAL", "ORDER", "RISK", "SYSTEM", "MY_SIGNAL")
    recorder = _recorder(runtime)
    events = []
    for i in range(30):
        events.append(
            recorder.record(
                types[i % len(types)],
                f"event {i} of {tag}",
                severity=list(Severity)[i % len(Severity)],
                strategy_id=(*strategies, None)[i % 3],
                trade_id=(*trades, None, None)[i % 4],
                context={"i": i},
            )
        )
    _flush(runtime)
    return DataSet(events, strategies, trades)


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in events]


def _check_filter(
    server: Server, dataset: DataSet, params: list[tuple[str, str]], keep: Callable[[Event], bool]
) -> list[dict[str, Any]]:
    """Query with ``params`` inside the data set's window; assert the exact answer."""
    window = [("since", _iso(dataset.since)), ("until", _iso(dataset.until)), ("limit", "1000")]
    reply = server.get("/api/events", [*params, *window])
    assert reply.status == 200, reply.body
    assert reply.content_type == "application/json"
    assert reply.json()["next_cursor"] is None
    expected = [event for event in reversed(dataset.events) if keep(event)]
    assert expected, "the filter must select something"
    assert _ids(reply.json()["events"]) == [str(event.id) for event in expected]
    return list(reply.json()["events"])


# -- GET /api/events --------------------------------------------------------------------------


def test_events_come_newest_first_in_the_event_shape(server: Server, dataset: DataSet) -> None:
    """GET /api/events answers {events, next_cursor}: each event's to_dict(), newest first."""
    events = _check_filter(server, dataset, [], lambda event: True)
    assert events == [event.to_dict() for event in reversed(dataset.events)]
    stamps = [datetime.fromisoformat(event["timestamp"]) for event in events]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        pytest.param([("type", "SIGNAL")], lambda e, d: e.type == "SIGNAL", id="one-type"),
        pytest.param(
            [("type", "TRADE"), ("type", "ORDER")],
            lambda e, d: e.type in ("TRADE", "ORDER"),
            id="repeated-types",
        ),
        pytest.param(
            [("type", "trade, my_signal")],
            lambda e, d: e.type in ("TRADE", "MY_SIGNAL"),
            id="comma-separated-lower-case-types",
        ),
        pytest.param(
            [("severity", "warning")],
            lambda e, d: e.severity >= Severity.WARNING,
            id="min-severity",
        ),
        pytest.param(
            [("severity", "CRITICAL")],
            lambda e, d: e.severity == Severity.CRITICAL,
            id="max-severity",
        ),
        pytest.param(
            [("strategy_id", "{strategy}")],
            lambda e, d: e.strategy_id == d.strategies[0],
            id="strategy",
        ),
        pytest.param([("trade_id", "{trade}")], lambda e, d: e.trade_id == d.trades[1], id="trade"),
        pytest.param(
            [("type", "ORDER,RISK,SIGNAL"), ("severity", "info"), ("strategy_id", "{strategy}")],
            lambda e, d: (
                e.type in ("ORDER", "RISK", "SIGNAL")
                and e.severity >= Severity.INFO
                and e.strategy_id == d.strategies[0]
            ),
            id="combined",
        ),
    ],
)
def test_each_filter_selects_exactly_the_matching_events(
    server: Server,
    dataset: DataSet,
    params: list[tuple[str, str]],
    keep: Callable[[Event, DataSet], bool],
) -> None:
    """Each filter (type, severity, strategy_id, trade_id, combined) returns exactly its events."""
    values = {"strategy": dataset.strategies[0], "trade": dataset.trades[1]}
    resolved = [(name, value.format(**values)) for name, value in params]
    _check_filter(server, dataset, resolved, lambda event: keep(event, dataset))


def test_since_is_inclusive_and_until_exclusive(server: Server, dataset: DataSet) -> None:
    """since/until select the half-open range [since, until) of event timestamps."""
    since, until = dataset.events[5].timestamp, dataset.events[20].timestamp
    reply = server.get(
        "/api/events",
        {"since": _iso(since), "until": _iso(until), "limit": "1000"},
    )
    assert reply.status == 200
    expected = [str(e.id) for e in reversed(dataset.events) if since <= e.timestamp < until]
    assert _ids(reply.json()["events"]) == expected
    assert str(dataset.events[5].id) in expected
    assert str(dataset.events[20].id) not in expected


def test_since_accepts_z_offsets_and_an_unencoded_plus(server: Server, dataset: DataSet) -> None:
    """since accepts 'Z', any UTC offset, and '+hh:mm' sent unencoded (read as a space)."""
    moment = dataset.events[10].timestamp
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    expected = [str(e.id) for e in reversed(dataset.events) if e.timestamp >= moment]
    spellings = [
        moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        plus_two.isoformat(),
        moment.astimezone(timezone(timedelta(hours=-5, minutes=-30))).isoformat(),
    ]
    for spelling in spellings:
        reply = server.get("/api/events", {"since": spelling, "until": _iso(dataset.until)})
        assert reply.status == 200, (spelling, reply.body)
        assert _ids(reply.json()["events"]) == expected, spelling
    raw = (
        f"/api/events?since={plus_two.isoformat()}&until={_iso(dataset.until).replace('+', '%2B')}"
    )
    reply = server.get(raw, encoded=True)
    assert reply.status == 200, reply.body
    assert _ids(reply.json()["events"]) == expected


def test_pagination_returns_every_event_exactly_once(
    server: Server, runtime: Runtime, dataset: DataSet
) -> None:
    """Following next_cursor walks every matching event once, even with inserts during the walk."""
    strategy = dataset.strategies[1]
    base = [("strategy_id", strategy), ("limit", "3")]
    expected = [str(e.id) for e in reversed(dataset.events) if e.strategy_id == strategy]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = base if cursor is None else [*base, ("cursor", cursor)]
        reply = server.get("/api/events", params)
        assert reply.status == 200, reply.body
        page = reply.json()["events"]
        assert len(page) <= 3
        seen.extend(_ids(page))
        pages += 1
        if pages == 1:  # newer matching events arrive while the client is paging
            for i in range(4):
                _recorder(runtime).record("SIGNAL", f"late {i}", strategy_id=strategy)
            _flush(runtime)
        cursor = reply.json()["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert seen == expected
    assert pages == -(-len(expected) // 3)
    fresh = server.get("/api/events", [("strategy_id", strategy), ("limit", "1000")])
    assert len(fresh.json()["events"]) == len(expected) + 4


def test_limit_defaults_to_100_and_caps_the_page(server: Server, runtime: Runtime) -> None:
    """Without limit a page has at most 100 events; limit=1000 is accepted."""
    strategy = f"s-{_tag()}"
    for i in range(105):
        _recorder(runtime).record("SIGNAL", f"bulk {i}", strategy_id=strategy)
    _flush(runtime)
    first = server.get("/api/events", {"strategy_id": strategy})
    assert len(first.json()["events"]) == 100
    assert first.json()["next_cursor"] is not None
    everything = server.get("/api/events", {"strategy_id": strategy, "limit": "1000"})
    assert len(everything.json()["events"]) == 105
    assert everything.json()["next_cursor"] is None


def _tampered(server: Server) -> str:
    cursor = server.get("/api/events", {"limit": "1"}).json()["next_cursor"]
    assert isinstance(cursor, str)
    middle = len(cursor) // 2
    return cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]


BAD_EVENTS_PARAMS = [
    pytest.param({"since": "yesterday"}, "since", id="since-yesterday"),
    pytest.param({"since": "2024-05-01"}, "since", id="since-date-only"),
    pytest.param({"since": "2024-05-01T12:00:00"}, "since", id="since-naive"),
    pytest.param({"until": "2024-05-01T12:00"}, "until", id="until-naive"),
    pytest.param({"until": "tomorrow"}, "until", id="until-word"),
    pytest.param({"limit": "0"}, "limit", id="limit-0"),
    pytest.param({"limit": "1001"}, "limit", id="limit-1001"),
    pytest.param({"limit": "abc"}, "limit", id="limit-abc"),
    pytest.param({"limit": "-5"}, "limit", id="limit-negative"),
    pytest.param([("limit", "5"), ("limit", "6")], "limit", id="limit-twice"),
    pytest.param({"severity": "LOUD"}, "severity", id="severity-loud"),
    pytest.param({"type": "NOT-A-TYPE"}, "type", id="type-malformed"),
    pytest.param({"type": "TRADE,"}, "type", id="type-empty-item"),
    pytest.param({"strategy_id": ""}, "strategy_id", id="strategy-empty"),
    pytest.param({"trade_id": "x" * 129}, "trade_id", id="trade-too-long"),
    pytest.param({"cursor": "not-a-cursor"}, "cursor", id="cursor-garbage"),
    pytest.param({"cursor": "{tampered}"}, "cursor", id="cursor-tampered"),
    pytest.param({"sevrity": "ERROR"}, "sevrity", id="unknown-parameter"),
    pytest.param(
        {"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"},
        "since",
        id="since-after-until",
    ),
    pytest.param(
        {"since": "2024-05-01T00:00:00Z", "until": "2024-05-01T02:00:00+02:00"},
        "since",
        id="since-equals-until",
    ),
]


def _assert_problem(reply: Reply, name: str, status: int = 400) -> None:
    assert reply.status == status, reply.body
    assert reply.content_type == PROBLEM_JSON
    problem = reply.json()
    assert problem["status"] == status
    assert name in problem["detail"]
    assert name in [param["name"] for param in problem["invalid_params"]]
    assert "Traceback" not in problem["detail"]


@pytest.mark.parametrize(("params", "name"), BAD_EVENTS_PARAMS)
def test_every_bad_parameter_is_a_400_problem_naming_it(
    server: Server, dataset: DataSet, params: Any, name: str
) -> None:
    """Each bad value (time, limit, severity, type, id, cursor, unknown name) is a 400 naming it."""
    if isinstance(params, dict) and params.get("cursor") == "{tampered}":
        params = {"cursor": _tampered(server)}
    _assert_problem(server.get("/api/events", params), name)


def test_every_bad_parameter_is_reported_at_once(server: Server) -> None:
    """Several bad parameters in one request are all listed in invalid_params."""
    reply = server.get("/api/events", {"since": "yesterday", "limit": "0", "colour": "red"})
    assert reply.status == 400
    names = [param["name"] for param in reply.json()["invalid_params"]]
    assert sorted(names) == ["colour", "limit", "since"]
    assert all(param["reason"] for param in reply.json()["invalid_params"])


# -- GET /api/events/summary ----------------------------------------------------------------


def test_summary_counts_by_type_and_severity_over_a_range(server: Server, dataset: DataSet) -> None:
    """The summary over [since, until) counts the events by type and by severity."""
    since, until = dataset.since, dataset.until
    reply = server.get("/api/events/summary", {"since": _iso(since), "until": _iso(until)})
    assert reply.status == 200
    assert reply.content_type == "application/json"
    by_type: dict[str, int] = {}
    by_severity = {severity.name: 0 for severity in Severity}
    for event in dataset.events:
        by_type[event.type] = by_type.get(event.type, 0) + 1
        by_severity[event.severity.name] += 1
    assert reply.json() == {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "total": len(dataset.events),
        "by_type": dict(sorted(by_type.items())),
        "by_severity": by_severity,
    }


def test_summary_without_a_range_counts_everything(server: Server, dataset: DataSet) -> None:
    """Without since/until the summary covers every stored event and echoes null bounds."""
    reply = server.get("/api/events/summary")
    assert reply.status == 200
    assert reply.json()["since"] is None
    assert reply.json()["until"] is None
    assert reply.json()["total"] >= len(dataset.events)
    assert reply.json()["total"] == sum(reply.json()["by_severity"].values())


@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param({"since": "yesterday"}, "since", id="since-yesterday"),
        pytest.param({"until": "2024-05-01"}, "until", id="until-date-only"),
        pytest.param(
            {"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"},
            "since",
            id="since-after-until",
        ),
        pytest.param({"type": "TRADE"}, "type", id="filter-not-supported"),
        pytest.param({"limit": "10"}, "limit", id="limit-not-supported"),
    ],
)
def test_summary_bad_parameter_is_a_400_problem_naming_it(
    server: Server, params: dict[str, str], name: str
) -> None:
    """The summary validates since/until like /api/events and rejects any other parameter."""
    _assert_problem(server.get("/api/events/summary", params), name)


# -- database unavailable -------------------------------------------------------------------


def test_database_down_is_a_503_problem_without_the_password(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    """An unreachable database answers 503 problem+json "database unavailable", password-free."""
    idle = Runtime(_config(tmp_path))
    served = Server(loop_thread, create_app(idle, manage_runtime=False))
    try:
        not_running = served.get("/api/events")
        idle.database = Database.open("postgresql+psycopg2://bot:hunter2secret@127.0.0.1:1/nope")
        replies = [served.get("/api/events"), served.get("/api/events/summary")]
    finally:
        served.close()
        if idle.database is not None:
            idle.database.dispose()
    for reply in (not_running, *replies):
        assert reply.status == 503
        assert reply.content_type == PROBLEM_JSON
        assert reply.json()["detail"].startswith("database unavailable")
        assert "hunter2secret" not in reply.text()
        assert "Traceback" not in reply.text()


# -- GET /api/events/stream -------------------------------------------------------------------


async def _next_text(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=TIMEOUT_S)
    assert message.type is WSMsgType.TEXT, message
    data: dict[str, Any] = message.json()
    return data


async def _wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds, failing after TIMEOUT_S."""
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.01)


def test_stream_sends_events_recorded_after_connecting(server: Server, runtime: Runtime) -> None:
    """The stream sends each event stored after the client connected, as one JSON text message."""
    strategy = f"s-{_tag()}"
    recorder = _recorder(runtime)

    async def scenario() -> list[dict[str, Any]]:
        before = await asyncio.to_thread(
            recorder.record_durable, "ORDER", "before", strategy_id=strategy
        )
        assert before is not None
        url = server.url(f"/api/events/stream?strategy_id={strategy}")
        async with server.session.ws_connect(url) as ws:
            after = [
                await asyncio.to_thread(
                    recorder.record_durable, "ORDER", f"after {i}", strategy_id=strategy
                )
                for i in range(3)
            ]
            received = [await _next_text(ws) for _ in after]
        assert received == [event.to_dict() for event in after]
        return received

    received = server.loop.run(scenario())
    assert "before" not in [message["message"] for message in received]


def test_stream_applies_every_filter(server: Server, runtime: Runtime) -> None:
    """type, severity, strategy_id and trade_id filter the stream; other events never arrive."""
    tag = _tag()
    strategy, trade = f"s-{tag}", f"t-{tag}"
    recorder = _recorder(runtime)
    query = f"type=order,TRADE&severity=Warning&strategy_id={strategy}&trade_id={trade}"
    match: dict[str, Any] = {"strategy_id": strategy, "trade_id": trade, "severity": "WARNING"}

    def record_all() -> list[Event]:
        wanted = [recorder.record("ORDER", "wanted 1", **match)]
        recorder.record("SIGNAL", "wrong type", **match)
        recorder.record("ORDER", "too low", **{**match, "severity": Severity.INFO})
        recorder.record("ORDER", "other strategy", **{**match, "strategy_id": f"x-{tag}"})
        recorder.record("TRADE", "other trade", **{**match, "trade_id": f"x-{tag}"})
        recorder.record("TRADE", "no trade", **{**match, "trade_id": None})
        wanted.append(recorder.record("TRADE", "wanted 2", **{**match, "severity": "CRITICAL"}))
        _flush(runtime)
        return wanted

    async def scenario() -> None:
        async with server.session.ws_connect(server.url(f"/api/events/stream?{query}")) as ws:
            wanted = await asyncio.to_thread(record_all)
            # Published in recording order: a leak would arrive before "wanted 2".
            received = [await _next_text(ws) for _ in wanted]
        assert [message["message"] for message in received] == ["wanted 1", "wanted 2"]
        assert received == [event.to_dict() for event in wanted]

    server.loop.run(scenario())


def test_slow_consumer_is_closed_with_1008(small_server: Server, runtime: Runtime) -> None:
    """A client that reads nothing while many events arrive is closed with 1008, not buffered."""
    strategy = f"s-{_tag()}"
    recorder = _recorder(runtime)

    def record_many() -> None:
        for i in range(200):
            recorder.record("SIGNAL", f"flood {i}", strategy_id=strategy)
        _flush(runtime)

    async def scenario() -> tuple[int, aiohttp.WSMessage, int | None]:
        url = small_server.url(f"/api/events/stream?strategy_id={strategy}")
        async with small_server.session.ws_connect(url) as ws:
            await asyncio.to_thread(record_many)  # the client reads nothing meanwhile
            texts = 0
            while True:
                message = await ws.receive(timeout=TIMEOUT_S)
                if message.type is not WSMsgType.TEXT:
                    return texts, message, ws.close_code
                texts += 1

    texts, message, close_code = small_server.loop.run(scenario())
    assert message.type is WSMsgType.CLOSE
    assert message.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert message.extra == "slow consumer: fell more than 5 events behind"
    assert close_code == 1008
    assert texts < 200  # cut off long before everything was delivered


def _small_receive_buffer(address: Any) -> socket.socket:
    """A client socket with a tiny receive window, so that its server's sends block soon."""
    family, type_, proto, _, _ = address
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


def test_client_whose_socket_is_full_is_closed_with_1008(
    small_server: Server, runtime: Runtime
) -> None:
    """A client that stops reading until the server's sends block is still closed with 1008.

    Megabytes must pass to fill the socket buffers, so this test publishes straight to the
    hub (what the event logger does after each commit) instead of storing every event.
    """
    strategy = f"s-{_tag()}"
    published = 3000

    async def scenario() -> tuple[int, aiohttp.WSMessage, int | None]:
        connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer)
        async with aiohttp.ClientSession(connector=connector) as session:
            url = small_server.url(f"/api/events/stream?strategy_id={strategy}")
            async with session.ws_connect(url) as ws:
                for i in range(published):  # one event per loop turn: the sender keeps pace
                    event = Event(
                        type="SIGNAL",
                        message=f"big {i}",
                        strategy_id=strategy,
                        context={"padding": "x" * 4000},
                    )
                    runtime.hub.publish([event])
                    await asyncio.sleep(0)
                texts = 0
                while True:
                    message = await ws.receive(timeout=TIMEOUT_S)
                    if message.type is not WSMsgType.TEXT:
                        return texts, message, ws.close_code
                    texts += 1

    texts, message, close_code = small_server.loop.run(scenario())
    assert message.type is WSMsgType.CLOSE
    assert message.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert message.extra == "slow consumer: fell more than 5 events behind"
    assert close_code == 1008
    assert texts < published


def test_consumer_that_keeps_up_is_never_cut_off(small_server: Server, runtime: Runtime) -> None:
    """With 5 pending allowed, a client that reads as events arrive gets far more than 5 of them."""
    strategy = f"s-{_tag()}"
    recorder = _recorder(runtime)

    async def scenario() -> None:
        url = small_server.url(f"/api/events/stream?strategy_id={strategy}")
        async with small_server.session.ws_connect(url) as ws:
            for i in range(20):
                event = await asyncio.to_thread(
                    recorder.record_durable, "TRADE", f"steady {i}", strategy_id=strategy
                )
                assert await _next_text(ws) == event.to_dict()
            assert not ws.closed

    small_server.loop.run(scenario())


def test_stream_unsubscribes_when_the_client_leaves(server: Server, runtime: Runtime) -> None:
    """Closing the WebSocket removes its hub subscription."""
    hub = runtime.hub

    async def scenario() -> None:
        await _wait_for(lambda: hub.subscribers == 0)  # earlier tests' streams are gone
        async with server.session.ws_connect(server.url("/api/events/stream")) as ws:
            assert hub.subscribers == 1  # subscribed before the handshake answered
            await ws.close()
        await _wait_for(lambda: hub.subscribers == 0)  # cleanup runs after the handshake

    server.loop.run(scenario())


def test_stream_sends_heartbeat_pings(
    loop_thread: LoopThread, runtime: Runtime, server: Server
) -> None:
    """The server pings an idle stream every STREAM_HEARTBEAT_S seconds."""
    app = create_app(runtime, manage_runtime=False)
    app[STREAM_HEARTBEAT_S] = 0.1
    pinging = Server(loop_thread, app)

    async def scenario() -> aiohttp.WSMessage:
        url = pinging.url("/api/events/stream")
        async with pinging.session.ws_connect(url, autoping=False) as ws:
            while True:  # events the runtime records meanwhile (its reconciliation) come first
                message = await ws.receive(timeout=TIMEOUT_S)
                if message.type is not WSMsgType.TEXT:
                    break
            await ws.pong(message.data)
            return message

    try:
        message = loop_thread.run(scenario())
    finally:
        pinging.close()
    assert message.type is WSMsgType.PING


def test_server_shutdown_closes_streams_with_1001(
    loop_thread: LoopThread, runtime: Runtime, server: Server
) -> None:
    """Stopping the server closes open streams at once with 1001 (going away)."""
    extra = Server(loop_thread, create_app(runtime, manage_runtime=False))

    async def scenario() -> tuple[aiohttp.WSMessage, int | None]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(extra.url("/api/events/stream")) as ws,
        ):
            receiving = asyncio.create_task(ws.receive(timeout=TIMEOUT_S))
            async with asyncio.timeout(TIMEOUT_S):
                await extra.stop()
            return await receiving, ws.close_code

    message, close_code = loop_thread.run(scenario())
    assert message.type is WSMsgType.CLOSE
    assert message.data == aiohttp.WSCloseCode.GOING_AWAY
    assert message.extra == "server shutdown"
    assert close_code == 1001


@pytest.mark.parametrize(
    ("query", "name"),
    [
        pytest.param("since=2024-05-01T00:00:00Z", "since", id="since"),
        pytest.param("until=2024-05-01T00:00:00Z", "until", id="until"),
        pytest.param("limit=10", "limit", id="limit"),
        pytest.param("cursor=abc", "cursor", id="cursor"),
        pytest.param("severity=LOUD", "severity", id="severity-loud"),
        pytest.param("type=no-such-type", "type", id="type-malformed"),
        pytest.param("strategy=x", "strategy", id="unknown-parameter"),
    ],
)
def test_stream_bad_parameter_is_a_400_before_upgrading(
    server: Server, query: str, name: str
) -> None:
    """A bad or range/paging parameter on the stream is a 400 problem naming it, not an upgrade."""
    _assert_problem(server.get(f"/api/events/stream?{query}"), name)

    async def handshake() -> int:
        with pytest.raises(aiohttp.WSServerHandshakeError) as failure:
            await server.session.ws_connect(server.url(f"/api/events/stream?{query}"))
        return failure.value.status

    assert server.loop.run(handshake()) == 400


def test_stream_without_upgrade_is_a_426_problem(server: Server) -> None:
    """A plain GET on the stream answers 426 problem+json telling the client to upgrade."""
    reply = server.get("/api/events/stream", {"type": "TRADE"})
    assert reply.status == 426
    assert reply.content_type == PROBLEM_JSON
    assert "WebSocket" in reply.json()["detail"]


def test_stream_refuses_a_websocket_opened_by_another_sites_page(server: Server) -> None:
    """A page of another origin (any site the operator visits) cannot open the live tail,
    even on the tokenless loopback default; the bot's own origin can."""

    async def scenario() -> tuple[int, bool]:
        url = server.url("/api/events/stream")
        try:
            async with server.session.ws_connect(url, origin="https://evil.example"):
                refused = 101
        except aiohttp.WSServerHandshakeError as exc:
            refused = exc.status
        host = url.split("/")[2]
        async with server.session.ws_connect(url, origin=f"http://{host}") as ws:
            own = not ws.closed
        return refused, own

    refused, own = server.loop.run(scenario())
    assert refused == 403
    assert own
