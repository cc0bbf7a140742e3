"""HTTP connection limits: a connection cap, header and body deadlines, quiet bad requests.

aiohttp on its own serves any number of connections and waits an hour for a request's
headers, so a flood of half-sent requests takes every file descriptor of the process
(the control socket included), and each garbled request is answered with a text/plain
echo of its start and logged as an ERROR with a traceback. :class:`GuardedSite` is the
TCP site of ``trading-bot run`` that fixes both:

- At most ``max_connections`` connections are open; one more is answered at once with a
  503 ``application/problem+json`` and closed. The cap is lowered below the open-file
  limit by a reserve (:func:`connection_cap`), so the control socket, the database and
  the log files always find a descriptor while HTTP is flooded.
- A connection must deliver a complete request head within ``header_timeout_s`` of
  opening (or of its previous response), else it is closed; a request body must arrive
  within ``body_timeout_s`` (:func:`body_timeout_middleware`, else 408).
- A request that is not valid HTTP is answered with a problem+json 400 that never echoes
  it, and logged as one WARNING per client per minute (with the number left unsaid).

:func:`throttle_accept_errors` turns asyncio's accept-error report, which repeats for
every failed ``accept()`` when descriptors run out, into one log line a minute.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from tradingbot.web.problems import Handler, problem

log = structlog.get_logger(__name__)

#: Descriptors kept free besides the HTTP backlog and the control socket's connections:
#: the database pool, log and spool files, the broker and the simulator.
FD_RESERVE = 128
LOG_INTERVAL_S = 60.0
_MAX_CLIENTS_TRACKED = 4096
_ACCEPT_FAILED = "socket.accept() out of system resource"


def connection_cap(configured: int, *, backlog: int, other_connections: int) -> int:
    """The HTTP connection cap: ``configured``, lowered to keep a reserve of descriptors.

    The reserve is the listen backlog (accepted in one batch before the cap is checked),
    ``other_connections`` (the control socket's cap) and :data:`FD_RESERVE`.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    room = soft - backlog - other_connections - FD_RESERVE
    return max(1, min(configured, room))


@dataclass(slots=True)
class Throttle:
    """Allow one event per key per ``interval_s``; count the ones held back meanwhile."""

    interval_s: float = LOG_INTERVAL_S
    _seen: dict[Any, tuple[float, int]] = field(default_factory=dict)

    def allow(self, key: Any) -> int | None:
        """The number held back since the last allowed one, or None to stay quiet now."""
        now = time.monotonic()
        last, held = self._seen.get(key, (float("-inf"), 0))
        if now - last < self.interval_s:
            self._seen[key] = (last, held + 1)
            return None
        if len(self._seen) >= _MAX_CLIENTS_TRACKED:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.interval_s}
            if len(self._seen) >= _MAX_CLIENTS_TRACKED:
                self._seen.clear()  # a storm of distinct clients: start over, stay bounded
        self._seen[key] = (now, 0)
        return held


def _refusal() -> bytes:
    body = orjson.dumps(
        {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "too many open connections; retry shortly",
        }
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_REFUSAL = _refusal()


class _Refuse(asyncio.Protocol):
    """A connection beyond the cap: answer 503 at once and close, reading nothing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_REFUSAL)
        transport.close()


@dataclass(slots=True, eq=False)  # hashable by identity: a Prometheus collector
class ConnectionGuard:
    """Counts open HTTP connections and decides, per new one, to serve or refuse it."""

    max_connections: int
    header_timeout_s: float
    open_connections: int = 0
    refused_total: int = 0
    bad_requests_total: int = 0
    _refused: Throttle = field(default_factory=Throttle)
    _bad: Throttle = field(default_factory=Throttle)

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """The protocol factory for ``loop.create_server``: a request handler or a refusal."""
        loop = asyncio.get_running_loop()

        def make() -> asyncio.Protocol:
            if self.open_connections >= self.max_connections:
                self.refused_total += 1
                held = self._refused.allow("all")
                if held is not None:
                    log.warning(
                        "http_connections_refused",
                        max_connections=self.max_connections,
                        refused_since_last_report=held + 1,
                    )
                return _Refuse()
            return _GuardedHandler(
                server,
                self,
                loop=loop,
                access_log=None,
                # aiohttp closes a connection whose next request head has not arrived
                # when its keep-alive deadline passes, counted from the connection's start
                # and from each response: that is the header timeout.
                keepalive_timeout=self.header_timeout_s,
                lingering_time=min(10.0, self.header_timeout_s),
            )

        return make

    def bad_request(self, remote: str | None, exc: BaseException | None) -> None:
        """Log a garbled request once per client per minute, without its content."""
        self.bad_requests_total += 1
        held = self._bad.allow(remote)
        if held is not None:
            log.warning(
                "http_bad_request",
                remote=remote,
                reason=_reason(exc),
                more_since_last_report=held,
            )

    def collect(self) -> Iterator[Metric]:
        """Prometheus: open connections, the cap, refusals and bad requests."""
        yield GaugeMetricFamily(
            "tradingbot_http_connections_open", "Open HTTP connections.", self.open_connections
        )
        yield GaugeMetricFamily(
            "tradingbot_http_connections_max",
            "The HTTP connection cap in force (TRADINGBOT_HTTP_MAX_CONNECTIONS, lowered to "
            "keep a reserve below the open-file limit).",
            self.max_connections,
        )
        yield CounterMetricFamily(
            "tradingbot_http_connections_refused",
            "HTTP connections refused with 503 because the cap was reached.",
            self.refused_total,
        )
        yield CounterMetricFamily(
            "tradingbot_http_bad_requests",
            "Requests that were not valid HTTP (answered 400 problem+json).",
            self.bad_requests_total,
        )


class _GuardedHandler(RequestHandler):
    """aiohttp's request handler, counted by the guard, answering bad requests quietly."""

    __slots__ = ("_counted", "_guard")

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        # Counted from creation, not from connection_made: asyncio calls that one a loop
        # turn later, after the factory has already been asked for the rest of the batch.
        guard.open_connections += 1
        self._counted = True

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._guard.open_connections -= 1
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """problem+json that never echoes the request; 4xx as a throttled WARNING."""
        if status >= 500:
            if status == 500:
                log.error("http_request_failed", remote=request.remote, exc_info=exc)
            detail = "internal error; see the server log"
        else:
            self._guard.bad_request(request.remote, exc)
            detail = "the request is not valid HTTP/1.1"
            if exc is not None:
                detail = _DETAILS.get(type(exc), detail)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; cannot send the error")
        response = problem(status, detail)
        response.force_close()
        return response


_DETAILS: dict[type[BaseException], str] = {
    http_exceptions.LineTooLong: "the request line or a header is longer than the limit",
    http_exceptions.BadHttpMethod: "the request method is not valid",
    http_exceptions.BadStatusLine: "the request line is not valid HTTP/1.1",
    http_exceptions.InvalidHeader: "a request header is not valid",
    http_exceptions.InvalidURLError: "the request target is not a valid URL",
}


def _reason(exc: BaseException | None) -> str:
    return "unknown" if exc is None else type(exc).__name__


class GuardedSite(web.TCPSite):
    """A TCP site whose connections pass through a :class:`ConnectionGuard`."""

    __slots__ = ("_guard",)
    #: The listen backlog (aiohttp's default): accepted in one batch before the cap is
    #: checked, so part of the descriptor reserve (see :func:`connection_cap`).
    BACKLOG = 128

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner, host, port, backlog=self.BACKLOG)
        self._guard = guard

    async def start(self) -> None:
        """Listen like :class:`aiohttp.web.TCPSite`, with the guard's protocol factory."""
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def body_timeout_middleware(timeout_s: float) -> Any:
    """Read a request's body before its handler, within ``timeout_s`` (else 408)."""

    @web.middleware
    async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(timeout_s):
                    await request.read()  # kept by aiohttp for the handler's own read()
            except TimeoutError:
                response = problem(408, f"the request body did not arrive within {timeout_s:g} s")
                response.force_close()
                return response
        return await handler(request)

    return read_body_in_time


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Report asyncio's failed ``accept()`` (descriptors exhausted) once a minute."""
    previous = loop.get_exception_handler()
    throttle = Throttle()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(_ACCEPT_FAILED):
            held = throttle.allow("accept")
            if held is not None:
                log.error(
                    "accept_failed",
                    error=str(context.get("exception")),
                    more_since_last_report=held,
                    hint="raise LimitNOFILE, or lower TRADINGBOT_HTTP_MAX_CONNECTIONS",
                )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
