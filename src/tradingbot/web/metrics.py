"""``GET /metrics``: Prometheus text exposition, and the HTTP request duration histogram.

Each app has its own ``CollectorRegistry`` (never prometheus-client's global default,
so that many apps can live in one process, as in the tests) holding:

* the process, platform and garbage-collector collectors (``process_*``, ``python_*``);
* the runtime's counters (:class:`tradingbot.metrics.RuntimeMetrics`) and its
  scrape-time gauges (:class:`tradingbot.metrics.RuntimeStateCollector`);
* ``tradingbot_http_request_duration_seconds{method,route,status}``, observed by
  :func:`http_metrics_middleware`. ``route`` is the matched route's canonical path
  (``/api/events``), never the raw path, and ``unmatched`` for anything no route
  matched; a method outside the standard ones is ``other``. So no client can grow the
  number of series. WebSocket sessions (``101``) are not observed: their duration is
  the session's, not a request's.

The exposition is rendered on a worker thread: a scrape never runs collectors on the
event loop. Like every endpoint, ``/metrics`` requires the bearer token when one is
configured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from tradingbot.web.problems import Handler

# The classic text format, which ``generate_latest`` writes (prometheus-client >= 0.22
# sets its CONTENT_TYPE_LATEST to version 1.0.0, hence our own constant).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"
OTHER_METHOD = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Down to 1 ms: the health endpoints aim at a p99 below 10 ms.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """The per-app HTTP metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.request_duration = Histogram(
            "tradingbot_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route (canonical path) and status.",
            ["method", "route", "status"],
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        # Bounded: methods are a fixed set, routes the app's own, statuses few.
        self._children: dict[tuple[str, str, int], Any] = {}

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        method = request.method if request.method in METHODS else OTHER_METHOD
        key = (method, route_label(request), status)
        child = self._children.get(key)
        if child is None:  # labels() costs a few µs per request; the set of keys is small
            child = self._children[key] = self.request_duration.labels(
                method=method, route=key[1], status=str(status)
            )
        child.observe(seconds)


METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)


def route_label(request: web.Request) -> str:
    """The matched route's canonical path, or ``unmatched`` (404, 405...)."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


def metrics_registry(collectors: Iterable[Collector]) -> CollectorRegistry:
    """A fresh registry with the process collectors and the runtime's ``collectors``."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)
    return registry


def add_metrics(app: web.Application, collectors: Iterable[Collector]) -> None:
    """Give ``app`` its registry (with ``collectors``) and HTTP metrics, and register
    ``GET /metrics``; the wiring names the runtime's collectors."""
    registry = metrics_registry(collectors)
    app[METRICS_REGISTRY] = registry
    app[HTTP_METRICS] = HttpMetrics(registry)
    app.router.add_get("/metrics", metrics)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the Prometheus text exposition (format 0.0.4)."""
    body = await asyncio.to_thread(generate_latest, request.app[METRICS_REGISTRY])
    return web.Response(
        body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
    )


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Observe each request's duration; outermost, so it sees the final status (401s too)."""
    http = request.app.get(HTTP_METRICS)
    if http is None:
        return await handler(request)
    start = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect, or an error no inner middleware answered
        http.observe(request, exc.status, time.perf_counter() - start)
        raise
    except Exception:
        http.observe(request, 500, time.perf_counter() - start)
        raise
    if response.status != 101:
        http.observe(request, response.status, time.perf_counter() - start)
    return response
