"""The :class:`Database` facade: the one object the rest of trading-bot holds."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from alembic.util import CommandError
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from tradingbot.config import redact_url
from tradingbot.storage import schema
from tradingbot.storage.advisory_lock import AdvisoryLock, LockHolder, advisory_lock_holder
from tradingbot.storage.bars import BarRepository
from tradingbot.storage.books_snapshots import BooksSnapshotRepository
from tradingbot.storage.engine import create_engine_for, sqlite_file
from tradingbot.storage.equity_marks import EquityMarkRepository
from tradingbot.storage.errors import (
    UPGRADE_HINT,
    SchemaOutOfDate,
    StorageError,
    StorageUnavailable,
)
from tradingbot.storage.event_table import EventRepository
from tradingbot.storage.job_runs import JobRunRepository
from tradingbot.storage.reconciliations import ReconciliationRepository
from tradingbot.storage.recovery import RecoveryRepository
from tradingbot.storage.system_state import SystemStateRepository
from tradingbot.storage.trades import TradeRepository
from tradingbot.storage.trading_state import TradingStateRepository
from tradingbot.storage.transactions import Transactions


class Database:
    """A database (SQLite file or PostgreSQL) with its schema and repositories.

    :meth:`open` makes no connection, so a process can start while the database is down
    and report it through :meth:`ping`. Methods are safe to call from any thread; each
    one borrows a pooled connection for one short transaction.
    """

    def __init__(self, transactions: Transactions, url: str) -> None:
        self._tx = transactions
        self._url = url
        self._system_state = SystemStateRepository(transactions)
        self._events = EventRepository(transactions)
        self._recovery = RecoveryRepository(transactions)
        self._reconciliations = ReconciliationRepository(transactions)
        self._trading_state = TradingStateRepository(transactions)
        self._job_runs = JobRunRepository(transactions)
        self._trades = TradeRepository(transactions)
        self._bars = BarRepository(transactions)
        self._books_snapshots = BooksSnapshotRepository(transactions)
        self._equity_marks = EquityMarkRepository(transactions)

    @classmethod
    def open(cls, url: str) -> Database:
        """Prepare a pool for ``url`` (``sqlite:///…`` or ``postgresql+psycopg2://…``).

        Raises :class:`StorageError` for an unsupported or malformed URL and
        :class:`StorageUnavailable` when a SQLite file's folder cannot be created.
        """
        try:
            engine = create_engine_for(url)
        except (sa_exc.ArgumentError, ValueError) as error:
            raise StorageError(f"database {redact_url(url)}: {error}") from None
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise StorageUnavailable(
                f"database {redact_url(url)}: cannot create its folder ({reason})"
            ) from error
        return cls(Transactions(engine, url), url)

    def __repr__(self) -> str:
        return f"Database({redact_url(self._url)!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.dispose()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._tx.engine.dialect.name

    @property
    def redacted_url(self) -> str:
        """The URL with its password replaced by ``***``, fit for logs and health output."""
        return redact_url(self._url)

    @property
    def system_state(self) -> SystemStateRepository:
        """Process runs (start, heartbeat, clean stop)."""
        return self._system_state

    @property
    def events(self) -> EventRepository:
        """Recorded events: idempotent batched writes, filtered pages, summary, retention."""
        return self._events

    @property
    def reconciliations(self) -> ReconciliationRepository:
        """Comparisons of our books with the broker's; the latest good one is the baseline."""
        return self._reconciliations

    @property
    def trading_state(self) -> TradingStateRepository:
        """The kill switch of each account: paused, tripped or running, and why."""
        return self._trading_state

    @property
    def job_runs(self) -> JobRunRepository:
        """The scheduler's durable claims: one row per job and slot (trading date)."""
        return self._job_runs

    @property
    def trades(self) -> TradeRepository:
        """The fills of the TRADE events as plain rows (for reports)."""
        return self._trades

    @property
    def bars(self) -> BarRepository:
        """OHLCV bars by symbol and bar size (the daily bar update; strategies' warm-up)."""
        return self._bars

    @property
    def books_snapshots(self) -> BooksSnapshotRepository:
        """Our books at the end of a trading date, so reports skip the older fills."""
        return self._books_snapshots

    @property
    def equity_marks(self) -> EquityMarkRepository:
        """The account's equity, P&L and marked positions as stored by each daily summary."""
        return self._equity_marks

    @property
    def recovery(self) -> RecoveryRepository:
        """Crashed runs detected at start (``recovery_events``), updated by reconciliation."""
        return self._recovery

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite database (``None``: PostgreSQL or in-memory)."""
        if self.dialect != "sqlite":
            return None
        return sqlite_file(self._tx.engine.url)

    def advisory_lock(self, key: int, application: str) -> AdvisoryLock:
        """A PostgreSQL session advisory lock on a dedicated connection (not yet taken)."""
        if self.dialect != "postgresql":
            raise StorageError(f"database {self.redacted_url}: advisory locks need PostgreSQL")
        return AdvisoryLock(self._url, key, application)

    def advisory_lock_holder(self, key: int) -> LockHolder | None:
        """Who holds the PostgreSQL session advisory lock ``key`` (``None``: nobody)."""
        if self.dialect != "postgresql":
            raise StorageError(f"database {self.redacted_url}: advisory locks need PostgreSQL")
        return advisory_lock_holder(self._tx.engine, self._url, key)

    def upgrade(self) -> list[str]:
        """Apply pending migrations; return the revisions applied (``[]`` when up to date).

        Idempotent, and all-or-nothing: the migrations and the version stamp commit in one
        transaction. Concurrent callers (several processes) are serialised by a lock.
        """
        with self._tx.write_connection() as connection:
            try:
                return schema.upgrade(connection, self.redacted_url)
            except CommandError as error:
                raise SchemaOutOfDate(
                    f"database {self.redacted_url}: cannot upgrade ({error}); "
                    "is it used by a newer version of trading-bot?"
                ) from error

    def current_revision(self) -> str | None:
        """The schema revision of the database, ``None`` if it was never upgraded."""
        with self._tx.translated(), self._tx.engine.connect() as connection:
            return schema.current_revision(connection)

    def head_revision(self) -> str:
        """The schema revision this version of trading-bot needs."""
        return schema.head_revision()

    def require_current_schema(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the database is at :meth:`head_revision`."""
        current = self.current_revision()
        head = schema.head_revision()
        if current == head:
            return
        where = self.redacted_url
        if current is None:
            message = f"database {where} has no trading-bot schema yet; {UPGRADE_HINT}"
        elif current in schema.known_revisions():
            message = (
                f"database {where} schema is at revision {current}, this version needs "
                f"{head}; {UPGRADE_HINT}"
            )
        else:
            message = (
                f"database {where} schema is at revision {current}, which this version of "
                f"trading-bot does not know (it needs {head}); was it upgraded by a newer "
                "version? Run that version, or point TRADINGBOT_DATABASE_URL elsewhere"
            )
        raise SchemaOutOfDate(message)

    def ping(self, timeout_s: float) -> float:
        """Run a trivial query; return the round trip in seconds.

        Raises :class:`StorageUnavailable` when the database cannot be reached, fails, or
        takes longer than ``timeout_s``. On PostgreSQL the query itself is cancelled by
        the server after ``timeout_s``; opening a new connection is bounded by the
        engine's 5 s connect timeout.
        """
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        started = time.perf_counter()
        with self._tx.translated(), self._tx.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT set_config('statement_timeout', :ms, true)"),
                    {"ms": str(max(1, round(timeout_s * 1000)))},
                )
                connection.execute(text("SELECT 1")).one()
            else:
                # Reads the schema page, so a missing or unreadable file shows up.
                connection.execute(text("SELECT count(*) FROM sqlite_master")).one()
            connection.rollback()
        elapsed = time.perf_counter() - started
        if elapsed > timeout_s:
            raise StorageUnavailable(
                f"database {self.redacted_url} answered in {elapsed:.3f} s, "
                f"over the {timeout_s:g} s limit"
            )
        return elapsed

    def dispose(self) -> None:
        """Close every pooled connection. The object stays usable (a new pool is made)."""
        self._tx.engine.dispose()
