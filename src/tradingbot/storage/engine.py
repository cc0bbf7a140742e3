"""Engine construction: one function that knows each backend's settings.

SQLite (the default, a file in ``TRADINGBOT_HOME``) gets WAL journaling so readers never
block the writer, ``synchronous=NORMAL`` (durable at every WAL checkpoint, safe against
process crashes), enforced foreign keys and a 5 s busy timeout. SQLAlchemy, not the
``sqlite3`` module, emits ``BEGIN``, so DDL is transactional and a migration either
applies completely or not at all.

PostgreSQL (psycopg2) gets ``pool_pre_ping`` so connections dropped by a server restart
are replaced transparently, and a 5 s connect timeout so an unreachable server fails
fast instead of hanging an actor.

Both encode JSON columns with :mod:`tradingbot.storage.jsoncodec` (orjson).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from tradingbot.storage import jsoncodec

SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = 5

# Execution option naming the statement that opens a SQLite transaction. Writers use
# "BEGIN IMMEDIATE" to take the write lock up front (waiting up to the busy timeout)
# instead of failing with SQLITE_BUSY when a read transaction tries to upgrade.
SQLITE_BEGIN_OPTION = "tradingbot_sqlite_begin"
SQLITE_BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def create_engine_for(url: str) -> Engine:
    """Create the engine for a ``sqlite:///…`` or ``postgresql+psycopg2://…`` URL.

    No connection is opened. For a SQLite file the parent folder is created.
    Raises ``ValueError`` for any other kind of database.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgres_engine(parsed)
    raise ValueError(
        f"unsupported database {backend!r}: expected one of {', '.join(SUPPORTED_DIALECTS)}"
    )


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(
        url, json_serializer=jsoncodec.dumps, json_deserializer=jsoncodec.loads
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or ``None`` for in-memory and URI databases."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri") in ("true", "1"):
        return None
    return Path(database)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL may have to wait for another connection.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, retrying while another connection holds it.

    Changing the journal mode of a new file needs an exclusive lock and SQLite reports
    "database is locked" at once, without calling the busy handler, when two connections
    try together (e.g. two processes starting on a fresh database).
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        else:
            # In-memory databases stay "memory"; anything else means not switched yet.
            if mode in ("wal", "memory") or time.monotonic() >= deadline:
                return
        time.sleep(0.005)


def _sqlite_on_begin(connection: Connection) -> None:
    begin = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN")
    connection.exec_driver_sql(begin)


def _postgres_engine(url: URL) -> Engine:
    return sqlalchemy.create_engine(
        url,
        pool_pre_ping=True,
        json_serializer=jsoncodec.dumps,
        json_deserializer=jsoncodec.loads,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )
