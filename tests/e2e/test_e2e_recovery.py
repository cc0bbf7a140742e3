"""Crash recovery with real processes: kill -9 and restart, the run lock, watchdog-check."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping

import pytest
import sqlalchemy
from e2e_support import Bot, BotFactory, clean_env, run_cli, wait_until

from tradingbot import exitcodes
from tradingbot.events import Severity
from tradingbot.recovery import run_lock_key
from tradingbot.storage import Database, EventQuery, RecoveryEvent

pytestmark = pytest.mark.slow


def _recovery_events(database_url: str) -> list[RecoveryEvent]:
    with Database.open(database_url) as database:
        return database.recovery.latest(100)


def _crash_events(database_url: str) -> list[Mapping[str, object]]:
    """The SYSTEM events at ERROR written by crash detection, as stored."""
    with Database.open(database_url) as database:
        page = database.events.query(
            EventQuery(types=("SYSTEM",), min_severity=Severity.ERROR, limit=100)
        )
    return [
        {"message": e.message, "severity": e.severity, **e.context}
        for e in page.events
        if e.context.get("event") == "crash_detected"
    ]


def test_kill_9_and_restart_detects_the_crash_once(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """After kill -9 the next start records the crash (pid, event at ERROR); later starts don't."""
    first = bot_factory(bot_database_url)
    crashed_run, crashed_pid = first.run_id, first.process.pid
    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL

    second = bot_factory(bot_database_url, home=first.home)
    url = second.database_url
    events = _recovery_events(url)
    assert len(events) == 1, events
    event = events[0]
    assert event.run_id == crashed_run
    assert event.pid == crashed_pid
    assert event.host == socket.gethostname()
    assert event.status in ("detected", "reconciled")  # the start reconciliation settles it
    assert event.detected_by_run_id == second.run_id
    assert event.downtime_s >= 0.0
    stored = wait_until(lambda: _crash_events(url), message="the crash's SYSTEM event")
    assert len(stored) == 1
    assert stored[0]["severity"] == Severity.ERROR
    assert stored[0]["crashed_run_id"] == crashed_run
    assert stored[0]["pid"] == crashed_pid
    assert f"pid {crashed_pid}" in str(stored[0]["message"])

    # The start reconciliation (clean: nothing traded) settles the crash, and the
    # recovery report is mailed (written to the outbox folder: no SMTP configured).
    settled = wait_until(
        lambda: [e for e in _recovery_events(url) if e.status == "reconciled"],
        message="the crash settled by the start reconciliation",
    )
    assert settled[0].discrepancies == ()
    report = wait_until(
        lambda: [
            text
            for path in sorted((first.home / "outbox").glob("*.eml"))
            if "RECOVERY" in (text := path.read_text(errors="replace"))
        ],
        message="the recovery report e-mail",
    )
    assert len(report) == 1
    assert f"pid {crashed_pid}" in report[0]
    assert "trading resumed" in report[0]

    second.signal(signal.SIGTERM)
    assert second.wait() == exitcodes.OK, second.diagnostics()
    third = bot_factory(bot_database_url, home=first.home)
    assert third.run_id
    assert len(_recovery_events(url)) == 1  # the kill -9 was reported once; SIGTERM is clean
    assert len(_crash_events(url)) == 1


def test_clean_stop_then_start_detects_nothing(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """A SIGTERM stop followed by a start records no recovery event and no crash event."""
    first = bot_factory(bot_database_url)
    first.signal(signal.SIGTERM)
    assert first.wait() == exitcodes.OK, first.diagnostics()
    second = bot_factory(bot_database_url, home=first.home)
    assert second.answers()
    assert _recovery_events(second.database_url) == []
    assert _crash_events(second.database_url) == []


def test_second_run_on_the_same_database_is_refused(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """A second run on the same database and account exits 5 naming the first one's pid."""
    first = bot_factory(bot_database_url)
    # SQLite: the same database file (same home); PostgreSQL: another home, same database.
    home = first.home if bot_database_url is None else None
    second = bot_factory(bot_database_url, home=home, ready=False)
    assert second.wait() == exitcodes.ALREADY_RUNNING, second.diagnostics()
    lines = second.stderr().strip().splitlines()
    assert len(lines) == 1, second.stderr()
    assert "already running" in lines[0]
    assert f"pid {first.process.pid}" in lines[0]
    assert socket.gethostname() in lines[0]
    assert "Traceback" not in second.stdout() + second.stderr()
    refused = [e for e in second.log_events() if e.get("event") == "already_running"]
    assert len(refused) == 1
    assert first.alive()
    assert first.answers()
    assert _recovery_events(first.database_url) == []  # the live run was not taken for a crash


def test_another_account_on_the_same_database_may_run(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """The lock is per database and account: a second account runs next to the first."""
    first = bot_factory(bot_database_url, {"TRADINGBOT_IB_ACCOUNT": "DU111"})
    database_url = bot_database_url or first.database_url
    second = bot_factory(database_url, {"TRADINGBOT_IB_ACCOUNT": "DU222"})
    assert first.answers()
    assert second.answers()
    assert _recovery_events(database_url) == []


# -- watchdog-check ------------------------------------------------------------------------


def _watchdog(bot: Bot, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(bot.home, TRADINGBOT_DATABASE_URL=bot.database_url)
    for key in ("TRADINGBOT_IB_ACCOUNT",):
        if key in bot.env:
            env[key] = bot.env[key]
    return run_cli(["watchdog-check", *args], env)


def test_watchdog_check_passes_while_the_bot_runs(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """With a live process holding the lock and fresh heartbeats it prints one line, exits 0."""
    bot = bot_factory(bot_database_url)
    result = _watchdog(bot)
    assert result.returncode == exitcodes.OK, result
    assert result.stdout.count("\n") == 1
    assert "alive" in result.stdout
    assert bot.run_id in result.stdout
    assert bot.alive()
    checks = bot.get("/api/health/detailed").json()["checks"]
    assert checks["runLock:held"][0]["status"] == "pass"


def test_watchdog_check_fails_when_the_heartbeat_is_stale_and_nobody_holds_the_lock(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """After kill -9, once the heartbeat is older than --max-age, it says DEAD and exits 6."""
    bot = bot_factory(bot_database_url)
    run_id = bot.run_id
    bot.signal(signal.SIGKILL)
    bot.wait()

    def dead() -> subprocess.CompletedProcess[str] | None:
        result = _watchdog(bot, "--max-age", "0.5")
        return result if result.returncode != exitcodes.OK else None

    result = wait_until(dead, message="watchdog-check to declare the killed bot dead")
    assert result.returncode == exitcodes.WATCHDOG_DEAD, result
    assert result.stdout.count("\n") == 1
    assert "DEAD" in result.stdout
    assert run_id in result.stdout
    assert "no process holds the run lock" in result.stdout

    def alerts() -> list[str]:
        texts = [p.read_text(errors="replace") for p in (bot.home / "outbox").glob("*.eml")]
        return [t for t in texts if "watchdog-check" in t and run_id in t]

    # The alert e-mail (no SMTP configured: written to the outbox folder), once per dead
    # run however often the timer fires.
    assert len(alerts()) == 1
    again = _watchdog(bot, "--max-age", "0.5")
    assert again.returncode == exitcodes.WATCHDOG_DEAD, again
    assert len(alerts()) == 1


def test_watchdog_check_fails_differently_for_a_hung_process(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """A live process whose heartbeat stopped (hung actor) holds the lock: HUNG, exit 7."""
    bot = bot_factory(bot_database_url)
    hang = bot.shell("hang heartbeat 30")
    assert hang.returncode == 0, hang.stderr

    def hung() -> subprocess.CompletedProcess[str] | None:
        result = _watchdog(bot, "--max-age", "1")
        return result if result.returncode != exitcodes.OK else None

    result = wait_until(hung, message="watchdog-check to see the stale heartbeat")
    assert result.returncode == exitcodes.WATCHDOG_HUNG, result
    assert "HUNG" in result.stdout
    assert f"pid {bot.process.pid}" in result.stdout
    assert bot.alive()


def test_watchdog_check_is_quiet_after_a_clean_stop(sqlite_bot: Bot) -> None:
    """A bot stopped on purpose is not an alarm: 'stopped', exit 0."""
    sqlite_bot.signal(signal.SIGTERM)
    assert sqlite_bot.wait() == exitcodes.OK
    result = _watchdog(sqlite_bot, "--max-age", "0.5")
    assert result.returncode == exitcodes.OK, result
    assert "stopped" in result.stdout


def test_watchdog_check_rejects_a_bad_max_age(sqlite_bot: Bot) -> None:
    """A non-positive --max-age is a usage error (exit 2) naming the option."""
    result = _watchdog(sqlite_bot, "--max-age", "-1")
    assert result.returncode == exitcodes.USAGE
    assert "--max-age" in result.stderr


# -- losing the run lock while running ------------------------------------------------------


def _lock_events(database_url: str) -> dict[str, int]:
    """How many SYSTEM events of each run-lock kind are stored."""
    with Database.open(database_url) as database:
        page = database.events.query(
            EventQuery(types=("SYSTEM",), min_severity=Severity.WARNING, limit=100)
        )
    kinds: dict[str, int] = {}
    for event in page.events:
        if event.source == "run_lock":
            kind = str(event.context.get("event"))
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _lock_backend(url: str, bot: Bot) -> int:
    """The PostgreSQL backend holding ``bot``'s run lock (found by its application_name)."""
    name = f"trading-bot pid={bot.process.pid} host={socket.gethostname()}"[:63]
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    sqlalchemy.text(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
                    ),
                    {"name": name},
                ).scalar_one()
            )
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_lost_lock_session_is_reported_and_taken_again(
    bot_factory: BotFactory, fresh_postgres_url: str
) -> None:
    """Killing the lock's PostgreSQL session is reported (ERROR), then the lock is regained."""
    bot = bot_factory(fresh_postgres_url)
    backend = _lock_backend(fresh_postgres_url, bot)
    engine = sqlalchemy.create_engine(fresh_postgres_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(
                sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}
            )
    finally:
        engine.dispose()
    kinds = wait_until(
        lambda: (k := _lock_events(fresh_postgres_url)).get("run_lock_regained") and k,
        message="run_lock_lost and run_lock_regained events",
    )
    assert kinds["run_lock_lost"] == 1
    assert _lock_backend(fresh_postgres_url, bot) != backend
    assert bot.alive()
    result = _watchdog(bot)
    assert result.returncode == exitcodes.OK, result


def test_process_stops_when_another_took_its_lost_lock(
    bot_factory: BotFactory, bot_database_url: str | None
) -> None:
    """If another process holds the lock once ours is lost, this process stops with exit 5."""
    bot = bot_factory(bot_database_url)
    if bot_database_url is None:
        # Replace the lock file atomically by one an intruder holds: never a free moment.
        path = bot.home / "trading-bot.db.lock"
        intruder = (bot.home / "intruder.lock").open("w")
        fcntl.flock(intruder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        intruder.write('{"pid": 4242, "host": "intruder", "run_id": ""}\n')
        intruder.flush()
        os.replace(bot.home / "intruder.lock", path)
        release = intruder.close
    else:
        # A session queued for the lock gets it the moment the bot's session dies.
        key = run_lock_key("")
        engine = sqlalchemy.create_engine(bot_database_url, poolclass=sqlalchemy.pool.NullPool)
        waiter = engine.connect()
        queued = threading.Thread(
            target=waiter.execute,
            args=(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key}),
        )
        queued.start()
        backend = _lock_backend(bot_database_url, bot)
        with engine.connect() as connection:
            wait_until(
                lambda: connection.execute(
                    sqlalchemy.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                ).scalar_one(),
                message="the intruder to queue for the lock",
            )
            connection.execute(
                sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}
            )
        queued.join(timeout=30)

        def release() -> None:
            waiter.close()
            engine.dispose()

    try:
        assert bot.wait(timeout_s=60) == exitcodes.ALREADY_RUNNING, bot.diagnostics()
    finally:
        release()
    taken = [e for e in bot.log_events() if e.get("event_type") == "SYSTEM"]
    assert any("run lock taken by" in str(e.get("event")) for e in taken), bot.stdout()
