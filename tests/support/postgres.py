"""PostgreSQL helpers shared by the test suites."""

from __future__ import annotations

import sqlalchemy
from sqlalchemy.engine import Engine


def reset_postgres(engine: Engine) -> None:
    """Give the session database an empty ``public`` schema, as a fresh database has."""
    with engine.connect() as connection:
        connection.execute(
            sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
