"""The run lock: never two ``trading-bot run`` processes on one database and account.

A process takes the lock before anything else (before crash detection: a live
process's run is not a crash) and holds it until it exits.

- **PostgreSQL**: a session advisory lock, key :func:`run_lock_key` (a stable hash of
  ``"trading-bot-run"`` and the account), held on a dedicated connection outside the
  pool (see :mod:`tradingbot.storage.advisory_lock`). The server frees it when the process
  dies, whatever the signal.
- **SQLite**: an exclusive ``flock`` on a file next to the database
  (``<db>.lock``, or ``<db>.<account>.lock`` for a configured account) holding the
  holder's pid, host and run id. The kernel frees it when the process dies.

:class:`RunLockMonitor` re-checks the lock every interval: a lost PostgreSQL session
or a lock file deleted under the process is reported (``on_lost``), then the lock is
taken again when possible (``on_regained``), or found taken by another process
(``on_taken``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from tradingbot.health.model import FAIL, PASS, Check
from tradingbot.storage import AdvisoryLock, Database, LockHolder, StorageError
from tradingbot.storage.advisory_lock import application_name

log = structlog.get_logger(__name__)

LOCK_NAMESPACE = "trading-bot-run"
ACQUIRE_GRACE_S = 1.0  # a watchdog-check probe holds the SQLite lock for microseconds
_RETRY_S = 0.05
_SAFE_ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{1,64}")

__all__ = [
    "AlreadyRunning",
    "LockHolder",
    "RunLock",
    "RunLockLost",
    "RunLockMonitor",
    "acquire_run_lock",
    "lock_file_path",
    "probe_run_lock",
    "run_lock_check",
    "run_lock_key",
]


class AlreadyRunning(Exception):
    """Another process holds the run lock; ``str()`` is the one-line operator message."""

    def __init__(self, message: str, holder: LockHolder | None) -> None:
        super().__init__(message)
        self.holder = holder


class RunLockLost(Exception):
    """The lock is no longer held by this process (session lost, lock file replaced)."""


class RunLock(Protocol):
    """A held run lock."""

    @property
    def description(self) -> str:
        """What the lock is, for messages (``file /var/lib/…/trading-bot.db.lock``)."""
        ...

    def verify(self) -> None:
        """Raise :class:`RunLockLost` unless this process still holds the lock."""
        ...

    def reacquire(self) -> bool:
        """Try to take the lock again after a loss; ``False`` if another process holds it.

        Raises :class:`RunLockLost` when it cannot be tried now (database unreachable).
        """
        ...

    def holder(self) -> LockHolder | None:
        """Who holds the lock now, as far as can be read (``None``: nobody)."""
        ...

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who this process is, written where the next process can read it."""

    pid: int
    host: str
    run_id: str


def run_lock_key(account: str) -> int:
    """The advisory-lock key of ``account``: a stable signed 64-bit hash, same everywhere."""
    digest = hashlib.sha256(f"{LOCK_NAMESPACE}\0{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file_path(database_file: Path, account: str) -> Path:
    """The SQLite lock file: ``<db>.lock``, or ``<db>.<account>.lock`` for an account."""
    if not account:
        return database_file.with_name(database_file.name + ".lock")
    if _SAFE_ACCOUNT.fullmatch(account):
        tag = account
    else:
        tag = hashlib.sha256(account.encode()).hexdigest()[:16]
    return database_file.with_name(f"{database_file.name}.{tag}.lock")


def _already_running(lock: str, account: str, holder: LockHolder | None) -> AlreadyRunning:
    who = holder.describe() if holder is not None else "another process"
    scope = f"account {account!r}" if account else "the default account"
    return AlreadyRunning(
        f"trading-bot is already running for this database and {scope}: "
        f"{who} holds the run lock ({lock})",
        holder,
    )


# -- SQLite: flock on a file next to the database ---------------------------------------


def _read_holder(path: Path) -> LockHolder | None:
    try:
        raw = path.read_text(errors="replace").strip()
    except OSError:
        return None
    if not raw:
        return None
    try:
        data = json.loads(raw)
        pid = int(data["pid"])
        host = str(data.get("host") or "") or None
        run_id = str(data.get("run_id") or "")
    except (ValueError, KeyError, TypeError):
        return LockHolder(detail=f"lock file says {raw[:80]!r}")
    return LockHolder(pid=pid, host=host, detail=f"run {run_id}" if run_id else "")


class FileRunLock:
    """An exclusive ``flock`` on the lock file, released by the kernel when we die."""

    def __init__(self, path: Path, identity: Identity) -> None:
        self.path = path
        self._identity = identity
        self._fd: int | None = None

    @property
    def description(self) -> str:
        return f"file {self.path}"

    def try_acquire(self) -> bool:
        """Take the lock once without waiting; ``False`` if another process holds it."""
        self.release()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        ident = self._identity
        body = json.dumps({"pid": ident.pid, "host": ident.host, "run_id": ident.run_id})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (body + "\n").encode(), 0)
        self._fd = fd
        return True

    def verify(self) -> None:
        if self._fd is None:
            raise RunLockLost(f"{self.description}: not held")
        try:
            ours = os.fstat(self._fd)
            current = os.stat(self.path)
        except FileNotFoundError:
            raise RunLockLost(f"{self.description}: the lock file was deleted") from None
        if (ours.st_dev, ours.st_ino) != (current.st_dev, current.st_ino):
            raise RunLockLost(f"{self.description}: the lock file was replaced")

    def reacquire(self) -> bool:
        try:
            return self.try_acquire()
        except OSError as error:
            raise RunLockLost(f"{self.description}: {error.strerror or error}") from error

    def holder(self) -> LockHolder | None:
        return probe_file_lock(self.path)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Emptied first, so a reader never names a process that has let go.
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass  # closing still releases the lock
            os.close(fd)


def probe_file_lock(path: Path) -> LockHolder | None:
    """Who holds the lock file (``None``: nobody). Holds the lock for an instant if free."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path) or LockHolder(detail="lock file is empty")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# -- PostgreSQL: session advisory lock ---------------------------------------------------


class PostgresRunLock:
    """The advisory lock of :mod:`tradingbot.storage.advisory_lock`, as a :class:`RunLock`."""

    def __init__(self, lock: AdvisoryLock) -> None:
        self._lock = lock

    @property
    def description(self) -> str:
        return self._lock.description

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock's session (a drill can terminate it)."""
        return self._lock.backend_pid

    def try_acquire(self) -> bool:
        return self._lock.try_acquire()

    def verify(self) -> None:
        try:
            self._lock.verify()
        except StorageError as error:
            raise RunLockLost(str(error)) from error

    def reacquire(self) -> bool:
        try:
            return self._lock.try_acquire()
        except StorageError as error:
            raise RunLockLost(f"{self.description}: {error}") from error

    def holder(self) -> LockHolder | None:
        return self._lock.holder()

    def release(self) -> None:
        self._lock.release()


class ProcessLocalRunLock:
    """An in-memory SQLite database: no other process can open it, nothing to lock."""

    description = "none (in-memory database)"

    def verify(self) -> None:
        return None

    def reacquire(self) -> bool:
        return True

    def holder(self) -> LockHolder | None:
        return None

    def release(self) -> None:
        return None


# -- acquire and probe ------------------------------------------------------------------


def acquire_run_lock(
    database: Database,
    account: str,
    *,
    pid: int,
    host: str,
    run_id: str,
    grace_s: float = ACQUIRE_GRACE_S,
) -> RunLock:
    """Take the run lock of ``database`` and ``account`` or raise :class:`AlreadyRunning`.

    A lock that stays busy for ``grace_s`` is held by another run (a ``watchdog-check``
    probe holds it for an instant only). Raises
    :class:`~tradingbot.storage.StorageError` when the database cannot be reached.
    """
    identity = Identity(pid=pid, host=host, run_id=run_id)
    lock: FileRunLock | PostgresRunLock
    if database.dialect == "postgresql":
        lock = PostgresRunLock(
            database.advisory_lock(run_lock_key(account), application_name(pid, host))
        )
    else:
        path = database.sqlite_path
        if path is None:
            return ProcessLocalRunLock()
        # Resolved: two URLs naming one file (symlink, relative path) share one lock.
        lock = FileRunLock(lock_file_path(path.resolve(), account), identity)
    deadline = time.monotonic() + grace_s
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            raise _already_running(lock.description, account, lock.holder())
        time.sleep(_RETRY_S)
    log.info("run_lock_acquired", lock=lock.description, account=account)
    return lock


def probe_run_lock(database: Database, account: str) -> LockHolder | None:
    """Who holds the run lock of ``database`` and ``account`` now (``None``: nobody).

    On PostgreSQL this only reads ``pg_locks``; on SQLite it tries the lock file for an
    instant. Raises :class:`~tradingbot.storage.StorageError` when the database cannot
    be reached.
    """
    if database.dialect == "postgresql":
        return database.advisory_lock_holder(run_lock_key(account))
    path = database.sqlite_path
    if path is None:
        return None
    return probe_file_lock(lock_file_path(path.resolve(), account))


# -- monitor ------------------------------------------------------------------------------


class RunLockMonitor:
    """Re-checks a held lock every ``interval_s`` on a daemon thread; reports changes.

    ``on_lost(reason)`` once when the lock is found lost; then every interval the lock
    is tried again: ``on_regained()`` when it is ours again, ``on_taken(holder)`` (once)
    when another process took it meanwhile. Callbacks run on the monitor thread; an
    exception from one is logged and the monitor goes on.
    """

    def __init__(
        self,
        lock: RunLock,
        interval_s: float,
        *,
        on_lost: Callable[[str], None],
        on_regained: Callable[[], None],
        on_taken: Callable[[LockHolder | None], None],
    ) -> None:
        self._lock = lock
        self._interval_s = interval_s
        self._on_lost = on_lost
        self._on_regained = on_regained
        self._on_taken = on_taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="run-lock-monitor", daemon=True)
        self.lost: str | None = None  # the reason, while the lock is not held
        self._taken_reported = False

    def start(self) -> RunLockMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.step()

    def step(self) -> None:
        """One check (the thread calls it every interval; tests call it directly)."""
        if self.lost is None:
            try:
                self._lock.verify()
            except RunLockLost as error:
                self.lost = str(error)
                self._taken_reported = False
                self._call(self._on_lost, self.lost)
            return
        try:
            regained = self._lock.reacquire()
        except RunLockLost as error:
            log.warning("run_lock_retry_failed", lock=self._lock.description, error=str(error))
            return
        if regained:
            self.lost = None
            self._call(self._on_regained)
        elif not self._taken_reported:
            self._taken_reported = True
            try:
                holder = self._lock.holder()
            except StorageError:
                holder = None
            self._call(self._on_taken, holder)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # a reporting failure must not end the monitoring
            log.exception("run_lock_callback_failed", callback=getattr(callback, "__name__", "?"))


def run_lock_check(lost: Callable[[], str | None]) -> Callable[[], list[Check]]:
    """Health: ``runLock:held`` passes while the lock is held, fails with the reason if not.

    A process that lost its lock may be running next to another one: an operator must
    look, so this is a failure, not a warning.
    """

    def check() -> list[Check]:
        reason = lost()
        return [
            Check(
                component="runLock",
                measurement="held",
                component_type="component",
                status=PASS if reason is None else FAIL,
                observed_value=reason is None,
                output=None if reason is None else f"run lock lost: {reason}",
            )
        ]

    return check
