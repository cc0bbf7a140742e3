"""Schema migrations: alembic driven in code, no ``alembic.ini`` at run time.

The migration scripts live in ``migrations/`` inside the package (shipped as package
data), so an installed trading-bot can upgrade its own database. To write a new
migration: add ``migrations/versions/NNNN_topic.py`` from ``script.py.mako`` with
``revision = "NNNN"`` and ``down_revision`` set to the previous head, change
``models.py`` to match, and run the storage tests (they compare the two).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from tradingbot.storage.errors import StorageError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Key of the PostgreSQL advisory lock held (for the transaction) while upgrading, so that
# two processes upgrading at once run one after the other: b"tradingb" as a bigint.
UPGRADE_LOCK_KEY = int.from_bytes(b"tradingb", "big")


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """An alembic configuration pointing at the packaged migrations.

    ``connection`` is handed to ``env.py``, which runs every migration on it.
    """
    config = AlembicConfig()
    # ConfigParser interpolation: a literal "%" in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    """The migration scripts shipped with this version (loaded once per process)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision this version of trading-bot expects the database to be at."""
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def known_revisions() -> frozenset[str]:
    """Every revision id this version of trading-bot knows."""
    return frozenset(script.revision for script in script_directory().walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The revision stamped in the database, ``None`` when it has never been upgraded."""
    return MigrationContext.configure(connection).get_current_revision()


def postgres_schema(connection: Connection, where: str) -> str:
    """The PostgreSQL schema trading-bot's tables live in: the first existing one of the
    ``search_path`` (``public`` by default; ``?options=-csearch_path%3Dtb`` in the URL
    selects ``tb``). Raises :class:`StorageError` naming the search path when none exists.
    """
    name, search_path = connection.execute(
        text("SELECT current_schema(), current_setting('search_path')")
    ).one()
    if name is None:
        raise StorageError(
            f"database {where}: no schema to keep the tables in: none of the search_path "
            f"({search_path}) exists; create it (CREATE SCHEMA …) or correct "
            "options=-csearch_path in TRADINGBOT_DATABASE_URL"
        )
    return str(name)


def upgrade(connection: Connection, where: str) -> list[str]:
    """Apply pending migrations on ``connection``, inside its (write) transaction.

    ``where`` names the database in errors (its URL, password redacted).
    On PostgreSQL a transaction-scoped advisory lock is taken first, so concurrent
    upgraders queue up and the later ones find nothing left to apply.
    Returns the applied revision ids, oldest first.
    """
    if connection.dialect.name == "postgresql":
        postgres_schema(connection, where)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
    applied: list[str] = []

    def record(
        *, ctx: MigrationContext, step: MigrationInfo, heads: set[str], run_args: dict[str, Any]
    ) -> None:
        if step.is_upgrade and step.up_revision_id is not None:
            applied.append(step.up_revision_id)

    config = alembic_config(connection)
    config.attributes["on_version_apply"] = (record,)
    command.upgrade(config, "head")
    return applied
