"""The health actor in a real supervision tree, with checks the test controls.

A :class:`Probe` is a real check function: it counts its runs and can be made to block
on a ``threading.Event`` (a hung dependency) or to raise. Conditions are awaited by
polling the published :class:`HealthState`, with generous timeouts.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from support.bot_config import bot_config
from tradingbot.health import FAIL, PASS, WARN, Check, HealthReport, HealthState
from tradingbot.health.actor import HealthActor, RefreshHealth
from tradingbot.health.checks import NamedCheck
from tradingbot.runtime import Runtime
from tradingbot.supervision import SupervisionTree, supervisor, worker
from tradingbot.web import create_app

pytestmark = pytest.mark.timeout(60)

WAIT_S = 15.0  # generous upper bound for anything asynchronous; never asserted on
INTERVAL_S = 0.05
TIMEOUT_S = 0.3


class Probe:
    """A check the test controls: counts runs, blocks while ``gate`` is clear, may raise."""

    def __init__(self, component: str, measurement: str = "status") -> None:
        self.component = component
        self.measurement = measurement
        self.gate = threading.Event()
        self.gate.set()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    def __call__(self) -> list[Check]:
        with self._lock:
            self._calls += 1
            number = self._calls
        self.gate.wait(WAIT_S * 4)
        if self.error is not None:
            raise self.error
        return [
            Check(
                component=self.component,
                measurement=self.measurement,
                status=PASS,
                observed_value=number,
                observed_unit="runs",
            )
        ]

    def named(self, *, slow: bool = False) -> NamedCheck:
        return NamedCheck(
            component=self.component, measurement=self.measurement, run=self, slow=slow
        )


def only(report: HealthReport, component: str) -> Check:
    [check] = report.select([component])
    return check


HealthTree = Callable[..., tuple[SupervisionTree, HealthState]]


@pytest.fixture
def health_tree() -> Iterator[HealthTree]:
    """Start a tree running only the health actor over the given checks; stopped at teardown."""
    started: list[tuple[SupervisionTree, list[Probe]]] = []

    def start(
        *probes: Probe | tuple[Probe, bool],
        interval_s: float = INTERVAL_S,
        timeout_s: float = TIMEOUT_S,
        slow_every: int = 12,
        state: HealthState | None = None,
    ) -> tuple[SupervisionTree, HealthState]:
        named = [p.named() if isinstance(p, Probe) else p[0].named(slow=p[1]) for p in probes]
        state = state or HealthState(interval_s)
        spec = worker(
            "health",
            lambda: HealthActor(
                named, state, interval_s=interval_s, timeout_s=timeout_s, slow_every=slow_every
            ),
            start_timeout_s=timeout_s + WAIT_S,
            critical=False,
        )
        tree = SupervisionTree(supervisor("root", [spec]), listeners=[])
        started.append((tree, [p if isinstance(p, Probe) else p[0] for p in probes]))
        tree.start()
        return tree, state

    yield start
    for tree, probes in started:
        for probe in probes:
            probe.gate.set()
        tree.stop()


def wait_report(state: HealthState, accept: Callable[[HealthReport], bool], what: str) -> Any:
    """Poll the published report until ``accept`` holds; return that report."""
    deadline = time.monotonic() + WAIT_S
    while True:
        report = state.latest()
        if report is not None and accept(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last report {report}")
        time.sleep(0.01)


def test_a_hung_check_fails_alone_is_not_restarted_and_recovers(health_tree: HealthTree) -> None:
    """A hung check is fail "did not finish within" while the others keep being reported, is not
    started again while stuck, and passes again once its dependency answers.
    """
    hung, steady = Probe("gateway"), Probe("disk")
    hung.gate.clear()
    _, state = health_tree(hung, steady)

    report = wait_report(state, lambda r: only(r, "gateway").status == FAIL, "the hung check")
    assert only(report, "gateway").output == f"check did not finish within {TIMEOUT_S:g} s"
    assert only(report, "disk").status == PASS

    seen = only(report, "disk").observed_value
    report = wait_report(
        state, lambda r: only(r, "disk").observed_value >= seen + 5, "five more refreshes"
    )
    assert only(report, "gateway").status == FAIL
    assert only(report, "gateway").output == f"check did not finish within {TIMEOUT_S:g} s"
    assert hung.calls == 1, "a stuck check was started again (threads pile up)"
    assert sum(t.name == "health-gateway:status" for t in threading.enumerate()) == 1

    hung.gate.set()
    report = wait_report(state, lambda r: only(r, "gateway").status == PASS, "the recovery")
    assert only(report, "gateway").output is None
    assert only(report, "disk").status == PASS


def test_a_raising_check_fails_with_the_exception_type(health_tree: HealthTree) -> None:
    """A check that raises is fail naming the exception type and message; the others still pass."""
    broken, steady = Probe("broker"), Probe("disk")
    broken.error = ConnectionResetError("gateway closed the socket")
    _, state = health_tree(broken, steady)

    report = wait_report(state, lambda r: only(r, "broker").status == FAIL, "the raising check")
    assert only(report, "broker").output == (
        "check raised ConnectionResetError: gateway closed the socket"
    )
    assert only(report, "disk").status == PASS

    broken.error = None
    wait_report(state, lambda r: only(r, "broker").status == PASS, "the check to pass again")


def test_a_check_raising_system_exit_does_not_end_the_tree(health_tree: HealthTree) -> None:
    """A check that raises SystemExit on its thread is fail; the actor and the tree keep running."""
    fatal, steady = Probe("broker"), Probe("disk")
    fatal.error = SystemExit(3)
    tree, _ = health_tree(fatal, steady, interval_s=3600)

    for _ in range(3):
        report = tree.ask("health", RefreshHealth(), timeout_s=WAIT_S)
        assert only(report, "broker").status == FAIL
        assert only(report, "broker").output == "check raised SystemExit: 3"
        assert only(report, "disk").status == PASS
    assert fatal.calls == 4
    assert tree.exit is None
    assert tree.snapshot().find("health").status == "running"  # type: ignore[union-attr]


def test_reports_are_refreshed_on_the_interval(health_tree: HealthTree) -> None:
    """Without anyone asking, the published report is taken again every interval."""
    steady = Probe("disk")
    _, state = health_tree(steady)

    first = wait_report(state, lambda r: True, "the first report")
    later = wait_report(state, lambda r: only(r, "disk").observed_value >= 5, "four more refreshes")
    assert later.generated_at > first.generated_at
    assert steady.calls >= 5


def test_slow_checks_reuse_their_last_result_between_runs(health_tree: HealthTree) -> None:
    """A slow (informational) check runs every ``slow_every`` refreshes; the reports in between
    show its last result.
    """
    fast, slow = Probe("disk"), Probe("database", "statistics")
    tree, _ = health_tree(fast, (slow, True), interval_s=3600, timeout_s=5, slow_every=3)

    reports = [tree.ask("health", RefreshHealth(), timeout_s=WAIT_S) for _ in range(7)]

    # The setup took refresh 1; the slow check runs on refreshes 1, 4 and 7.
    assert [only(r, "disk").observed_value for r in reports] == [2, 3, 4, 5, 6, 7, 8]
    assert [only(r, "database").observed_value for r in reports] == [1, 1, 2, 2, 2, 3, 3]
    assert slow.calls == 3


def test_a_hung_slow_check_warns_and_keeps_the_others_fresh(health_tree: HealthTree) -> None:
    """A hung informational (slow) check is warn "did not finish within", not fail, and is not
    started again while stuck.
    """
    fast, slow = Probe("disk"), Probe("database", "statistics")
    slow.gate.clear()
    _, state = health_tree(fast, (slow, True), slow_every=2)

    report = wait_report(
        state, lambda r: only(r, "disk").observed_value >= 8, "refreshes past two slow turns"
    )
    assert only(report, "database").status == WARN
    assert only(report, "database").output == f"check did not finish within {TIMEOUT_S:g} s"
    assert slow.calls == 1

    slow.gate.set()
    wait_report(state, lambda r: only(r, "database").status == PASS, "the slow check's result")


# -- what the HTTP views make of it ---------------------------------------------------------


@pytest.fixture
def served_runtime(tmp_path: Path) -> Iterator[tuple[Runtime, Callable[[str], Any]]]:
    """A runtime (not started: no tree of its own) whose app is served on a loopback port."""
    config = bot_config(tmp_path, STRATEGIES="")
    runtime = Runtime(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(create_app(runtime, manage_runtime=False), access_log=None)

    async def serve() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(serve(), loop).result(WAIT_S)

    def get(path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=WAIT_S) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    yield runtime, get
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(WAIT_S)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(WAIT_S)
    loop.close()


@pytest.mark.parametrize("fault", ["hangs", "raises"])
def test_a_stuck_statistics_check_never_fails_the_summary(
    health_tree: HealthTree, served_runtime: tuple[Runtime, Callable[[str], Any]], fault: str
) -> None:
    """When the informational database statistics hang or raise, /api/health still answers 200
    without them; /api/health/detailed shows why they are missing.
    """
    runtime, get = served_runtime
    ping, statistics = Probe("database", "responseTime"), Probe("database", "statistics")
    if fault == "hangs":
        statistics.gate.clear()
    else:
        statistics.error = TimeoutError("statement timeout")
    health_tree(ping, (statistics, True), state=runtime.health)

    wait_report(
        runtime.health,
        lambda r: any(c.key == "database:statistics" and c.status != PASS for c in r.checks),
        "the statistics to be reported missing",
    )
    status, body = get("/api/health")
    assert (status, body["status"]) == (200, "pass"), body
    assert set(body["checks"]) == {"database:responseTime"}

    status, body = get("/api/health/detailed")
    [stats] = body["checks"]["database:statistics"]
    if fault == "hangs":
        assert (status, body["status"], stats["status"]) == (200, "warn", "warn")
        assert stats["output"] == f"check did not finish within {TIMEOUT_S:g} s"
    else:
        assert (status, body["status"], stats["status"]) == (503, "fail", "fail")
        assert stats["output"] == "check raised TimeoutError: statement timeout"
