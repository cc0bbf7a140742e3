"""The /api/health family of real `trading-bot run` processes, under real faults.

The causes are real: the PostgreSQL server stopped with ``pg_ctlcluster``; disk
thresholds set above the real free space; an actor hung or crashed through the control
socket; a database link turned into a black hole that accepts connections and never
answers. The health actor refreshes every 0.5 s with a 1 s deadline per check, so every
transition shows within a few refreshes; conditions are awaited by polling.
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Bot, BotFactory, HttpReply, wait_until
from sqlalchemy.engine import make_url

from support.postgres_server import PostgresServer, postgres_server_fixture  # noqa: F401
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

HEALTH_ENV = {"TRADINGBOT_HEALTH_INTERVAL_S": "0.5", "TRADINGBOT_HEALTH_CHECK_TIMEOUT_S": "1"}
HEALTH_PATHS = ("/api/health", "/api/health/ready", "/api/health/database")
WAIT_S = 30.0  # generous: polling ends as soon as the condition holds
HANG_WINDOW_S = 6.0  # > psycopg2's 5 s connect_timeout: one whole hung connection attempt


def header(reply: HttpReply, name: str) -> str | None:
    for key, value in reply.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def health(bot: Bot, path: str) -> tuple[HttpReply, Mapping[str, Any]]:
    """GET a health endpoint; check the format every answer must have."""
    reply = bot.get(path)
    assert (header(reply, "Content-Type") or "").startswith("application/health+json"), reply
    assert header(reply, "Cache-Control") == "no-store", reply
    body: Mapping[str, Any] = reply.json()
    assert reply.status == (503 if body["status"] == "fail" else 200), (reply.status, body)
    return reply, body


def wait_health(
    bot: Bot,
    path: str,
    accept: Callable[[int, Mapping[str, Any]], bool],
    what: str,
    *,
    also: Callable[[], None] = lambda: None,
) -> Mapping[str, Any]:
    """Poll ``path`` until ``accept(status, body)``; run ``also`` on every round; return body."""

    def check() -> Mapping[str, Any] | None:
        also()
        reply, body = health(bot, path)
        return body if accept(reply.status, body) else None

    result: Mapping[str, Any] = wait_until(check, WAIT_S, f"{path} {what}")
    return result


def failing(status: int, body: Mapping[str, Any]) -> bool:
    return status == 503 and body["status"] == "fail"


def passing(status: int, body: Mapping[str, Any]) -> bool:
    return status == 200 and body["status"] == "pass"


def serving(status: int, body: Mapping[str, Any]) -> bool:
    return status == 200 and body["status"] in ("pass", "warn")


def check_of(body: Mapping[str, Any], key: str, component_id: str | None = None) -> Any:
    """The one check ``key`` (of ``component_id``) in a health+json body."""
    found = [c for c in body["checks"][key] if c.get("componentId", component_id) == component_id]
    assert len(found) == 1, body
    return found[0]


def assert_live(bot: Bot) -> None:
    """/api/health/live answers 200: the process and its loop are fine, whatever else fails."""
    reply, body = health(bot, "/api/health/live")
    assert serving(reply.status, body), body


# -- database -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_stopped_postgres_fails_database_health_and_readiness_then_recovers(
    bot_factory: BotFactory, fresh_postgres_url: str, postgres_server: PostgresServer
) -> None:
    """With PostgreSQL stopped, /api/health, /ready and /database answer 503 fail while /live
    stays 200; once it is started again they answer 200.
    """
    bot = bot_factory(fresh_postgres_url, HEALTH_ENV)
    wait_health(bot, "/api/health/database", passing, "to pass")
    try:
        postgres_server.stop()
        stopped = time.monotonic()
        for path in HEALTH_PATHS:
            body = wait_health(bot, path, failing, "to fail", also=lambda: assert_live(bot))
            database = check_of(body, "database:responseTime", "postgresql")
            assert database["status"] == "fail"
            assert "is unavailable" in database["output"], database
        print(f"\nall of {HEALTH_PATHS} answered 503 {time.monotonic() - stopped:.2f} s after stop")
        assert_live(bot)
    finally:
        postgres_server.start()

    for path in HEALTH_PATHS:
        wait_health(bot, path, serving, "to recover", also=lambda: assert_live(bot))
    body = wait_health(bot, "/api/health/database", passing, "to pass again")
    assert check_of(body, "database:responseTime", "postgresql")["observedUnit"] == "ms"


# -- disk ---------------------------------------------------------------------------------


def free_mib(path: Path) -> float:
    return shutil.disk_usage(path).free / (1024 * 1024)


def test_disk_below_warn_threshold_warns_and_below_fail_threshold_fails(
    bot_factory: BotFactory, short_tmp: Path
) -> None:
    """Free space below TRADINGBOT_DISK_WARN_FREE_MB is 200 warn, below _FAIL_FREE_MB 503 fail."""
    above = str(round(2 * free_mib(short_tmp)) + 1024)  # more MiB than the disk has free
    warned = bot_factory(None, {**HEALTH_ENV, "TRADINGBOT_DISK_WARN_FREE_MB": above})
    failed = bot_factory(
        None,
        {
            **HEALTH_ENV,
            "TRADINGBOT_DISK_WARN_FREE_MB": above,
            "TRADINGBOT_DISK_FAIL_FREE_MB": above,
        },
    )

    reply, body = health(warned, "/api/health/disk")
    assert (reply.status, body["status"]) == (200, "warn"), body
    home = check_of(body, "disk:freeSpace", "home")
    assert home["status"] == "warn"
    assert home["output"] == f"{warned.home}: less than {above} MiB free"
    assert 0 < home["observedValue"] < float(above)
    assert check_of(body, "disk:freeSpace", "logs")["status"] == "warn"
    reply, body = health(warned, "/api/health")
    assert (reply.status, body["status"]) == (200, "warn"), body

    reply, body = health(failed, "/api/health/disk")
    assert (reply.status, body["status"]) == (503, "fail"), body
    assert check_of(body, "disk:freeSpace", "home")["output"] == (
        f"{failed.home}: less than {above} MiB free"
    )
    reply, body = health(failed, "/api/health")
    assert (reply.status, body["status"]) == (503, "fail"), body
    assert_live(failed)


# -- supervision tree ---------------------------------------------------------------------


def test_hung_critical_actor_fails_health_until_it_answers_and_a_crash_resolves(
    bot_factory: BotFactory,
) -> None:
    """`hang heartbeat 5` turns /api/health and /ready 503 until it answers again; after
    `crash heartbeat` the tree check passes again once the heartbeat has restarted.
    """
    bot = bot_factory(None, HEALTH_ENV)
    wait_health(bot, "/api/health", passing, "to pass")

    result = bot.shell("hang heartbeat 5")
    assert result.returncode == 0, result.stderr
    for path in ("/api/health", "/api/health/ready"):
        body = wait_health(bot, path, failing, "to fail", also=lambda: assert_live(bot))
        tree = check_of(body, "supervision:actors")
        assert tree["status"] == "fail"
        assert "heartbeat is unresponsive" in tree["output"], tree
    for path in ("/api/health", "/api/health/ready"):
        wait_health(bot, path, passing, "to pass once the heartbeat answers")

    result = bot.shell("crash heartbeat")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: bot.node("heartbeat")["restarts"] == 1, WAIT_S, "the restart")
    body = wait_health(bot, "/api/health", passing, "to pass after the restart")
    assert "output" not in check_of(body, "supervision:actors")
    assert bot.node("heartbeat")["last_failure"]["type"] == "CrashDrill"


# -- a hung check never stalls the event loop ---------------------------------------------


@dataclass
class Hammer:
    """Threads that GET paths back to back and record when each answer arrived."""

    bot: Bot
    paths: tuple[str, ...]
    answers: list[tuple[float, str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Hammer:
        for path in self.paths:
            thread = threading.Thread(target=self._run, args=(path,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, path: str) -> None:
        while not self._stop.is_set():
            try:
                reply = self.bot.get(path)
            except OSError as exc:
                with self._lock:
                    self.errors.append(f"{path}: {exc}")
                continue
            with self._lock:
                self.answers.append((time.monotonic(), path, reply.status))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WAIT_S)

    def largest_stall(self, since: float, until: float) -> float:
        """The longest time in [since, until] without any answer (the worst loop stall)."""
        with self._lock:
            times = sorted(t for t, _, _ in self.answers if since <= t <= until)
        edges = [since, *times, until]
        return max(b - a for a, b in itertools.pairwise(edges))


@pytest.fixture
def proxy(fresh_postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(fresh_postgres_url)
    link = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield link
    link.close()


@pytest.mark.postgres
def test_event_loop_stays_responsive_while_the_database_check_hangs(
    bot_factory: BotFactory, fresh_postgres_url: str, proxy: TcpProxy
) -> None:
    """While the database check hangs on a connection that is never answered, requests are
    answered during the hung connect (not after it), every request is answered, and
    /api/health/database is fail "did not finish within"; it then recovers. (The largest gap
    between answers is printed, not asserted: a figure, not a pass/fail on a shared box.)
    """
    url = make_url(fresh_postgres_url).set(host="127.0.0.1", port=proxy.port)
    bot = bot_factory(url.render_as_string(hide_password=False), HEALTH_ENV)
    wait_health(bot, "/api/health/database", passing, "to pass")

    proxy.blackhole()  # connecting now hangs for psycopg2's 5 s connect_timeout
    hammer = Hammer(bot, ("/api/health/live", "/api/health")).start()
    try:

        def hung(status: int, body: Mapping[str, Any]) -> bool:
            check = check_of(body, "database:responseTime", "postgresql")
            return failing(status, body) and "did not finish within" in check.get("output", "")

        body = wait_health(bot, "/api/health/database", hung, "to report the hung check")
        assert check_of(body, "database:responseTime", "postgresql")["output"] == (
            "check did not finish within 1 s"
        )

        def answered_during_a_hung_connect() -> bool:
            # A hung connection attempt open before and after an answer: the answer came
            # while the database check was stuck in it, so the check does not block the loop.
            before = proxy.hung_clients()
            reply = bot.get("/api/health/live")
            return bool(before) and reply.status == 200 and bool(before & proxy.hung_clients())

        window_start = time.monotonic()
        wait_until(
            answered_during_a_hung_connect, WAIT_S, "an answer while a database connect hangs"
        )
        while time.monotonic() - window_start < HANG_WINDOW_S:  # watch a whole hang
            reply, body = health(bot, "/api/health/database")
            assert failing(reply.status, body), body
        window_end = time.monotonic()
    finally:
        hammer.stop()

    stall = hammer.largest_stall(window_start, window_end)
    in_window = [a for a in hammer.answers if window_start <= a[0] <= window_end]
    print(
        f"\nlargest gap between answers while the check hung: {stall * 1000:.0f} ms "
        f"({len(in_window)} answers in {window_end - window_start:.1f} s)"
    )
    assert not hammer.errors, hammer.errors[:5]
    assert {path for _, path, _ in in_window} == {"/api/health/live", "/api/health"}
    assert {status for _, path, status in in_window if path == "/api/health/live"} == {200}
    assert {status for _, path, status in in_window if path == "/api/health"} == {503}

    proxy.restore()
    wait_health(bot, "/api/health/database", passing, "to pass again")
    wait_health(bot, "/api/health", serving, "to recover")
