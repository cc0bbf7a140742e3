"""``/api/health`` is the worst of every component check (issue #11, item 3).

The checks are enumerated from the product's one list (``component_checks``), so a check
added later without reaching the summary fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.web_server import LoopThread, Server, web_config
from tradingbot.health import FAIL, PASS, WARN, Check, HealthReport, Status
from tradingbot.health.checks import NamedCheck
from tradingbot.health.components import HealthSources, component_checks
from tradingbot.runtime import Runtime
from tradingbot.storage import Database
from tradingbot.web import create_app
from tradingbot.web.health import INFORMATIONAL, INFORMATIONAL_COMPONENTS


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime(web_config(tmp_path_factory.mktemp("summary")))


@pytest.fixture(scope="module")
def named_checks(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> list[NamedCheck]:
    """Every check the real runtime registers (the sources are only read when they run)."""
    path = tmp_path_factory.mktemp("summary-db") / "t.db"
    with Database.open(f"sqlite:///{path}") as database:
        sources = HealthSources(
            database=database,
            tree=lambda: runtime.tree,
            spool=runtime.spool,
            notify_status=runtime.notify_status,
            broker_status=runtime.broker_status,
            lock_lost=lambda: runtime.lock_lost,
        )
        return component_checks(runtime.config, sources)


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, runtime: Runtime) -> Iterator[Server]:
    with Server(loop_thread, create_app(runtime, manage_runtime=False)) as served:
        yield served


def _informational(check: NamedCheck) -> bool:
    key = f"{check.component}:{check.measurement}"
    return key in INFORMATIONAL or check.component in INFORMATIONAL_COMPONENTS


def _report(named: list[NamedCheck], bad: NamedCheck, status: Status) -> HealthReport:
    checks = tuple(
        Check(
            component=n.component,
            measurement=n.measurement,
            status=status if n is bad else PASS,
            output="broken" if n is bad else None,
        )
        for n in named
    )
    return HealthReport(checks=checks, generated_at=datetime.now(UTC))


def test_the_informational_checks_are_only_metrics_and_statistics(
    named_checks: list[NamedCheck],
) -> None:
    """Only process metrics and database statistics stay out of /api/health; every other
    registered check (database, tree, disk, spool, notifier, broker, trading, scheduler,
    run lock, log file...) counts."""
    left_out = sorted(f"{n.component}:{n.measurement}" for n in named_checks if _informational(n))
    assert left_out == ["database:statistics", "process:metrics"]
    counted = {n.component for n in named_checks if not _informational(n)}
    assert {"runLock", "notifier", "logs", "events", "database", "supervision"} <= counted


@pytest.mark.parametrize("status", [WARN, FAIL])
def test_every_component_check_reaches_the_overall_status(
    runtime: Runtime, named_checks: list[NamedCheck], server: Server, status: Status
) -> None:
    """For each registered component check, its warn or fail alone makes /api/health warn
    (200) or fail (503) and shows in its checks."""
    for bad in named_checks:
        if _informational(bad):
            continue
        runtime.health.publish(_report(named_checks, bad, status))
        reply = server.get("/api/health")
        body = reply.json()
        key = f"{bad.component}:{bad.measurement}"
        assert (reply.status, body["status"]) == (503 if status == FAIL else 200, status), key
        assert body["checks"][key][0]["status"] == status, key


def test_the_summary_shows_every_check_but_the_informational_ones(
    runtime: Runtime, named_checks: list[NamedCheck], server: Server, tmp_path: Path
) -> None:
    """/api/health lists every check of /api/health/detailed except metrics and statistics."""
    runtime.health.publish(_report(named_checks, named_checks[0], PASS))
    summary = set(server.get("/api/health").json()["checks"])
    detailed = set(server.get("/api/health/detailed").json()["checks"])
    assert summary == {
        key
        for key in detailed
        if key not in INFORMATIONAL and key.split(":")[0] not in INFORMATIONAL_COMPONENTS
    }
    assert summary >= {"runLock:held", "notifier:outbox", "logs:file"}
