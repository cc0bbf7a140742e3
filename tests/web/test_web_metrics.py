"""``GET /metrics`` over a loopback server and a real runtime on SQLite.

The exposition is parsed with prometheus-client's own parser; counters are driven by
real causes (a crash drill, events recorded through the runtime's recorder, requests).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from support.web_server import LoopThread, web_config
from support.web_server import Server as LoopbackServer
from tradingbot.config import Config
from tradingbot.events import Event
from tradingbot.events.event_logger import FlushEvents
from tradingbot.runtime import Runtime
from tradingbot.supervision import ActorRestarted, SupervisionEvent
from tradingbot.web import create_app
from tradingbot.web.metrics import METRICS_REGISTRY

TIMEOUT_S = 10.0


class Scrape:
    """One parsed exposition: samples by name, filtered by labels."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            sample
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample matching; 0 when the series does not exist (yet)."""
        found = self.find(name, **labels)
        assert len(found) <= 1, found
        return found[0].value if found else 0.0


class Server(LoopbackServer):
    """The shared loopback server, plus a parsed scrape of its ``/metrics``."""

    def scrape(self) -> Scrape:
        reply = self.get("/metrics")
        assert reply.status == 200
        return Scrape(reply.text())


def _config(tmp: Path) -> Config:
    return web_config(
        tmp,
        {
            "TRADINGBOT_EVENTS_FLUSH_INTERVAL_S": "0.05",
            "TRADINGBOT_LIVENESS_PROBE_INTERVAL_S": "0.2",
            "TRADINGBOT_LIVENESS_DEADLINE_S": "2",
        },
    )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime(_config(tmp_path_factory.mktemp("web-metrics")))


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, runtime: Runtime) -> Iterator[Server]:
    """The app managing its runtime (database, tree, event logger), on a real port."""
    with Server(loop_thread, create_app(runtime)) as served:
        yield served


def _flush(runtime: Runtime) -> None:
    """Ask the real event logger to write everything it was told so far."""
    assert runtime.tree is not None
    runtime.tree.handle("event_logger").ask(FlushEvents(), timeout_s=TIMEOUT_S)


def test_exposition_is_prometheus_text_that_parses(server: Server) -> None:
    """/metrics answers text format 0.0.4 that prometheus-client's parser reads."""
    reply = server.get("/metrics")
    status, content_type, text = reply.status, reply.headers["Content-Type"], reply.text()
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(text))
    assert families
    assert all(family.documentation for family in families)


def test_process_and_platform_metrics_are_exposed(server: Server) -> None:
    """The process collector (CPU, memory, file descriptors) and python_info are included."""
    scrape = server.scrape()
    assert scrape.value("process_cpu_seconds_total") > 0
    assert scrape.value("process_resident_memory_bytes") > 0
    assert scrape.value("process_open_fds") > 0
    assert scrape.find("python_info")
    assert scrape.value("tradingbot_build_info") == 1


def test_actor_status_and_unresponsive_are_read_from_the_tree(server: Server) -> None:
    """Every actor has a status series with 1 on its current status; none is unresponsive."""
    scrape = server.scrape()
    assert scrape.value("tradingbot_actor_status", actor="heartbeat", status="running") == 1
    assert scrape.value("tradingbot_actor_status", actor="heartbeat", status="stopped") == 0
    assert scrape.value("tradingbot_actor_status", actor="root", status="running") == 1
    assert scrape.find("tradingbot_actor_mailbox_depth", actor="event_logger")
    assert scrape.find("tradingbot_actors_unresponsive")[0].value == 0


def test_crash_drill_increments_the_restart_counter(server: Server, runtime: Runtime) -> None:
    """tree.crash("heartbeat") adds one to tradingbot_actor_restarts_total{actor="heartbeat"}."""
    tree = runtime.tree
    assert tree is not None
    before = server.scrape()
    assert before.find("tradingbot_actor_restarts_total", actor="heartbeat")  # zero series
    restarted = threading.Event()

    def on_event(event: SupervisionEvent) -> None:
        if isinstance(event, ActorRestarted) and event.actor == "heartbeat":
            restarted.set()

    tree.add_listener(on_event)  # after the metrics listener: it has counted when this fires
    tree.crash("heartbeat")
    assert restarted.wait(TIMEOUT_S)

    after = server.scrape()
    name = "tradingbot_actor_restarts_total"
    assert after.value(name, actor="heartbeat") == before.value(name, actor="heartbeat") + 1
    assert after.value(name, actor="event_logger") == before.value(name, actor="event_logger")


def test_recorded_events_are_counted_by_type(server: Server, runtime: Runtime) -> None:
    """Events accepted by the event logger are counted by type; the stored ones as stored."""
    assert runtime.recorder is not None
    name = "tradingbot_events_recorded_total"
    before = server.scrape()
    for _ in range(3):
        runtime.recorder.record("SIGNAL", "metrics test signal")
    runtime.recorder.record("METRICSPROBE", "metrics test probe")  # not persisted by policy
    _flush(runtime)

    after = server.scrape()
    assert after.value(name, type="SIGNAL") == before.value(name, type="SIGNAL") + 3
    assert after.value(name, type="METRICSPROBE") == before.value(name, type="METRICSPROBE") + 1
    stored = "tradingbot_events_stored_total"
    assert after.value(stored) >= before.value(stored) + 3


def test_spool_depth_and_age_are_exposed(loop_thread: LoopThread, tmp_path: Path) -> None:
    """Spooled events show as tradingbot_event_spool_depth and their oldest age, tree or not."""
    idle = Runtime(_config(tmp_path))
    old = datetime.now(UTC) - timedelta(minutes=5)
    idle.spool.append(
        [Event(type="TRADE", message=f"spooled {n}", timestamp=old) for n in range(2)]
    )
    served = Server(loop_thread, create_app(idle, manage_runtime=False))
    try:
        scrape = served.scrape()
    finally:
        served.close()
    assert scrape.value("tradingbot_event_spool_depth") == 2
    assert scrape.value("tradingbot_event_spool_bytes") > 0
    assert scrape.value("tradingbot_event_spool_oldest_age_seconds") >= 300
    assert scrape.value("tradingbot_actors_unresponsive") == 0
    assert not scrape.find("tradingbot_actor_status")  # no tree running


def test_running_runtime_exposes_an_empty_spool(server: Server, runtime: Runtime) -> None:
    """With the database up the spool gauge is the spool's real depth, zero."""
    scrape = server.scrape()
    assert scrape.value("tradingbot_event_spool_depth") == runtime.spool.depth() == 0
    assert scrape.value("tradingbot_event_spool_oldest_age_seconds") == 0


def test_http_histogram_is_labelled_by_route(server: Server) -> None:
    """A request to /api/actors is observed under its route with method and status."""
    name = "tradingbot_http_request_duration_seconds_count"
    labels = {"method": "GET", "route": "/api/actors", "status": "200"}
    before = server.scrape().value(name, **labels)
    assert server.get("/api/actors").status == 200
    scrape = server.scrape()
    assert scrape.value(name, **labels) == before + 1
    bucket = scrape.find("tradingbot_http_request_duration_seconds_bucket", le="+Inf", **labels)
    assert bucket[0].value == before + 1


def test_unknown_paths_collapse_into_one_label(server: Server) -> None:
    """Requests to unknown paths share route="unmatched"; no raw path becomes a label."""
    name = "tradingbot_http_request_duration_seconds_count"
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    before = server.scrape().value(name, **labels)
    tag = uuid.uuid4().hex
    for path in (f"/nope/{tag}", f"/api/{tag}", f"/{tag}/a/b"):
        assert server.get(path).status == 404
    scrape = server.scrape()
    assert scrape.value(name, **labels) == before + 3
    routes = {s.labels.get("route") for s in scrape.find(name)}
    assert not any(tag in str(route) for route in routes)


def test_each_app_has_its_own_registry(runtime: Runtime, server: Server) -> None:
    """Two apps over one runtime get separate registries that both expose its counters."""
    first = create_app(runtime, manage_runtime=False)
    second = create_app(runtime, manage_runtime=False)
    assert first[METRICS_REGISTRY] is not second[METRICS_REGISTRY]
    for app in (first, second):
        value = app[METRICS_REGISTRY].get_sample_value(
            "tradingbot_actor_restarts_total", {"actor": "event_logger"}
        )
        assert value is not None
