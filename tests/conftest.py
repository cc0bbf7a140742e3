"""Shared fixtures: real databases for every storage test, SQLite and PostgreSQL.

PostgreSQL comes from ``TRADINGBOT_TEST_POSTGRES_URL`` (default: the local trust-auth
server). Each test session gets its own freshly created database, dropped at the end;
each test gets an empty schema in it. Without a reachable server the PostgreSQL tests
are skipped, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine, make_url

from support.postgres import reset_postgres
from tradingbot.config import redact_url
from tradingbot.storage import Database

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    return os.environ.get("TRADINGBOT_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database that lives for the test session."""
    admin_url = _admin_url()
    # pool_pre_ping: outage tests restart the server; the drop at the end must still work.
    admin = sqlalchemy.create_engine(
        admin_url,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
        pool_pre_ping=True,
    )
    name = f"tradingbot_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sqlalchemy.exc.SQLAlchemyError as error:
        admin.dispose()
        reason = (str(getattr(error, "orig", error)).strip().splitlines() or ["?"])[0]
        _unavailable(f"cannot create a test database on {redact_url(admin_url)}: {reason}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


@pytest.fixture(scope="session")
def _postgres_session_engine(postgres_url: str) -> Iterator[Engine]:
    """An AUTOCOMMIT connection pool to the session database, used to reset it."""
    # NullPool: tests terminate server connections, a pooled one could be dead.
    engine = sqlalchemy.create_engine(
        postgres_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )
    yield engine
    engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database of each kind (a fresh SQLite file, an empty PostgreSQL schema)."""
    if request.param == "sqlite":
        # A folder that does not exist yet: opening the database must create it.
        return f"sqlite:///{tmp_path / 'state' / 'trading-bot.db'}"
    engine: Engine = request.getfixturevalue("_postgres_session_engine")
    reset_postgres(engine)
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """An opened, upgraded :class:`Database`, disposed after the test."""
    db = Database.open(database_url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def fresh_postgres_url(postgres_url: str, _postgres_session_engine: Engine) -> str:
    """The session's PostgreSQL database with an empty ``public`` schema."""
    reset_postgres(_postgres_session_engine)
    return postgres_url
