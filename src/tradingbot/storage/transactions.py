"""Short transactions with storage-error translation, shared by every repository."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from tradingbot.storage.engine import SQLITE_BEGIN_IMMEDIATE, SQLITE_BEGIN_OPTION
from tradingbot.storage.errors import translate_error


class Transactions:
    """Open read or write transactions on one engine; raise only storage exceptions.

    Each ``with`` block is one transaction: committed when the block ends normally,
    rolled back when it raises. SQLAlchemy errors leave as the exceptions of
    :mod:`tradingbot.storage.errors`, with the URL's password redacted.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{SQLITE_BEGIN_OPTION: SQLITE_BEGIN_IMMEDIATE})
        self._url = url

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Translate SQLAlchemy errors raised in the block into storage exceptions."""
        try:
            yield
        except sa_exc.SQLAlchemyError as error:
            translated = translate_error(error, self._url)
            if translated is getattr(error, "orig", None):
                # A rejected bind value: re-raise the caller's own error unwrapped.
                raise translated from None
            raise translated from error

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read transaction (SQLite: deferred, never blocks the writer)."""
        with self.translated(), Session(self._engine) as session, session.begin():
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A Core connection in a read transaction (SQLite: one snapshot for the block)."""
        with self.translated(), self._engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction (SQLite: takes the write lock up front)."""
        with self.translated(), Session(self._writer) as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a write transaction, for DDL, migrations and bulk writes."""
        with self.translated(), self._writer.connect() as connection, connection.begin():
            yield connection
