"""Alembic environment of trading-bot, driven only by :meth:`Database.upgrade`.

There is no ``alembic.ini``: :mod:`tradingbot.storage.schema` builds the
configuration in code and hands over an open connection, already inside the
transaction (and, on PostgreSQL, holding the upgrade advisory lock), through
``config.attributes["connection"]``. Every migration therefore commits or rolls back
together with the version stamp.

SQLite uses batch mode (copy-and-move) because it cannot ALTER most things in place.
Note that ``PRAGMA foreign_keys`` cannot be switched off inside a transaction: a batch
migration that recreates a table referenced by foreign keys must take that into account.
"""

from __future__ import annotations

from alembic import context

from tradingbot.storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "trading-bot migrations run only through `trading-bot db upgrade` "
        "(tradingbot.storage.Database.upgrade), which supplies the connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    on_version_apply=config.attributes.get("on_version_apply", ()),
)
with context.begin_transaction():
    context.run_migrations()
