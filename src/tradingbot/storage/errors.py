"""The storage exceptions, and the one place SQLAlchemy errors are translated into them.

Callers outside ``storage/`` never see a SQLAlchemy exception: every repository method
translates through :func:`translate_error`, so the rest of the code can tell "the
database is down, retry later" (:class:`StorageUnavailable`) from "the schema is old,
an operator must act" (:class:`SchemaOutOfDate`) without importing SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from tradingbot.config import redact_url

UPGRADE_HINT = "run `trading-bot db upgrade`"

# PostgreSQL SQLSTATE codes we recognise (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_UNIQUE_VIOLATION = "23505"
_PG_UNDEFINED_TABLE = "42P01"
_PG_UNDEFINED_COLUMN = "42703"
_SQLITE_SCHEMA_MISSING = ("no such table", "no such column")


class StorageError(Exception):
    """Base class of every error raised by ``tradingbot.storage``."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or did not answer in time; retrying later may work.

    The message names the database with its password redacted.
    """


class SchemaOutOfDate(StorageError):
    """The database schema does not match this version of trading-bot.

    The message tells the operator what to do (usually ``trading-bot db upgrade``).
    """


class BackupError(StorageError):
    """A backup cannot be made, read, verified or restored; ``str()`` says why and what to do."""


class DuplicateRecord(StorageError):
    """A record with the same client-generated id is already stored."""


class RecordNotFound(StorageError, LookupError):
    """The record an operation refers to does not exist."""


class InvalidQuery(StorageError, ValueError):
    """A query or retention parameter is invalid; nothing was read or written.

    The message starts with the parameter's name (``"limit: expected 1..1000, got 0"``),
    so an HTTP layer can name it in a 400 answer.
    """


def translate_error(error: sa_exc.SQLAlchemyError, url: str) -> Exception:
    """Map a SQLAlchemy error to the storage exception a caller can act on.

    A bind-parameter ``ValueError``/``TypeError`` (e.g. a naive datetime rejected by
    :class:`~tradingbot.storage.timestamps.UTCDateTime`) is returned unwrapped, because
    it is a programming error, not a storage condition.
    """
    where = redact_url(url)
    reason = _reason(error, url)
    if isinstance(error, sa_exc.TimeoutError):
        return StorageUnavailable(f"database {where}: no free connection in the pool ({reason})")
    if isinstance(error, sa_exc.DBAPIError):
        code = getattr(error.orig, "pgcode", None)
        text = str(error.orig).lower()
        if code in (_PG_UNDEFINED_TABLE, _PG_UNDEFINED_COLUMN) or text.startswith(
            _SQLITE_SCHEMA_MISSING
        ):
            return SchemaOutOfDate(
                f"database {where}: schema is incomplete ({reason}); {UPGRADE_HINT}"
            )
        if error.connection_invalidated or isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError
        ):
            return StorageUnavailable(f"database {where} is unavailable: {reason}")
        if isinstance(error, sa_exc.IntegrityError) and (
            code == _PG_UNIQUE_VIOLATION or "unique constraint failed" in text
        ):
            return DuplicateRecord(f"database {where}: {reason}")
        return StorageError(f"database {where}: {reason}")
    if isinstance(error, sa_exc.StatementError) and isinstance(error.orig, ValueError | TypeError):
        return error.orig
    return StorageError(f"database {where}: {reason}")


def _reason(error: sa_exc.SQLAlchemyError, url: str) -> str:
    """The first line of the driver's message, with the URL's password removed."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    password = _password(url)
    if password:
        line = line.replace(password, "***")
    return line


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (sa_exc.ArgumentError, ValueError):
        return None
