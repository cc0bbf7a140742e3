"""The Database facade: engine settings, ping, and errors an operator can act on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy

from support.ports import free_port
from tradingbot.storage import Database, StorageError, StorageUnavailable
from tradingbot.storage.engine import create_engine_for


def test_dialect_names_the_backend(database: Database, database_url: str) -> None:
    """The dialect is "sqlite" or "postgresql", matching the URL."""
    assert database.dialect == database_url.split(":", 1)[0].split("+", 1)[0]


def test_ping_measures_a_round_trip(database: Database) -> None:
    """ping returns the round trip it measured: a positive number of seconds."""
    assert database.ping(60.0) > 0


def test_a_ping_slower_than_its_timeout_reports_the_database_unavailable(
    database: Database,
) -> None:
    """A round trip longer than the timeout (here 1 ns: any real one) is an outage, not a
    slow success."""
    with pytest.raises(StorageUnavailable):
        database.ping(1e-9)


def test_unreachable_postgres_raises_storage_unavailable_without_the_password() -> None:
    """An unreachable server gives StorageUnavailable naming it, with the password redacted."""
    port = free_port()
    url = f"postgresql+psycopg2://trader:s3cret-pw@127.0.0.1:{port}/trading"
    db = Database.open(url)  # no connection yet: opening always works
    try:
        with pytest.raises(StorageUnavailable) as caught:
            db.ping(2.0)
        message = str(caught.value)
        assert "s3cret-pw" not in message
        assert f"trader:***@127.0.0.1:{port}" in message
        assert "s3cret-pw" not in repr(db)
        with pytest.raises(StorageUnavailable):
            db.upgrade()
        with pytest.raises(StorageUnavailable):
            db.system_state.latest()
    finally:
        db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_connections_dropped_by_the_server_are_replaced(
    database: Database, database_url: str
) -> None:
    """After the server kills every connection (e.g. a restart), the next call just works."""
    assert database.ping(5.0) > 0
    killer = create_engine_for(database_url)
    try:
        with killer.connect() as connection:
            killed = connection.execute(
                sqlalchemy.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        killer.dispose()
    assert killed >= 1
    assert database.ping(5.0) > 0
    assert database.system_state.latest() == []


def test_unsupported_database_is_refused() -> None:
    """A URL for another kind of database raises StorageError at open."""
    with pytest.raises(StorageError, match="unsupported"):
        Database.open("mysql+pymysql://u:pw@127.0.0.1/db")


def test_sqlite_folder_is_created(tmp_path: Path) -> None:
    """Opening a SQLite database creates its missing parent folders."""
    path = tmp_path / "a" / "b" / "trading-bot.db"
    with Database.open(f"sqlite:///{path}") as db:
        db.upgrade()
    assert path.is_file()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_file_is_in_wal_mode(database: Database, database_url: str) -> None:
    """The SQLite file uses write-ahead logging, as seen by an independent connection."""
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_connections_are_configured(database_url: str) -> None:
    """Every SQLite connection has synchronous=NORMAL, foreign keys on and a 5 s busy timeout."""
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 5000,
    }


def test_ddl_is_transactional(database_url: str) -> None:
    """A schema change rolled back leaves no trace, so a failed migration cannot half-apply."""
    engine = create_engine_for(database_url)

    def failing_migration() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
            raise RuntimeError("migration failed")

    try:
        with pytest.raises(RuntimeError, match="migration failed"):
            failing_migration()
        assert "half_done" not in sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()
