"""The PostgreSQL side of backups: ``pg_dump`` of trading-bot's tables, ``psql`` restore.

trading-bot's tables live in one schema: the first existing schema of the connection's
``search_path`` (``public`` by default; ``?options=-csearch_path%3Dtb`` in
``TRADINGBOT_DATABASE_URL`` selects ``tb``). A backup dumps exactly trading-bot's tables
and ``alembic_version`` from that schema, by qualified name, inside the snapshot its row
counts were read in; another application's tables or schemas in the same database are
never part of it. A restore drops exactly those tables in the same schema and replays
the dump in one ``psql --single-transaction``, so it replaces what it backed up and
nothing else. The schema is named in the manifest; a restore into a database whose
search path selects another schema is refused (the dump's names are qualified).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tradingbot.storage import schema
from tradingbot.storage.database import Database
from tradingbot.storage.errors import BackupError, translate_error
from tradingbot.storage.models import Base

DEFAULT_SCHEMA = "public"
_TOOL_TIMEOUT_S = 3600
_CHUNK = 1 << 20
# Connection settings of the URL's query that libpq's tools read from the environment.
_LIBPQ_ENV = {
    "options": "PGOPTIONS",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
}


def table_names() -> list[str]:
    """trading-bot's tables, parents before children."""
    return [table.name for table in Base.metadata.sorted_tables]


def target_schema(database: Database) -> str:
    """The schema trading-bot's tables live in (raises when the search path names none)."""
    try:
        with database._tx.engine.connect() as connection:
            return schema.postgres_schema(connection, database.redacted_url)
    except sa_exc.SQLAlchemyError as error:
        raise translate_error(error, database._url) from error


def dump(database: Database, destination: Path) -> tuple[str | None, dict[str, int], str]:
    """``pg_dump`` trading-bot's tables to ``destination`` (plain SQL).

    Returns the schema revision, the row count per table and the schema, all read in the
    snapshot the dump is taken from.
    """
    pg_dump = tool("pg_dump")
    where = database.redacted_url
    try:
        with database._tx.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                name = schema.postgres_schema(connection, where)
                present = set(
                    connection.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"),
                        {"schema": name},
                    ).scalars()
                )
                revision = schema.current_revision(connection)
                counts = {
                    table: int(
                        connection.execute(
                            text(f"SELECT count(*) FROM {_quote(name)}.{_quote(table)}")
                        ).scalar_one()
                    )
                    for table in table_names()
                    if table in present
                }
                dumped = [t for t in (*table_names(), "alembic_version") if t in present]
                if not dumped:
                    raise BackupError(
                        f"database {where} has no trading-bot tables in schema {name}: "
                        "nothing to back up (`trading-bot db upgrade` creates them)"
                    )
                run(
                    [
                        pg_dump,
                        f"--snapshot={snapshot}",
                        "--format=plain",
                        "--no-owner",
                        "--no-privileges",
                        *(f"--table={_quote(name)}.{_quote(table)}" for table in dumped),
                        f"--file={destination}",
                    ],
                    database,
                    "pg_dump",
                )
    except sa_exc.SQLAlchemyError as error:
        raise translate_error(error, database._url) from error
    return revision, counts, name


def restore(database: Database, raw: Path, schema_name: str) -> None:
    """Replace trading-bot's tables in ``schema_name`` with the dump ``raw``, atomically."""
    psql = tool("psql")
    tables = sorted({*table_names(), "alembic_version"})
    prologue = "".join(
        f"DROP TABLE IF EXISTS {_quote(schema_name)}.{_quote(table)} CASCADE;\n" for table in tables
    )
    script = raw.with_name("restore.sql")
    with script.open("wb") as sink, raw.open("rb") as source:
        sink.write(prologue.encode())
        shutil.copyfileobj(source, sink, _CHUNK)
    database.dispose()
    run(
        [
            psql,
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "--set=ON_ERROR_STOP=1",
            f"--file={script}",
        ],
        database,
        "psql",
    )


def tool(name: str) -> str:
    """The path of a PostgreSQL client tool; :class:`BackupError` saying what to install."""
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed; PostgreSQL backups need the PostgreSQL client tools "
            "(apt-get install postgresql-client, the same major version as the server)"
        )
    return found


def run(command: list[str], database: Database, name: str) -> None:
    """Run a PostgreSQL client tool against ``database`` (password in the environment)."""
    url = make_url(database._url)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5", "PGAPPNAME": f"trading-bot {name}"}
    settings: list[tuple[str, object]] = [
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ]
    for key, variable in _LIBPQ_ENV.items():
        value = url.query.get(key)
        settings.append((variable, value[-1] if isinstance(value, tuple) else value))
    for variable, setting in settings:
        if setting is not None:
            env[variable] = str(setting)
        else:
            env.pop(variable, None)
    try:
        result = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_TOOL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BackupError(f"{name} failed: {reason}") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "ERROR:" in line or "error:" in line]
        detail = (errors or lines or [f"exit code {result.returncode}"])[0]
        if url.password:
            detail = detail.replace(url.password, "***")
        raise BackupError(f"{name} failed on {database.redacted_url}: {detail}")


def _quote(identifier: str) -> str:
    """A double-quoted identifier (also a literal ``pg_dump --table`` pattern part)."""
    return '"' + identifier.replace('"', '""') + '"'
