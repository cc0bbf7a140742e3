"""The events API: ``/api/events``, ``/api/events/summary`` and the ``/stream`` live tail.

Every parameter is validated before anything else happens; a bad one answers 400
``application/problem+json`` naming it. Database calls run on a worker thread
(``asyncio.to_thread``), never on the event loop.

The stream subscribes to the runtime's :class:`~tradingbot.events.hub.EventHub` with a
bounded queue (``STREAM_MAX_PENDING``). A client that falls more than that many events
behind is disconnected with close code 1008 (policy violation) and a reason saying so;
nothing is ever buffered without bound. Heartbeat pings (``STREAM_HEARTBEAT_S``) detect
a client that vanished, and open streams are closed with 1001 when the server shuts down.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import orjson
import structlog
from aiohttp import WSCloseCode, web

from tradingbot.events import Event, EventValidationError, Severity, check_type
from tradingbot.events.hub import Subscription
from tradingbot.events.model import MAX_ID_CHARS
from tradingbot.storage import (
    Database,
    EventQuery,
    InvalidQuery,
    StorageUnavailable,
)
from tradingbot.web.params import InvalidParam, InvalidParams, QueryReader
from tradingbot.web.problems import problem
from tradingbot.web.services import CONFIG, DATABASE, EVENT_HUB
from tradingbot.web.session import CURRENT, SESSIONS, same_origin

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Tunables, set on the app before it starts (``app[STREAM_MAX_PENDING] = 5``).
STREAM_MAX_PENDING = web.AppKey("events_stream_max_pending", int)
STREAM_HEARTBEAT_S = web.AppKey("events_stream_heartbeat_s", float)
DEFAULT_STREAM_MAX_PENDING = 1000
DEFAULT_STREAM_HEARTBEAT_S = 30.0
# Bound on a close handshake with a client that stopped reading.
STREAM_CLOSE_TIMEOUT_S = 5.0
# How often a send blocked by a client that reads nothing checks for overflow.
STALLED_SEND_CHECK_S = 0.25

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
FILTER_PARAMS = ("type", "severity", "strategy_id", "trade_id")
LIST_PARAMS = (*FILTER_PARAMS, "since", "until", "limit", "cursor")
SUMMARY_PARAMS = ("since", "until")
_NOT_ON_STREAM = "not supported on the live stream, which sends new events only; use /api/events"
STREAM_FORBIDDEN = dict.fromkeys(("since", "until", "limit", "cursor"), _NOT_ON_STREAM)

# EventQuery field names, as the storage layer reports them, to HTTP parameter names.
_PARAM_OF_FIELD = {"types": "type", "min_severity": "severity"}
_LEADING_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")


def add_routes(app: web.Application) -> None:
    """Register the three endpoints (they read ``DATABASE``, ``EVENT_HUB`` and ``CONFIG``)."""
    api = _EventsApi()
    app[_STREAMS] = set()
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/api/events", api.list_events)
    app.router.add_get("/api/events/summary", api.summary)
    app.router.add_get("/api/events/stream", api.stream)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamFilter:
    """The stream's filters; called on the event logger's thread for each stored event."""

    types: frozenset[str] = frozenset()
    min_severity: Severity | None = None
    strategy_id: str | None = None
    trade_id: str | None = None

    def __call__(self, event: Event) -> bool:
        return (
            (not self.types or event.type in self.types)
            and (self.min_severity is None or event.severity >= self.min_severity)
            and (self.strategy_id is None or event.strategy_id == self.strategy_id)
            and (self.trade_id is None or event.trade_id == self.trade_id)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Filters:
    types: tuple[str, ...]
    min_severity: Severity | None
    strategy_id: str | None
    trade_id: str | None


def _read_filters(reader: QueryReader) -> _Filters:
    types: list[str] = []
    for value in reader.many("type"):
        try:
            types.append(check_type(value.upper()))
        except EventValidationError:
            reader.fail(
                "type",
                f"expected event types such as TRADE or SIGNAL (letters, digits and _,"
                f" at most 32 characters), got {value!r}",
            )
    severity: Severity | None = None
    raw_severity = reader.one("severity")
    if raw_severity is not None:
        try:
            severity = Severity.parse(raw_severity)
        except ValueError:
            names = ", ".join(member.name for member in Severity)
            reader.fail("severity", f"expected one of {names}, got {raw_severity!r}")
    return _Filters(
        types=tuple(dict.fromkeys(types)),
        min_severity=severity,
        strategy_id=reader.text("strategy_id", max_chars=MAX_ID_CHARS),
        trade_id=reader.text("trade_id", max_chars=MAX_ID_CHARS),
    )


def _read_range(reader: QueryReader) -> tuple[datetime | None, datetime | None]:
    since = reader.timestamp("since")
    until = reader.timestamp("until")
    if since is not None and until is not None and since >= until:
        reader.fail(
            "since",
            f"must be before until, got since={since.isoformat()} until={until.isoformat()}",
        )
    return since, until


def _parse_list_query(request: web.Request) -> EventQuery:
    reader = QueryReader(request.query, LIST_PARAMS)
    filters = _read_filters(reader)
    since, until = _read_range(reader)
    limit = reader.integer("limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    cursor = reader.one("cursor")
    reader.check()
    return _storage_call(
        lambda: EventQuery(
            types=filters.types,
            min_severity=filters.min_severity,
            since=since,
            until=until,
            strategy_id=filters.strategy_id,
            trade_id=filters.trade_id,
            limit=limit,
            cursor=cursor,
        )
    )


def _parse_stream_filter(request: web.Request) -> StreamFilter:
    reader = QueryReader(request.query, FILTER_PARAMS, forbidden=STREAM_FORBIDDEN)
    filters = _read_filters(reader)
    reader.check()
    return StreamFilter(
        types=frozenset(filters.types),
        min_severity=filters.min_severity,
        strategy_id=filters.strategy_id,
        trade_id=filters.trade_id,
    )


def _storage_call(build: Callable[[], T]) -> T:
    """Run ``build``, turning the storage layer's InvalidQuery into InvalidParams."""
    try:
        return build()
    except InvalidQuery as exc:
        raise _invalid_params(exc) from exc


def _invalid_params(exc: InvalidQuery) -> InvalidParams:
    message = str(exc)
    match = _LEADING_NAME.match(message)
    field = match.group(1) if match else "query"
    name = _PARAM_OF_FIELD.get(field, field)
    reason = message[match.end() :].lstrip(" :") if match else message
    return InvalidParams([InvalidParam(name, reason or message)])


def _json(body: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _unavailable(reason: str) -> web.Response:
    return problem(503, f"database unavailable: {reason}")


class _EventsApi:
    """The handlers of the three endpoints."""

    async def _in_thread(
        self, request: web.Request, call: Callable[[Database], T]
    ) -> T | web.Response:
        """Run ``call(database)`` on a worker thread; a 503 problem if the database is out."""
        database = request.app[DATABASE]()
        if database is None:
            return _unavailable("the runtime is not running")
        try:
            return await asyncio.to_thread(call, database)
        except StorageUnavailable as exc:
            # The storage layer's message names the database with its password redacted.
            log.warning("events_api_database_unavailable", path=request.path, error=str(exc))
            return _unavailable("retry later")

    async def list_events(self, request: web.Request) -> web.Response:
        """``GET /api/events``: filtered events, newest first, with a keyset cursor."""
        try:
            query = _parse_list_query(request)
            page = await self._in_thread(
                request, lambda db: _storage_call(lambda: db.events.query(query))
            )
        except InvalidParams as exc:
            return exc.response()
        if isinstance(page, web.Response):
            return page
        return _json(
            {
                "events": [event.to_dict() for event in page.events],
                "next_cursor": page.next_cursor,
            }
        )

    async def summary(self, request: web.Request) -> web.Response:
        """``GET /api/events/summary``: counts by type and by severity over a range."""
        reader = QueryReader(request.query, SUMMARY_PARAMS)
        since, until = _read_range(reader)
        try:
            reader.check()
            summary = await self._in_thread(
                request, lambda db: _storage_call(lambda: db.events.summary(since, until))
            )
        except InvalidParams as exc:
            return exc.response()
        if isinstance(summary, web.Response):
            return summary
        return _json(
            {
                "since": None if since is None else since.isoformat(),
                "until": None if until is None else until.isoformat(),
                "total": summary.total,
                "by_type": summary.by_type,
                "by_severity": summary.by_severity,
            }
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/events/stream``: a WebSocket sending each new stored event as JSON."""
        if not same_origin(request):
            # Browsers let any page open a WebSocket anywhere: a page of another site
            # must not read the live events (the loopback default has no token).
            return problem(403, "a WebSocket from another origin is refused")
        try:
            accept = _parse_stream_filter(request)
        except InvalidParams as exc:
            return exc.response()
        app = request.app
        ws = web.WebSocketResponse(
            heartbeat=app.get(STREAM_HEARTBEAT_S, DEFAULT_STREAM_HEARTBEAT_S),
            timeout=STREAM_CLOSE_TIMEOUT_S,  # wait for the client's close frame at most this
        )
        if not ws.can_prepare(request).ok:
            if _asks_for_websocket(request):  # an upgrade, but its handshake is wrong
                return problem(
                    400,
                    "invalid WebSocket handshake: Sec-WebSocket-Version must be 13 and "
                    "Sec-WebSocket-Key 16 bytes in base64",
                )
            response = problem(426, "this endpoint is a WebSocket; send an Upgrade request")
            response.headers["Upgrade"] = "websocket"
            response.headers["Connection"] = "Upgrade"
            return response
        # One stored batch arrives at once: a client keeping up must never be cut off
        # by a single burst, so the default is at least twice the batch size.
        default = max(DEFAULT_STREAM_MAX_PENDING, 2 * app[CONFIG].events_batch_size)
        max_pending = app.get(STREAM_MAX_PENDING, default)
        # Subscribed before the handshake: once the client is connected, nothing is missed.
        subscription = app[EVENT_HUB].subscribe(accept, max_pending=max_pending)
        # A stream opened with a browser session ends with it (logout or expiry).
        session, sessions = request.get(CURRENT), app.get(SESSIONS)
        alive = None
        if session is not None and sessions is not None:
            alive = partial(sessions.alive, session)
        stream = _Stream(
            ws,
            subscription,
            max_pending,
            transport=request.transport,
            remote=request.remote,
            alive=alive,
        )
        streams = app[_STREAMS]
        try:
            await ws.prepare(request)
            streams.add(stream)
            await stream.run()
        finally:
            streams.discard(stream)
            subscription.close()
        return ws


def _asks_for_websocket(request: web.Request) -> bool:
    """Whether the request is a WebSocket upgrade (valid or not): then a bad one is a 400."""
    tokens = request.headers.get("Connection", "").lower().split(",")
    upgrade = request.headers.get("Upgrade", "").strip().lower()
    return upgrade == "websocket" and "upgrade" in {token.strip() for token in tokens}


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class _Stream:
    """One open stream: forwards events until the client leaves, lags, or the server stops.

    Three tasks run while it is open: the sender forwards the subscription's events; the
    receiver reads (and ignores) client messages so that pongs and a client's close are
    processed; the watchdog notices an overflow the sender cannot see because it is
    blocked on a client that reads nothing (the hub's overflow marker then sits unread
    in the queue). The receiver is stopped before the server closes the socket, so that
    aiohttp's ``close()`` waits for the client's close frame (a clean handshake) instead
    of dropping the connection; a sender blocked in a send is not cancelled before the
    close, because that would cancel aiohttp's shared drain waiter. A close that cannot
    complete within its bound aborts the connection.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        subscription: Subscription,
        max_pending: int,
        *,
        transport: asyncio.Transport | None,
        remote: str | None,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self._ws = ws
        self._alive = alive
        self._subscription = subscription
        self._max_pending = max_pending
        self._transport = transport
        self._remote = remote
        loop = asyncio.get_running_loop()
        self._stop: asyncio.Future[_Close] = loop.create_future()
        self._sending = False
        self._closing = False
        self.done: asyncio.Future[None] = loop.create_future()

    def stop(self, code: int, reason: str) -> None:
        """Ask the stream to close with ``code`` (from any task on its loop)."""
        if not self._stop.done():
            self._stop.set_result(_Close(code, reason))

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if not self.done.done():
                self.done.set_result(None)

    async def _run(self) -> None:
        sender = asyncio.create_task(self._send())
        receiver = asyncio.create_task(self._receive())
        watchdog = asyncio.create_task(self._watch())
        close: _Close | None = None
        try:
            await asyncio.wait(
                (sender, receiver, watchdog, self._stop), return_when=asyncio.FIRST_COMPLETED
            )
            close = self._close_wanted(sender, receiver, watchdog)
        finally:
            self._closing = True
            helpers = [receiver, watchdog] if self._sending else [sender, receiver, watchdog]
            for task in helpers:
                task.cancel()
            await asyncio.wait(helpers)
            if close is not None:
                # drain=False: behind a client that reads nothing the close frame waits in
                # the buffer; close() then waits (``timeout``) for the client's answer.
                code, reason = close.code, close.reason.encode()
                closing = self._ws.close(code=code, message=reason, drain=False)
                if not await _bounded(closing) and self._transport is not None:
                    self._transport.abort()
            sender.cancel()
            await asyncio.wait((sender,))
        for task in (sender, receiver):
            failure = None if task.cancelled() else task.exception()
            if failure is not None and not isinstance(failure, ConnectionError):
                log.error(
                    "events_stream_failed",
                    remote=self._remote,
                    error=f"{type(failure).__name__}: {failure}",
                )

    def _close_wanted(
        self, sender: asyncio.Task[None], receiver: asyncio.Task[None], watchdog: asyncio.Task[None]
    ) -> _Close | None:
        """Why the server must close the socket; None when the client already left."""
        if receiver.done():
            return None  # the client closed, or the connection is gone
        if sender.done() and sender.exception() is not None:
            return None  # the connection is gone (a send failed)
        if self._stop.done():
            return self._stop.result()
        if sender.done() or watchdog.done():
            log.warning(
                "events_stream_slow_consumer", remote=self._remote, max_pending=self._max_pending
            )
            return _Close(
                WSCloseCode.POLICY_VIOLATION,
                f"slow consumer: fell more than {self._max_pending} events behind",
            )
        return self._stop.result()

    async def _send(self) -> None:
        """Forward events as JSON text messages; return once the subscription overflowed."""
        subscription = self._subscription
        while True:
            event = await subscription.queue.get()
            if event is None or subscription.overflowed or self._closing:
                return
            self._sending = True
            try:
                await self._ws.send_str(orjson.dumps(event.to_dict()).decode())
            finally:
                self._sending = False

    async def _receive(self) -> None:
        async for _message in self._ws:
            continue  # the tail is one-way: reading only serves pings and the close frame

    async def _watch(self) -> None:
        """Return once the subscription overflowed while a send is blocked; stop the
        stream once the browser session it was opened with has ended."""
        while not (self._subscription.overflowed and self._sending):
            if self._alive is not None and not self._alive():
                log.info("events_stream_session_ended", remote=self._remote)
                self.stop(WSCloseCode.POLICY_VIOLATION, "the session ended: log in again")
                await asyncio.Future()  # the stop ends the stream; wait to be cancelled
            await asyncio.sleep(STALLED_SEND_CHECK_S)


_STREAMS = web.AppKey("events_streams", set[_Stream])


async def _bounded(closing: Awaitable[bool]) -> bool:
    """Await a close handshake for a bounded time; False if it did not finish in time."""
    try:
        async with asyncio.timeout(2 * STREAM_CLOSE_TIMEOUT_S):
            await closing
    except TimeoutError:
        return False
    return True


async def _close_streams(app: web.Application) -> None:
    """``on_shutdown``: close open streams with 1001 so the server need not wait for them."""
    streams = app[_STREAMS].copy()
    for stream in streams:
        stream.stop(WSCloseCode.GOING_AWAY, "server shutdown")
    if streams:
        await asyncio.wait([stream.done for stream in streams], timeout=3 * STREAM_CLOSE_TIMEOUT_S)
