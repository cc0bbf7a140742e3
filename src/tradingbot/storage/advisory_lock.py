"""PostgreSQL session advisory locks on a dedicated connection (the run lock's mechanics).

The run lock must live exactly as long as the process: a session advisory lock belongs
to one server connection, so it is taken on a connection of its own, outside every
pool (``NullPool``, never recycled, never pre-pinged, never handed to other code), in
autocommit mode (no idle transaction) with TCP keepalives so a dead network is noticed.
When the process dies, even by ``kill -9``, the server closes the session and frees the
lock. :meth:`AdvisoryLock.verify` tells whether the lock is still held, so losing the
connection (server restart, ``pg_terminate_backend``) is detected and reported.

Who holds a key is read from ``pg_locks`` joined with ``pg_stat_activity``: the holder
names itself in its ``application_name`` (``trading-bot pid=… host=…``).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from tradingbot.config import redact_url
from tradingbot.storage import jsoncodec
from tradingbot.storage.engine import POSTGRES_CONNECT_TIMEOUT_S
from tradingbot.storage.errors import StorageUnavailable, translate_error

# application_name is truncated by the server to NAMEDATALEN - 1 bytes.
MAX_APPLICATION_NAME = 63
_APPLICATION = re.compile(r"pid=(\d+)(?: host=(\S+))?")

# The lock's session: keepalives notice a dead peer within about 25 s.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

_HOLDER_QUERY = text(
    "SELECT l.pid, a.application_name, host(a.client_addr) AS client"
    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint = :hi AND l.objid::bigint = :lo AND l.objsubid = 1"
    " ORDER BY l.pid LIMIT 1"
)
_HELD_BY_ME = text(
    "SELECT count(*) FROM pg_locks"
    " WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolder:
    """Who holds a lock, as far as it can be known; ``describe()`` is for messages."""

    pid: int | None = None
    host: str | None = None
    detail: str = ""

    def describe(self) -> str:
        """``pid 1234 on host-a`` (with the detail in parentheses), or what is known."""
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.host:
            parts.append(f"on {self.host}")
        known = " ".join(parts) or "an unknown process"
        return f"{known} ({self.detail})" if self.detail else known


def application_name(pid: int, host: str) -> str:
    """The ``application_name`` a run-lock session announces itself with."""
    return f"trading-bot pid={pid} host={host}"[:MAX_APPLICATION_NAME]


def _key_parts(key: int) -> dict[str, int]:
    """pg_locks shows a bigint key as two unsigned 32-bit halves (classid, objid)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}


def _holder_from_row(row: sqlalchemy.Row[Any]) -> LockHolder:
    backend, name, client = row.pid, row.application_name, row.client
    where = f"PostgreSQL backend {backend}" + (f" from {client}" if client else "")
    match = _APPLICATION.search(name or "")
    if match is None:
        return LockHolder(detail=f"{where}, application {name!r}")
    return LockHolder(pid=int(match.group(1)), host=match.group(2), detail=where)


def advisory_lock_holder(engine: Engine, url: str, key: int) -> LockHolder | None:
    """Who holds the session advisory lock ``key`` right now (``None``: nobody).

    Reads ``pg_locks`` only: this never takes the lock, so it cannot race a starting bot.
    """
    try:
        with engine.connect() as connection:
            row = connection.execute(_HOLDER_QUERY, _key_parts(key)).first()
            connection.rollback()
    except sa_exc.SQLAlchemyError as error:
        raise translate_error(error, url) from error
    return None if row is None else _holder_from_row(row)


class AdvisoryLock:
    """One session advisory lock on its own connection. Not thread-safe: one owner thread."""

    def __init__(self, url: str, key: int, application: str) -> None:
        self._url = url
        self._key = key
        self.application = application[:MAX_APPLICATION_NAME]
        self._engine: Engine | None = None
        self._connection: Connection | None = None

    @property
    def key(self) -> int:
        return self._key

    @property
    def description(self) -> str:
        return f"PostgreSQL advisory lock {self._key} on {redact_url(self._url)}"

    def _connect(self) -> Connection:
        engine = sqlalchemy.create_engine(
            self._url,
            poolclass=NullPool,  # never pooled, never recycled: the session is the lock
            isolation_level="AUTOCOMMIT",
            json_serializer=jsoncodec.dumps,
            json_deserializer=jsoncodec.loads,
            connect_args={
                "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
                "application_name": self.application,
                **_KEEPALIVES,
            },
        )
        try:
            connection = engine.connect()
            if (connection.dialect.server_version_info or (0,)) >= (14,):
                # A server-wide idle_session_timeout must not end the lock's session.
                connection.execute(text("SET idle_session_timeout = 0"))
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        return connection

    def try_acquire(self) -> bool:
        """Open the dedicated session and try the lock once; ``False`` if another holds it.

        Raises :class:`StorageUnavailable` when the server cannot be reached.
        """
        self.release()
        try:
            connection = self._connect()
            got = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                ).scalar_one()
            )
        except sa_exc.SQLAlchemyError as error:
            self.release()
            raise translate_error(error, self._url) from error
        if not got:
            connection.close()
            self.release()
            return False
        self._connection = connection
        return True

    def holder(self) -> LockHolder | None:
        """Who holds this lock's key now, read on a short-lived connection."""
        engine = sqlalchemy.create_engine(
            self._url,
            poolclass=NullPool,
            connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
        )
        try:
            return advisory_lock_holder(engine, self._url, self._key)
        finally:
            engine.dispose()

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the lock's session (for drills and diagnostics)."""
        if self._connection is None:
            return None
        try:
            return int(self._connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
        except sa_exc.SQLAlchemyError:
            return None

    def verify(self) -> None:
        """Raise :class:`StorageUnavailable` unless the session is alive and holds the lock."""
        if self._connection is None:
            raise StorageUnavailable(f"{self.description}: not held")
        try:
            held = self._connection.execute(_HELD_BY_ME, _key_parts(self._key)).scalar_one()
        except sa_exc.SQLAlchemyError as error:
            raise StorageUnavailable(
                f"{self.description}: its session is gone ({translate_error(error, self._url)})"
            ) from error
        if held != 1:
            raise StorageUnavailable(f"{self.description}: the session no longer holds it")

    def release(self) -> None:
        """Unlock and close the session (closing alone frees the lock on the server)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            # A failure means the session is gone, and the lock with it.
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                connection.close()
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()
