"""The run lock: one holder per database and account, freed by the OS or server on death."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy

from tradingbot.recovery import (
    AlreadyRunning,
    LockHolder,
    RunLock,
    RunLockMonitor,
    acquire_run_lock,
    probe_run_lock,
    run_lock_key,
)
from tradingbot.recovery.runlock import FileRunLock, PostgresRunLock, lock_file_path
from tradingbot.storage import Database

T = TypeVar("T")
HOST = socket.gethostname()
WAIT_S = 20.0


def _wait_until(predicate: Callable[[], T | None], message: str) -> T:
    """Poll ``predicate`` until it returns something; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = predicate()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_S:g} s waiting for {message}")
        time.sleep(0.02)


def _terminate_backend(url: str, backend: int) -> None:
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(
                sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}
            )
    finally:
        engine.dispose()


def _acquire(database: Database, account: str = "", *, pid: int = 4242) -> RunLock:
    return acquire_run_lock(
        database, account, pid=pid, host=HOST, run_id=str(uuid.uuid4()), grace_s=0.0
    )


@pytest.fixture
def opened(database_url: str) -> Iterator[Database]:
    """An opened database of each kind (the lock needs no schema)."""
    db = Database.open(database_url)
    yield db
    db.dispose()


_HOLDER = textwrap.dedent(
    """
    import os, socket, sys, uuid
    from tradingbot.recovery import acquire_run_lock
    from tradingbot.storage import Database
    db = Database.open(sys.argv[1])
    acquire_run_lock(db, sys.argv[2], pid=os.getpid(), host=socket.gethostname(),
                     run_id=str(uuid.uuid4()), grace_s=0.0)
    print("locked", flush=True)
    sys.stdin.read()  # hold until killed
    """
)


def _start_holder(url: str, account: str = "") -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, account],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # log lines come first
        if line.strip() == "locked":
            break
    else:
        raise AssertionError(f"the lock holder exited with {process.wait()}")
    return process


def test_second_holder_is_refused_with_the_first_ones_pid_and_host(
    opened: Database, database_url: str
) -> None:
    """While one process holds the lock another is refused, and the message names pid and host."""
    holder = _start_holder(database_url)
    try:
        with pytest.raises(AlreadyRunning) as refused:
            _acquire(opened)
        assert refused.value.holder is not None
        assert refused.value.holder.pid == holder.pid
        assert refused.value.holder.host == HOST
        message = str(refused.value)
        assert f"pid {holder.pid}" in message
        assert HOST in message
        assert "already running" in message
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_lock_is_freed_when_the_holder_dies(
    opened: Database, database_url: str, sig: signal.Signals
) -> None:
    """A holder killed (even by kill -9) frees the lock: the OS or the server releases it."""
    holder = _start_holder(database_url)
    assert probe_run_lock(opened, "") is not None
    os.kill(holder.pid, sig)
    holder.wait(timeout=30)
    lock = _wait_for_lock(opened)
    lock.release()


def _wait_for_lock(database: Database) -> PostgresRunLock | FileRunLock:
    """The server notices a killed client's socket closing a moment later: poll for it."""

    def attempt() -> PostgresRunLock | FileRunLock | None:
        try:
            lock = _acquire(database)
        except AlreadyRunning:
            return None
        assert isinstance(lock, PostgresRunLock | FileRunLock)
        return lock

    return _wait_until(attempt, "the lock of the dead holder to be freed")


def test_release_lets_the_next_process_in(opened: Database, database_url: str) -> None:
    """After release the lock is free and a new acquire succeeds."""
    first = _acquire(opened)
    assert isinstance(first, PostgresRunLock | FileRunLock)
    with pytest.raises(AlreadyRunning):
        _acquire(opened)
    first.release()
    assert probe_run_lock(opened, "") is None
    second = _acquire(opened)
    assert isinstance(second, PostgresRunLock | FileRunLock)
    second.release()


def test_accounts_have_separate_locks(opened: Database, database_url: str) -> None:
    """Two accounts on one database do not exclude each other; the same account does."""
    first = _acquire(opened, "DU111")
    other = _acquire(opened, "DU222")
    assert isinstance(first, PostgresRunLock | FileRunLock)
    assert isinstance(other, PostgresRunLock | FileRunLock)
    with pytest.raises(AlreadyRunning, match="DU111"):
        _acquire(opened, "DU111")
    first.release()
    other.release()


def test_probe_names_the_holder_and_does_not_keep_the_lock(
    opened: Database, database_url: str
) -> None:
    """probe_run_lock reports the holder's pid while held and nobody once released."""
    assert probe_run_lock(opened, "") is None
    lock = _acquire(opened, pid=os.getpid())
    assert isinstance(lock, PostgresRunLock | FileRunLock)
    holder = probe_run_lock(opened, "")
    assert holder is not None
    assert holder.pid == os.getpid()
    lock.release()
    assert probe_run_lock(opened, "") is None
    _acquire(opened).release()


def test_lock_key_is_stable_and_per_account() -> None:
    """The advisory key is the same in every process (not Python's salted hash)."""
    assert run_lock_key("") == run_lock_key("")
    assert run_lock_key("") != run_lock_key("DU1")
    assert -(2**63) <= run_lock_key("DU1") < 2**63
    script = "from tradingbot.recovery import run_lock_key; print(run_lock_key('DU1'))"
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert int(other.stdout) == run_lock_key("DU1")


def test_sqlite_lock_file_sits_next_to_the_database(tmp_path: Path) -> None:
    """The SQLite lock is <db>.lock (per account: <db>.<account>.lock) and names its holder."""
    db_file = tmp_path / "trading-bot.db"
    assert lock_file_path(db_file, "") == tmp_path / "trading-bot.db.lock"
    assert lock_file_path(db_file, "DU1") == tmp_path / "trading-bot.db.DU1.lock"
    assert lock_file_path(db_file, "../x").parent == tmp_path
    with Database.open(f"sqlite:///{db_file}") as database:
        lock = _acquire(database, pid=os.getpid())
        assert isinstance(lock, FileRunLock)
        assert f'"pid": {os.getpid()}' in (tmp_path / "trading-bot.db.lock").read_text()
        lock.release()
        assert (tmp_path / "trading-bot.db.lock").read_text() == ""


class _Reports:
    def __init__(self) -> None:
        self.lost: list[str] = []
        self.regained = 0
        self.taken: list[LockHolder | None] = []

    def monitor(self, lock: PostgresRunLock | FileRunLock) -> RunLockMonitor:
        return RunLockMonitor(
            lock,
            60.0,  # never fires: the test drives step()
            on_lost=self.lost.append,
            on_regained=self._regained,
            on_taken=self.taken.append,
        )

    def _regained(self) -> None:
        self.regained += 1


def _break(database: Database, lock: PostgresRunLock | FileRunLock, url: str) -> None:
    """Make the lock lost: terminate its PostgreSQL session, or delete the lock file."""
    if isinstance(lock, PostgresRunLock):
        backend = lock.backend_pid
        assert backend is not None
        _terminate_backend(url, backend)
    else:
        lock.path.unlink()


def test_monitor_reports_a_lost_lock_and_takes_it_again(
    opened: Database, database_url: str
) -> None:
    """A lost lock (session terminated, lock file deleted) is reported, then regained."""
    url = database_url
    lock = _acquire(opened)
    assert isinstance(lock, PostgresRunLock | FileRunLock)
    reports = _Reports()
    monitor = reports.monitor(lock)
    monitor.step()
    assert reports.lost == []
    assert monitor.lost is None
    _break(opened, lock, url)
    monitor.step()
    assert len(reports.lost) == 1
    assert monitor.lost is not None
    monitor.step()  # the lock is free: taken again
    assert reports.regained == 1
    assert monitor.lost is None
    with pytest.raises(AlreadyRunning):
        _acquire(opened)
    lock.release()


def test_monitor_reports_when_another_process_took_the_lost_lock(
    opened: Database, database_url: str
) -> None:
    """If another process took the lock meanwhile, on_taken names it (once)."""
    url = database_url
    lock = _acquire(opened)
    assert isinstance(lock, PostgresRunLock | FileRunLock)
    reports = _Reports()
    monitor = reports.monitor(lock)
    _break(opened, lock, url)
    monitor.step()
    assert monitor.lost is not None
    intruder = _wait_for_lock(opened) if isinstance(lock, PostgresRunLock) else _acquire(opened)
    try:
        monitor.step()
        monitor.step()
        assert reports.regained == 0
        assert len(reports.taken) == 1
        assert reports.taken[0] is not None
        assert reports.taken[0].pid == 4242
    finally:
        intruder.release()
        lock.release()


def test_in_memory_sqlite_needs_no_lock() -> None:
    """An in-memory database cannot be shared between processes: acquiring always works."""
    with Database.open("sqlite://") as database:
        _acquire(database).release()
        _acquire(database).release()
        assert probe_run_lock(database, "") is None


@pytest.mark.postgres
def test_lock_session_is_outside_the_pool(postgres_url: str) -> None:
    """Disposing the database's pool (as a restart of the pool would) keeps the lock held."""
    with Database.open(postgres_url) as database:
        lock = _acquire(database)
        assert isinstance(lock, PostgresRunLock)
        database.dispose()
        lock.verify()
        engine = sqlalchemy.create_engine(postgres_url)
        try:
            with engine.connect() as connection:
                names = connection.execute(
                    sqlalchemy.text(
                        "SELECT application_name FROM pg_stat_activity WHERE pid = :pid"
                    ),
                    {"pid": lock.backend_pid},
                ).scalar_one()
        finally:
            engine.dispose()
        assert names == f"trading-bot pid=4242 host={HOST}"[:63]
        lock.release()


def test_health_check_fails_while_the_lock_is_lost() -> None:
    """runLock:held passes while held and fails, with the reason, once the lock is lost."""
    from tradingbot.recovery.runlock import run_lock_check

    lost: list[str] = []
    check = run_lock_check(lambda: lost[-1] if lost else None)
    (held,) = check()
    assert (held.key, held.status) == ("runLock:held", "pass")
    lost.append("the lock file was deleted")
    (failed,) = check()
    assert failed.status == "fail"
    assert failed.output == "run lock lost: the lock file was deleted"


def test_sqlite_urls_naming_one_file_share_one_lock(tmp_path: Path) -> None:
    """A symlinked path to the same database file is refused like the file itself."""
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with (
        Database.open(f"sqlite:///{tmp_path / 'real' / 'bot.db'}") as real,
        Database.open(f"sqlite:///{tmp_path / 'alias' / 'bot.db'}") as alias,
    ):
        lock = _acquire(real)
        try:
            with pytest.raises(AlreadyRunning):
                _acquire(alias)
            assert probe_run_lock(alias, "") is not None
        finally:
            lock.release()
