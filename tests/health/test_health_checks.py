"""The component checks on real objects: folders, databases, supervision trees, the spool.

Each check is called directly, as the health actor calls it on its worker thread; the
causes are real (a threshold above the folder's real free space, a PostgreSQL port
nothing listens on, an actor hung or crashed through the tree's drills).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.ports import free_port
from tradingbot.events.model import Event, Severity
from tradingbot.events.spool import EventSpool
from tradingbot.health import FAIL, PASS, WARN, Check
from tradingbot.health.checks import (
    MIB,
    DiskThresholds,
    database_check,
    database_stats_check,
    disk_check,
    spool_check,
    supervision_check,
)
from tradingbot.storage import Database
from tradingbot.supervision import (
    Backoff,
    SupervisedActor,
    SupervisionTree,
    supervisor,
    worker,
)

pytestmark = pytest.mark.timeout(60)

WAIT_S = 15.0  # generous upper bound for anything asynchronous; never asserted on


def wait_for(probe: Callable[[], list[Check]], accept: Callable[[Check], bool], what: str) -> Check:
    """Run the check ``probe`` until its single result satisfies ``accept``; return it."""
    deadline = time.monotonic() + WAIT_S
    while True:
        [result] = probe()
        if accept(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last result {result}")
        time.sleep(0.02)


def free_mib(path: Path) -> float:
    return shutil.disk_usage(path).free / MIB


# -- disk ---------------------------------------------------------------------------------


def test_disk_passes_with_free_space_above_both_thresholds(tmp_path: Path) -> None:
    """A folder with more free space than both thresholds is pass, with its free MiB shown."""
    free = free_mib(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    thresholds = DiskThresholds(warn_free_mb=free / 4, fail_free_mb=free / 8)

    checks = disk_check({"home": tmp_path, "logs": logs}, thresholds)()

    assert [(c.key, c.component_id, c.status) for c in checks] == [
        ("disk:freeSpace", "home", PASS),
        ("disk:freeSpace", "logs", PASS),
    ]
    assert checks[0].observed_unit == "MiB"
    assert checks[0].observed_value == pytest.approx(free, rel=0.1)
    assert checks[0].output is None


def test_disk_warns_below_the_warn_threshold(tmp_path: Path) -> None:
    """Less free space than TRADINGBOT_DISK_WARN_FREE_MB is warn, naming the folder and limit."""
    # At least 2 TiB: a threshold of seven digits is still written out in full.
    warn_at = float(max(round(2 * free_mib(tmp_path)) + 1024, 2_097_152))
    check = disk_check({"home": tmp_path}, DiskThresholds(warn_free_mb=warn_at, fail_free_mb=0))

    [result] = check()

    assert result.status == WARN
    assert result.output == f"{tmp_path}: less than {int(warn_at)} MiB free"
    assert 0 < result.observed_value < warn_at


def test_disk_fails_below_the_fail_threshold(tmp_path: Path) -> None:
    """Less free space than TRADINGBOT_DISK_FAIL_FREE_MB is fail, naming the folder and limit."""
    limit = float(round(2 * free_mib(tmp_path)) + 1024)
    check = disk_check({"home": tmp_path}, DiskThresholds(warn_free_mb=limit, fail_free_mb=limit))

    [result] = check()

    assert result.status == FAIL
    assert result.output == f"{tmp_path}: less than {int(limit)} MiB free"


def test_disk_fails_clearly_for_a_missing_folder(tmp_path: Path) -> None:
    """A folder that does not exist is fail with its path and the OS reason, others still shown."""
    missing = tmp_path / "gone" / "logs"
    checks = disk_check({"home": tmp_path, "logs": missing}, DiskThresholds(fail_free_mb=0))()

    by_id = {c.component_id: c for c in checks}
    assert by_id["home"].status == PASS
    assert by_id["logs"].status == FAIL
    assert by_id["logs"].output == f"{missing}: No such file or directory"
    assert by_id["logs"].observed_value is None


# -- database -----------------------------------------------------------------------------


def test_database_check_passes_with_its_round_trip_time(database: Database) -> None:
    """A reachable database (SQLite and PostgreSQL) is pass with its round trip in ms."""
    [result] = database_check(database, timeout_s=5.0)()

    assert result.key == "database:responseTime"
    assert result.status == PASS
    assert result.component_id == database.dialect
    assert result.observed_unit == "ms"
    assert 0 < result.observed_value < 5000
    assert result.output is None


def test_database_check_fails_without_revealing_the_password(tmp_path: Path) -> None:
    """An unreachable PostgreSQL server is fail, naming host and reason but never the password."""
    port = free_port()  # nothing listens there: the connection is refused at once
    password = "s3cret-pw-4711"
    database = Database.open(f"postgresql+psycopg2://trader:{password}@127.0.0.1:{port}/bot")
    try:
        [result] = database_check(database, timeout_s=2.0)()
    finally:
        database.dispose()

    assert result.status == FAIL
    assert result.component_id == "postgresql"
    assert result.output is not None
    assert password not in result.output
    assert f"127.0.0.1:{port}" in result.output
    assert "trader:***@" in result.output
    assert "refused" in result.output.lower()
    assert password not in str(result.to_dict())


def test_statistics_count_trades_signals_and_events(database: Database) -> None:
    """The database statistics count stored TRADE and SIGNAL events and all events."""
    kinds = ["TRADE"] * 2 + ["SIGNAL"] * 3 + ["SYSTEM", "ORDER"]
    database.events.insert_many([Event(type=kind, message=f"{kind} event") for kind in kinds])

    checks = database_stats_check(database)()

    assert {c.key: (c.status, c.observed_value, c.observed_unit) for c in checks} == {
        "database:trades": (PASS, 2, "count"),
        "database:signals": (PASS, 3, "count"),
        "database:events": (PASS, 7, "count"),
    }


def test_statistics_warn_when_the_schema_is_missing(tmp_path: Path) -> None:
    """Statistics that cannot be read (no schema yet) are warn, not fail: they are informational."""
    with Database.open(f"sqlite:///{tmp_path / 'empty.db'}") as database:
        [result] = database_stats_check(database)()

    assert result.status == WARN
    assert result.output is not None
    assert result.output.startswith("statistics unavailable:")
    assert "trading-bot db upgrade" in result.output


# -- supervision --------------------------------------------------------------------------


class Idle(SupervisedActor):
    """A worker that only answers the framework's probes and drills."""


@pytest.fixture
def trees() -> Iterator[Callable[..., SupervisionTree]]:
    """Start real trees (system clock, fast probes); every one is stopped at teardown."""
    started: list[SupervisionTree] = []

    def start(*children: str | tuple[str, dict[str, object]], **kwargs: float) -> SupervisionTree:
        specs = []
        for child in children:
            name, options = (child, {}) if isinstance(child, str) else child
            specs.append(worker(name, Idle, **options))  # type: ignore[arg-type]
        kwargs.setdefault("probe_interval_s", 0.05)
        kwargs.setdefault("probe_deadline_s", 0.3)
        tree = SupervisionTree(supervisor("root", specs), listeners=[], **kwargs)  # type: ignore[arg-type]
        started.append(tree)
        tree.start()
        return tree

    yield start
    for tree in started:
        tree.stop()


def test_supervision_passes_while_every_actor_runs(trees: Callable[..., SupervisionTree]) -> None:
    """A tree whose actors all run is pass, counting the running actors."""
    tree = trees("one", "two")

    [result] = supervision_check(tree)()

    assert (result.key, result.status, result.output) == ("supervision:actors", PASS, None)
    assert (result.observed_value, result.observed_unit) == (3, "running")


def test_supervision_warns_while_an_actor_waits_to_restart(
    trees: Callable[..., SupervisionTree],
) -> None:
    """An actor crashed and waiting out its backoff is warn, naming it and its failure."""
    backoff = Backoff(min_s=60.0, max_s=60.0, jitter=0.0)  # stays down for the whole test
    tree = trees("steady", ("gateway", {"backoff": backoff}))
    check = supervision_check(tree)

    tree.crash("gateway")

    result = wait_for(check, lambda r: r.status != PASS, "the crashed actor to be reported")
    assert result.status == WARN
    assert result.output is not None
    assert result.output.startswith("gateway is restarting (CrashDrill")
    assert result.observed_value == 2  # root and steady


def test_supervision_fails_on_a_hung_critical_actor_then_passes(
    trees: Callable[..., SupervisionTree],
) -> None:
    """A hung non-critical actor is warn, a hung critical actor fail; both pass once answering."""
    tree = trees("trader", ("reporter", {"critical": False}))
    check = supervision_check(tree)

    tree.hang("reporter", 1.5)
    lazy = wait_for(check, lambda r: r.status != PASS, "the hung non-critical actor")
    assert (lazy.status, lazy.output) == (WARN, "reporter is unresponsive")

    tree.hang("trader", 1.5)
    stuck = wait_for(check, lambda r: "trader" in (r.output or ""), "the hung critical actor")
    assert stuck.status == FAIL
    assert "trader is unresponsive" in (stuck.output or "")

    recovered = wait_for(check, lambda r: r.status == PASS, "both actors to answer again")
    assert recovered.output is None
    assert recovered.observed_value == 3


def test_supervision_fails_once_the_tree_has_ended(trees: Callable[..., SupervisionTree]) -> None:
    """A tree that has ended is fail, saying why."""
    tree = trees("one")
    tree.stop()

    [result] = supervision_check(tree)()

    assert result.status == FAIL
    assert result.output == "tree ended: stopped"


# -- event spool --------------------------------------------------------------------------


def test_spool_passes_when_empty_and_warns_with_depth_and_age(tmp_path: Path) -> None:
    """An empty spool is pass; spooled events are warn with their number and the oldest's age."""
    spool = EventSpool(tmp_path / "spool")
    check = spool_check(spool)
    empty = {c.key: (c.status, c.observed_value) for c in check()}
    assert empty == {
        "events:spoolDepth": (PASS, 0),
        "events:spoolOldestAge": (PASS, 0.0),
        "events:spoolWrite": (PASS, 0),
    }

    oldest = datetime.now(UTC) - timedelta(minutes=10)
    spool.append(
        [
            Event(type="TRADE", message="bought", timestamp=oldest),
            Event(type="SYSTEM", message="note", severity=Severity.WARNING),
            Event(type="SIGNAL", message="buy"),
        ]
    )

    depth, age, write = check()
    assert (write.key, write.status) == ("events:spoolWrite", PASS)
    assert (depth.key, depth.status, depth.observed_value) == ("events:spoolDepth", WARN, 3)
    assert depth.output == "3 events spooled while the database is unavailable"
    assert (age.key, age.status, age.observed_unit) == ("events:spoolOldestAge", WARN, "s")
    assert 600 <= age.observed_value < 600 + WAIT_S * 4
